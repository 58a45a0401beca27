package shell

import (
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/config"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/storage"
)

// Test dependencies: the test is the loop, so every completion runs at
// once (a commit is a synchronous Sync).

type dropNet struct{}

func (dropNet) Send(to msg.ReplicaID, frame []byte) {}
func (dropNet) Broadcast(frame []byte)              {}

type syncDisk struct{ storage.Interface }

func (d syncDisk) Commit(done func(error)) { done(d.Sync()) }

type inline struct{}

func (inline) Go(_ Cost, work, done func()) { work(); done() }

type testCrypto struct{ auth.Keyring }

func (k testCrypto) VerifyClients(items []ClientSig) []bool {
	out := make([]bool, len(items))
	for i, it := range items {
		out[i] = k.Client(it.Client, it.Msg, it.Sig)
	}
	return out
}

var logSink io.Writer = func() io.Writer {
	if os.Getenv("BRAID_TEST_LOGS") != "" {
		return os.Stderr
	}
	return io.Discard
}()

// cluster is an n-replica config with fresh keys and one client (its key
// returned); the addresses are never dialled.
func cluster(t *testing.T, n int) (*config.Config, auth.PrivateKey) {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Default(n, 0)
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
		cfg.Replicas[i].Addr = fmt.Sprintf("127.0.0.1:%d", 1+i)
		cfg.Replicas[i].ClientAddr = fmt.Sprintf("127.0.0.1:%d", 1+n+i)
		cfg.Replicas[i].HTTPAddr = ""
	}
	cpub, cpriv, err := auth.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Clients.Keys = []config.ClientKey{{ID: 0, PublicKey: auth.MarshalPublicKey(cpub)}}
	cfg.DataDir = filepath.Join(dir, "data-{id}")
	cfg.SetDir(dir)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg, cpriv
}
