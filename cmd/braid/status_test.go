package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/braid-bft/braid/app/kv"
	"github.com/braid-bft/braid/client"
	"github.com/braid-bft/braid/internal/testcluster"
	"github.com/braid-bft/braid/replica"
)

// httpGet returns the body of a 200 answer.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s %v", url, resp.StatusCode, body, err)
	}
	return string(body)
}

// The tools against a running in-process cluster: braid status shows every
// replica up, then a stopped one down; braid ledger show --json gives the
// bytes of the HTTP block routes, over HTTP while the replica runs and
// from its data directory once it stopped; braid ledger verify --http
// checks a running replica's ledger.
func TestToolsAgainstRunningCluster(t *testing.T) {
	cfg, ckey := testcluster.Config(t, 4, true)
	testcluster.HTTP(t, cfg)
	cfgPath := filepath.Join(t.TempDir(), clusterFile)
	if err := cfg.Save(cfgPath); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stops := make([]func(), cfg.N)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for i := range cfg.N {
		r, err := replica.New(cfg, i, replica.Options{Logger: testcluster.Logger()})
		if err != nil {
			t.Fatal(err)
		}
		rctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done)
			if err := r.Run(rctx); err != nil {
				t.Errorf("replica %d: %v", i, err)
			}
		}()
		stops[i] = func() { stop(); <-done }
	}
	cl, err := client.New(cfg, 0, ckey, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	sctx, scancel := context.WithTimeout(ctx, 15*time.Second)
	defer scancel()
	for i := range 10 {
		if _, err := cl.Submit(sctx, kv.Put([]byte(fmt.Sprint("k", i)), []byte("v"))); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}

	stdout, stderr, err := runCmd(runStatus, "--config", cfgPath)
	if err != nil {
		t.Fatalf("status: %v\n%s%s", err, stdout, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 1+cfg.N || !strings.HasPrefix(lines[0], "id") {
		t.Fatalf("status:\n%s", stdout)
	}
	for i, line := range lines[1:] {
		if f := strings.Fields(line); len(f) < 6 || f[0] != fmt.Sprint(i) || f[1] != "up" || f[2] == "0" {
			t.Errorf("status line %q", line)
		}
	}

	addr := "http://" + cfg.Replicas[1].HTTPAddr
	stdout, stderr, err = runCmd(runLedger, "show", "--config", cfgPath, "--id", "1", "--height", "1", "--json")
	if err != nil || !strings.Contains(stderr, "over HTTP") {
		t.Fatalf("show: %v\n%s", err, stderr)
	}
	if want := httpGet(t, addr+"/v1/blocks/1"); stdout != want {
		t.Fatalf("ledger show --json:\n%s\nGET /v1/blocks/1:\n%s", stdout, want)
	}
	stdout, _, err = runCmd(runLedger, "show", "--config", cfgPath, "--id", "1", "--from", "1", "--to", "2", "--json")
	if want := httpGet(t, addr+"/v1/blocks?from=1&to=2"); err != nil || stdout != want {
		t.Fatalf("ledger show range --json (%v):\n%s\nGET range:\n%s", err, stdout, want)
	}
	stdout, _, err = runCmd(runLedger, "show", "--config", cfgPath, "--id", "1", "--height", "1")
	if err != nil || !strings.Contains(stdout, "block 1 (round 1)") || !strings.Contains(stdout, "kv put") {
		t.Fatalf("ledger show: %v\n%s", err, stdout)
	}
	stdout, stderr, err = runCmd(runLedger, "verify", "--config", cfgPath, "--id", "2", "--http")
	if err != nil || !strings.HasPrefix(stdout, "ok: height ") {
		t.Fatalf("verify --http: %v\n%s%s", err, stdout, stderr)
	}

	// Replica 3 stops: status shows it down and exits 1; its ledger is
	// read offline, and its block 1 is everyone's block 1.
	stops[3]()
	stdout, _, err = runCmd(runStatus, "--config", cfgPath)
	if code, ok := err.(exitCode); !ok || code != 1 {
		t.Fatalf("status with a replica down: %v\n%s", err, stdout)
	}
	lines = strings.Split(strings.TrimSpace(stdout), "\n")
	if f := strings.Fields(lines[4]); f[0] != "3" || f[1] != "down" || !strings.Contains(lines[4], "refused") {
		t.Fatalf("stopped replica's line %q", lines[4])
	}
	if f := strings.Fields(lines[1]); f[1] != "up" {
		t.Fatalf("running replica's line %q", lines[1])
	}
	stdout, stderr, err = runCmd(runLedger, "show", "--config", cfgPath, "--id", "3", "--height", "1", "--json")
	if err != nil || !strings.Contains(stderr, "does not answer") || !strings.Contains(stderr, "offline") {
		t.Fatalf("show of a stopped replica: %v\n%s", err, stderr)
	}
	if want := httpGet(t, addr+"/v1/blocks/1"); stdout != want {
		t.Fatalf("replica 3's block 1 offline:\n%s\nreplica 1's:\n%s", stdout, want)
	}
	stdout, _, err = runCmd(runStatus, "--config", cfgPath, "--json")
	if err == nil || !strings.Contains(stdout, `"up": false`) || !strings.Contains(stdout, `"up": true`) {
		t.Fatalf("status --json: %v\n%s", err, stdout)
	}
}

func TestLedgerShowAndStatusFlagErrors(t *testing.T) {
	for _, c := range []struct {
		run  runFunc
		args []string
		want string
	}{
		{runStatus, nil, "--config is required"},
		{runStatus, []string{"--config", "x", "--timeout", "0s"}, "must be positive"},
		{runLedger, []string{"show", "--config", "x"}, "--config FILE and --id I are required"},
		{runLedger, []string{"show", "--config", "x", "--id", "0", "--height", "2", "--from", "1", "--to", "3"}, "not both"},
		{runLedger, []string{"show", "--config", "x", "--id", "0", "--from", "2"}, "needs both --from A and --to B"},
		{runLedger, []string{"show", "--config", "x", "--id", "0", "--from", "3", "--to", "2"}, "--to 2 is below --from 3"},
		{runLedger, []string{"show", "--config", "x", "--id", "0", "--from", "1", "--to", "20000"}, "at most 10000"},
		{runLedger, []string{"verify", "--config", "x", "--dir", "d", "--http"}, "--http verifies a running replica"},
		{runLedger, []string{"verify", "--config", "x", "--export", "e", "--http"}, "give --id I (not --dir or --export)"},
	} {
		_, _, err := runCmd(c.run, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error containing %q", c.args, err, c.want)
		}
	}
}
