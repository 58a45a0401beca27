package main

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/braid-bft/braid/config"
)

func TestGatewayFlagErrors(t *testing.T) {
	perClient := clientCluster(t, 4, 3, freePort(t))
	_, stderr, err := runCmd(runGateway, "--bogus")
	wantUsageExit(t, err, stderr, "Usage: braid gateway")
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{nil, []string{"--config is required"}},
		{[]string{"--config", perClient, "--timeout", "0s"}, []string{"must be positive"}},
		{[]string{"--config", perClient, "--max-conns", "0"}, []string{"--max-conns 0"}},
		{[]string{"--config", perClient}, []string{`kv_scope "per-client"`, "braid init --kv-scope shared"}},
	} {
		_, _, err := runCmd(runGateway, tc.args...)
		wantErr(t, err, tc.want...)
	}
}

// sharedCluster is clientCluster with the shared kv scope.
func sharedCluster(t *testing.T, clients int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "c")
	if _, _, err := runCmd(runInit, "--dir", dir, "--kv-scope", "shared", "--clients", strconv.Itoa(clients), "--base-port", strconv.Itoa(freePort(t))); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, clusterFile)
}

func TestGatewayKeys(t *testing.T) {
	cfgPath := sharedCluster(t, 4)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := gatewayKeys(cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 || keys[0].ID != 1 || keys[2].ID != 3 {
		t.Fatalf("default keys: %v, want ids 1, 2, 3 (client-0 is the CLI's)", keys)
	}
	explicit, err := gatewayKeys(cfg, filepath.Join(cfg.Dir(), "keys", "client-[02].key"))
	if err != nil || len(explicit) != 2 || explicit[0].ID != 0 {
		t.Fatalf("--keys: %v, %v; want ids 0 and 2", explicit, err)
	}
	_, err = gatewayKeys(cfg, filepath.Join(cfg.Dir(), "nothing-*.key"))
	wantErr(t, err, "matches no file")
	stranger := filepath.Join(t.TempDir(), "stranger.key")
	if _, _, err := runCmd(runKeygen, "--out", stranger); err != nil {
		t.Fatal(err)
	}
	_, err = gatewayKeys(cfg, stranger)
	wantErr(t, err, "stranger.key", "not in clients.keys")

	one, err := config.Load(sharedCluster(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	_, err = gatewayKeys(one, "")
	wantErr(t, err, "no client keys for the gateway", "--clients N")
	if _, err := os.Stat(filepath.Join(one.Dir(), "keys", "client-0.key")); err != nil {
		t.Fatal(err)
	}
}
