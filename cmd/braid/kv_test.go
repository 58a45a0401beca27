package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/braid-bft/braid/app"
	"github.com/braid-bft/braid/app/bank"
	"github.com/braid-bft/braid/app/kv"
	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/config"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/transport"
)

// clientCluster runs braid init for n replicas in a temporary directory and
// returns the configuration path.
func clientCluster(t *testing.T, n, clients int, basePort int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "c")
	if _, _, err := runCmd(runInit, "--dir", dir, "--n", strconv.Itoa(n), "--clients", strconv.Itoa(clients), "--base-port", strconv.Itoa(basePort)); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, clusterFile)
}

// freePort returns a loopback port nothing listens on (at the time).
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not contain %q", err, p)
		}
	}
}

func wantUsageExit(t *testing.T, err error, stderr string, parts ...string) {
	t.Helper()
	if code, ok := err.(exitCode); !ok || code != 2 {
		t.Fatalf("err = %v, want exit status 2", err)
	}
	for _, p := range parts {
		if !strings.Contains(stderr, p) {
			t.Fatalf("stderr %q does not contain %q", stderr, p)
		}
	}
}

func TestKVUsageAndUnknownCommand(t *testing.T) {
	_, stderr, err := runCmd(runKV)
	wantUsageExit(t, err, stderr, "Usage: braid kv")
	stdout, _, err := runCmd(runKV, "--help")
	if err != nil || !strings.Contains(stdout, "scan [--limit N] START [END]") {
		t.Fatalf("--help: %v, %q", err, stdout)
	}
	_, stderr, err = runCmd(runKV, "frob", "--config", "x")
	wantUsageExit(t, err, stderr, `unknown command "frob"`, "want put, get, del or scan")
	_, stderr, err = runCmd(runKV, "get", "--bogus", "k")
	wantUsageExit(t, err, stderr, "flag provided but not defined: -bogus")
	if _, _, err := runCmd(runKV, "get", "--help"); err != nil {
		t.Fatalf("get --help: %v", err)
	}
}

func TestKVArgumentErrors(t *testing.T) {
	cfg := clientCluster(t, 4, 1, freePort(t))
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"put", "k", "v"}, []string{"--config is required"}},
		{[]string{"put", "--config", cfg, "k"}, []string{"got 1 argument(s), want KEY VALUE"}},
		{[]string{"get", "--config", cfg}, []string{"want KEY"}},
		{[]string{"get", "--config", cfg, "a", "b"}, []string{"got 2 argument(s)"}},
		{[]string{"del", "--config", cfg}, []string{"want KEY"}},
		{[]string{"scan", "--config", cfg}, []string{"want START [END]"}},
		{[]string{"scan", "--config", cfg, "--limit", "0", "a"}, []string{"--limit 0"}},
		{[]string{"scan", "--config", cfg, "--limit", "1001", "a"}, []string{"--limit 1001"}},
		{[]string{"get", "--config", cfg, "--timeout", "0s", "k"}, []string{"--timeout 0s: must be positive"}},
		{[]string{"get", "--config", filepath.Join(t.TempDir(), "nope.json"), "k"}, []string{"nope.json", "no such file"}},
	} {
		_, _, err := runCmd(runKV, tt.args...)
		wantErr(t, err, tt.want...)
	}
}

func TestKVKeyErrors(t *testing.T) {
	cfg := clientCluster(t, 4, 0, freePort(t))
	_, _, err := runCmd(runKV, "get", "--config", cfg, "k")
	wantErr(t, err, filepath.Join("keys", "client-0.key"), "--key")

	stranger := filepath.Join(t.TempDir(), "stranger.key")
	if _, _, err := runCmd(runKeygen, "--out", stranger); err != nil {
		t.Fatal(err)
	}
	_, _, err = runCmd(runKV, "get", "--config", cfg, "--key", stranger, "k")
	wantErr(t, err, "stranger.key", "not admitted", "not in clients.keys")

	_, _, err = runCmd(runKV, "get", "--config", cfg, "--key", filepath.Join(t.TempDir(), "missing.key"), "k")
	wantErr(t, err, "missing.key")
}

