// Package testcluster builds what the shell's and the replica's tests share:
// an n-replica cluster file with fresh keys, an in-memory store and a
// logger that is quiet unless BRAID_TEST_LOGS is set. Test code only.
package testcluster

import (
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/config"
	"github.com/braid-bft/braid/internal/loopback"
	"github.com/braid-bft/braid/storage"
)

// Config writes an n-replica config (the product default m = n − f) with
// fresh keys and one admitted client, whose key it returns, into a temp
// dir. With listen set the addresses are free loopback ports and the
// timeouts suit real processes under the race detector; otherwise the
// addresses are never dialled.
func Config(t testing.TB, n int, listen bool) (*config.Config, auth.PrivateKey) {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Default(n, 0)
	ports := make([]int, 2*n)
	for i := range ports {
		ports[i] = 1 + i
	}
	if listen {
		ports = freePorts(t, 2*n)
	}
	for i := range cfg.Replicas {
		pub, priv, err := auth.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keyFile := filepath.Join(dir, fmt.Sprintf("replica-%d.key", i))
		if err := auth.WritePrivateKeyFile(keyFile, priv); err != nil {
			t.Fatal(err)
		}
		cfg.Replicas[i].PublicKey = auth.MarshalPublicKey(pub)
		cfg.Replicas[i].KeyFile = keyFile
		cfg.Replicas[i].Addr = fmt.Sprintf("127.0.0.1:%d", ports[i])
		cfg.Replicas[i].ClientAddr = fmt.Sprintf("127.0.0.1:%d", ports[n+i])
		cfg.Replicas[i].HTTPAddr = ""
	}
	cpub, cpriv, err := auth.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Clients.Keys = []config.ClientKey{{ID: 0, PublicKey: auth.MarshalPublicKey(cpub)}}
	cfg.DataDir = filepath.Join(dir, "data-{id}")
	if listen {
		// Timeouts of a second: the race detector slows replicas several-fold,
		// and timeouts far below the processing time churn views.
		cfg.Tick = "10ms"
		cfg.RequestTimeout, cfg.ProgressTimeout, cfg.ViewChangeTimeout = 100, 100, 100
	}
	cfg.SetDir(dir)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg, cpriv
}

// HTTP gives every replica of cfg an http_addr on a free loopback port,
// for tests of the HTTP API and the tools that use it.
func HTTP(t testing.TB, cfg *config.Config) {
	t.Helper()
	taken := map[string]bool{}
	for _, r := range cfg.Replicas {
		taken[r.Addr], taken[r.ClientAddr] = true, true
	}
	// The other ports are free until the replicas bind them, so a fresh
	// block may overlap them: draw again.
	for try := 0; ; try++ {
		addrs := make([]string, len(cfg.Replicas))
		clash := false
		for i, p := range freePorts(t, len(cfg.Replicas)) {
			addrs[i] = fmt.Sprintf("127.0.0.1:%d", p)
			clash = clash || taken[addrs[i]]
		}
		if !clash || try == 20 {
			for i := range addrs {
				cfg.Replicas[i].HTTPAddr = addrs[i]
			}
			break
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

// freePorts returns k free loopback ports outside the ephemeral range, so
// that no outgoing connection takes one before its replica binds it.
func freePorts(t testing.TB, k int) []int {
	t.Helper()
	base, err := loopback.FreeBase(k)
	if err != nil {
		t.Fatal(err)
	}
	ports := make([]int, k)
	for i := range ports {
		ports[i] = base + i
	}
	return ports
}

// MemStore is an empty in-memory store that commits every write.
func MemStore(t testing.TB) *storage.Memory {
	t.Helper()
	m, err := storage.NewMemory(storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// LogSink is where test loggers write: stderr with BRAID_TEST_LOGS set,
// else nowhere.
var LogSink io.Writer = func() io.Writer {
	if os.Getenv("BRAID_TEST_LOGS") != "" {
		return os.Stderr
	}
	return io.Discard
}()

// Logger is a text logger on LogSink.
func Logger() *slog.Logger { return slog.New(slog.NewTextHandler(LogSink, nil)) }