func TestKVNoReplicaReachable(t *testing.T) {
	cfg := clientCluster(t, 1, 1, freePort(t))
	_, _, err := runCmd(runKV, "get", "--config", cfg, "--timeout", "20s", "k")
	wantErr(t, err, "no replica reachable")
	if strings.Contains(err.Error(), "--timeout") {
		t.Fatalf("error %q: want the unreachable cluster reported before the timeout", err)
	}
}

// fakeApp serves the client protocol for one application on n in-process
// replicas that share one agreed order (a lock) and execute every request
// on their own copy of the application.
type fakeApp struct {
	mu      sync.Mutex
	clients map[string]msg.ClientID // public key → id
	reps    []*fakeAppReplica
}

type fakeAppReplica struct {
	id    int
	app   app.Application
	conns map[msg.ClientID]*transport.ClientConn
	last  map[msg.ClientID]uint64
	cache map[msg.ClientID]*msg.Reply
}

// serveFakeApp starts fake replicas for the cluster at cfgPath (from
// clientCluster) and rewrites its client addresses to theirs.
func serveFakeApp(t *testing.T, cfgPath string, newApp func() app.Application) {
	t.Helper()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	clientKeys, err := cfg.ClientPublicKeys()
	if err != nil {
		t.Fatal(err)
	}
	fa := &fakeApp{clients: map[string]msg.ClientID{}}
	for id, k := range clientKeys {
		fa.clients[string(k)] = msg.ClientID(id)
	}
	for i := range cfg.N {
		key, err := cfg.ReplicaKey(i)
		if err != nil {
			t.Fatal(err)
		}
		r := &fakeAppReplica{id: i, app: newApp(), conns: map[msg.ClientID]*transport.ClientConn{},
			last: map[msg.ClientID]uint64{}, cache: map[msg.ClientID]*msg.Reply{}}
		fa.reps = append(fa.reps, r)
		tr, err := transport.New(transport.Config{ID: i, Listen: "127.0.0.1:0", Key: ed25519.PrivateKey(key)},
			func(int, []byte) {}, func(c *transport.ClientConn, f []byte) { fa.onClient(r, c, f) })
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		cfg.Replicas[i].ClientAddr = tr.Addr().String()
	}
	if err := cfg.Save(cfgPath); err != nil {
		t.Fatal(err)
	}
}

func (fa *fakeApp) onClient(r *fakeAppReplica, c *transport.ClientConn, frame []byte) {
	cr, ok := msg.UnmarshalAs[*msg.ClientRequest](frame)
	if !ok {
		return
	}
	req := cr.Request
	id, ok := fa.clients[string(c.PublicKey())]
	if !ok || id != req.Client || !auth.Verify(auth.PublicKey(c.PublicKey()), auth.ContextClient, req.SignedBytes(), req.Sig) {
		return
	}
	fa.mu.Lock()
	defer fa.mu.Unlock()
	r.conns[req.Client] = c
	if req.Number <= r.last[req.Client] {
		if rep := r.cache[req.Client]; rep != nil && rep.Number == req.Number {
			_ = c.Send(msg.Marshal(rep))
		}
		return
	}
	for _, o := range fa.reps {
		o.last[req.Client] = req.Number
		res := o.app.Execute(app.Caller(c.PublicKey()), req.Op)
		rep := &msg.Reply{Client: req.Client, Number: req.Number, Primary: msg.NoReplica, Result: res, From: msg.ReplicaID(o.id)}
		o.cache[req.Client] = rep
		if oc := o.conns[req.Client]; oc != nil {
			_ = oc.Send(msg.Marshal(rep))
		}
	}
}

func TestKVAgainstFakeCluster(t *testing.T) {
	cfg := clientCluster(t, 4, 2, freePort(t))
	serveFakeApp(t, cfg, func() app.Application { return kv.New(kv.Config{Scope: kv.Shared}) })
	runSession(t, "kv", runKV, cfg, []sessionStep{
		{[]string{"get", "greeting"}, "", `"greeting" not found`},
		{[]string{"put", "greeting", "hello"}, "ok\n", ""},
		{[]string{"get", "greeting"}, "hello\n", ""},
		{[]string{"put", "g2", "tab\there"}, "ok\n", ""},
		{[]string{"put", "h", "x"}, "ok\n", ""},
		{[]string{"scan", "g", "h"}, "g2\t\"tab\\there\"\ngreeting\thello\n", ""},
		{[]string{"scan", "--limit", "1", "h"}, "h\tx\n", ""},
		{[]string{"del", "greeting"}, "ok\n", ""},
		{[]string{"del", "greeting"}, "", `"greeting" not found`},
		{[]string{"get", "--key", filepath.Join(filepath.Dir(cfg), "keys", "client-1.key"), "h"}, "x\n", ""},
	})
}

func TestBankAgainstFakeCluster(t *testing.T) {
	cfg := clientCluster(t, 4, 2, freePort(t))
	serveFakeApp(t, cfg, func() app.Application { return bank.New() })
	client1 := filepath.Join(filepath.Dir(cfg), "keys", "client-1.key")
	runSession(t, "bank", runBank, cfg, []sessionStep{
		{[]string{"open", "alice"}, "opened account alice\n", ""},
		{[]string{"open", "--key", client1, "bob"}, "opened account bob\n", ""},
		{[]string{"deposit", "alice", "100"}, "deposited 100 into alice\n", ""},
		{[]string{"transfer", "alice", "bob", "50", "30"}, "executed: balance(alice) > 50, moved 30 from alice to bob\n", ""},
		{[]string{"transfer", "alice", "bob", "70", "30"}, "not executed: balance(alice) ≤ 70, nothing moved\n", ""},
		{[]string{"balance", "alice"}, "70\n", ""},
		{[]string{"balance", "bob"}, "30\n", ""},
		{[]string{"transfer", "bob", "alice", "0", "1"}, "", "does not own"},
		{[]string{"balance", "carol"}, "", "not found"},
	})
}

// sessionStep is one client command of a session and what it must print,
// or the error it must fail with.
type sessionStep struct {
	args []string // the subcommand and its arguments
	out  string   // its whole stdout, if it succeeds
	err  string   // part of its error; "" if it must succeed
}

// runSession runs the steps in order as `braid name` subcommands (run is
// runKV or runBank) against the cluster at cfgPath, each with --config and
// a --retransmit short enough for a fake cluster.
func runSession(t *testing.T, name string, run runFunc, cfgPath string, steps []sessionStep) {
	t.Helper()
	for _, s := range steps {
		args := append([]string{s.args[0], "--config", cfgPath, "--retransmit", "100ms"}, s.args[1:]...)
		out, _, err := runCmd(run, args...)
		if s.err != "" {
			wantErr(t, err, s.err)
			continue
		}
		if err != nil || out != s.out {
			t.Fatalf("%s %v = %q, %v; want %q", name, s.args, out, err, s.out)
		}
	}
}

func TestBankArgumentErrors(t *testing.T) {
	_, stderr, err := runCmd(runBank)
	wantUsageExit(t, err, stderr, "Usage: braid bank")
	_, stderr, err = runCmd(runBank, "withdraw", "a", "1")
	wantUsageExit(t, err, stderr, `unknown command "withdraw"`)
	long := strings.Repeat("x", bank.MaxNameLen+1)
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"open", "alice"}, []string{"--config is required"}},
		{[]string{"open", "--config", "c.json"}, []string{"want NAME"}},
		{[]string{"transfer", "--config", "c.json", "a", "b", "1"}, []string{"got 3 argument(s), want FROM TO N M"}},
		{[]string{"transfer", "--config", "c.json", "a", "b", "-5", "1"}, []string{`N "-5"`}},
		{[]string{"transfer", "--config", "c.json", "a", "b", "1", "lots"}, []string{`M "lots"`}},
		{[]string{"deposit", "--config", "c.json", "a", "18446744073709551616"}, []string{"AMOUNT"}},
		{[]string{"open", "--config", "c.json", long}, []string{fmt.Sprintf("1…%d bytes", bank.MaxNameLen)}},
		{[]string{"transfer", "--config", "c.json", "a", "", "1", "1"}, []string{`account name ""`}},
	} {
		_, _, err := runCmd(runBank, tt.args...)
		wantErr(t, err, tt.want...)
		if errors.Is(err, exitCode(2)) {
			t.Fatalf("%v: usage exit, want an error message", tt.args)
		}
	}
}
