package client

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/config"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/transport"
)

// Client 1 belongs to instance 1 mod n, whose initial primary is replica 1.
const (
	cid     = msg.ClientID(1)
	primary = 1
)

func guardCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	t.Cleanup(cancel)
	return ctx
}

func mustSubmit(t *testing.T, c *Client, o []byte) {
	t.Helper()
	res, err := c.Submit(guardCtx(t), o)
	if err != nil {
		t.Fatalf("Submit(%q): %v", o, err)
	}
	if want := resultOf(o); !bytes.Equal(res, want) {
		t.Fatalf("Submit(%q) = %q, want %q", o, res, want)
	}
}

// mustNotAccept submits o with a deadline of a second and fails the test
// unless the deadline ends Submit: no result may be accepted, for the
// reason why gives.
func mustNotAccept(t *testing.T, c *Client, o []byte, why string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	res, err := c.Submit(ctx, o)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Submit = %q, %v; want no result (%s) and a deadline error", res, err, why)
	}
}

// submitAsync runs Submit on its own goroutine.
func submitAsync(ctx context.Context, c *Client, o []byte) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := c.Submit(ctx, o)
		done <- err
	}()
	return done
}

func waitErr(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(guard):
		t.Fatal("Submit did not return")
		return nil
	}
}

// (a) The first request goes to the primary; f+1 matching replies make the
// result. Once every replica has the client's connection, the primary's
// ordering alone produces f+1 replies and nothing is retransmitted.
func TestSubmitAcceptsMatchingReplies(t *testing.T) {
	cl := newFakeCluster(t, 4, nil)
	c := cl.client(cid, Options{Timeout: 500 * time.Millisecond})

	mustSubmit(t, c, op("a"))
	if first := cl.waitArrival("first request", func(received) bool { return true }); first.replica != primary {
		t.Fatalf("first request went to replica %d, want the primary %d", first.replica, primary)
	}
	mustSubmit(t, c, op("b"))
	for i := range 4 {
		if i == primary {
			continue
		}
		for _, r := range cl.requests(i) {
			if string(r.Op) == "b" {
				t.Errorf("request b reached backup %d although f+1 replies were due without retransmission", i)
			}
		}
	}
}

// f+1 replies suffice when the other replicas never answer.
func TestSubmitAcceptsExactlyFPlusOne(t *testing.T) {
	cl := newFakeCluster(t, 4, map[int]mode{2: silent, 3: silent})
	c := cl.client(cid, Options{Timeout: guard, Broadcast: true})
	mustSubmit(t, c, op("x"))
}

// The Primary hint of accepted replies addresses the next request.
func TestSubmitFollowsPrimaryHint(t *testing.T) {
	cl := newFakeCluster(t, 4, nil)
	cl.hint = 3
	c := cl.client(cid, Options{Timeout: 500 * time.Millisecond})
	mustSubmit(t, c, op("a"))
	mustSubmit(t, c, op("b"))
	r := cl.waitArrival("request b", func(r received) bool { return string(r.req.Op) == "b" })
	if r.replica != 3 {
		t.Fatalf("request b first went to replica %d, want the hinted primary 3", r.replica)
	}
}

// liar replies to every request with wrong results, garbage frames, and
// replies to other requests.
func liar(result string) func(fr *fakeReplica, c *transport.ClientConn, req msg.Request) {
	return func(fr *fakeReplica, c *transport.ClientConn, req msg.Request) {
		from := msg.ReplicaID(fr.id)
		_ = c.Send([]byte{0xff, 0x00, 0x01})
		_ = c.Send(msg.Marshal(&msg.Prepare{From: from}))
		for _, res := range []string{"other " + result, result} { // changes its vote
			fr.send(c, &msg.Reply{Client: req.Client, Number: req.Number, Primary: from, Result: []byte(res), From: from})
		}
		fr.send(c, &msg.Reply{Client: req.Client, Number: req.Number + 1, Result: []byte(result), From: from})
		fr.send(c, &msg.Reply{Client: req.Client + 1, Number: req.Number, Result: []byte(result), From: from})
	}
}

// (b) Byzantine replicas never make the client accept a wrong result.
func TestByzantineRepliesNeverAccepted(t *testing.T) {
	tests := []struct {
		name          string
		n             int
		liars, silent []int // see liar; the rest are honest
		broadcast     bool
		// noResult, if set, says why no result can be accepted; otherwise
		// every submission must return the honest result.
		noResult string
	}{
		{name: "lying primary", n: 4, liars: []int{primary}},
		{name: "one honest, one liar", n: 4, liars: []int{primary}, silent: []int{0, 3},
			noResult: "1 honest + 1 liar < f+1 matching"},
		{name: "f colluders of 7", n: 7, liars: []int{1, 4}, silent: []int{2, 3, 6}, broadcast: true, // f = 2: two colluders, two honest
			noResult: "2 honest and 2 colluding replies: neither reaches f+1 = 3"},
		{name: "f colluders of 7, rest honest", n: 7, liars: []int{1, 4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			modes := map[int]mode{}
			for _, i := range tc.silent {
				modes[i] = silent
			}
			for _, i := range tc.liars {
				modes[i] = custom
			}
			cl := newFakeCluster(t, tc.n, modes)
			for _, i := range tc.liars {
				cl.reps[i].handler = liar("forged")
			}
			c := cl.client(cid, Options{Timeout: 100 * time.Millisecond, Broadcast: tc.broadcast})
			if tc.noResult != "" {
				mustNotAccept(t, c, op("x"), tc.noResult)
				return
			}
			for i := range 3 {
				mustSubmit(t, c, op("op%d", i))
			}
		})
	}
}

// (c) A silent primary makes the client retransmit to all replicas.
func TestRetransmitToAllWhenPrimarySilent(t *testing.T) {
	cl := newFakeCluster(t, 4, map[int]mode{primary: silent})
	c := cl.client(cid, Options{Timeout: 100 * time.Millisecond})
	mustSubmit(t, c, op("x"))
	if first := cl.waitArrival("first request", func(received) bool { return true }); first.replica != primary {
		t.Fatalf("first request went to replica %d, want the primary %d", first.replica, primary)
	}
	backups := 0
	for i := range 4 {
		if i != primary && len(cl.requests(i)) > 0 {
			backups++
		}
	}
	if backups < 2 {
		t.Errorf("only %d backups received the request, f+1 = 2 needed to answer", backups)
	}
}

// A primary that refuses connections makes the client go to everyone at
// once, without waiting for the retransmission timeout.
func TestUnreachablePrimaryFallsBackImmediately(t *testing.T) {
	cl := newFakeCluster(t, 4, nil)
	cl.cfg.Replicas[primary].ClientAddr = closedAddr(t)
	c := cl.client(cid, Options{Timeout: guard})
	mustSubmit(t, c, op("x"))
}

// A replica that stalls in the handshake does not hold up the others.
func TestStalledReplicaDoesNotBlockOthers(t *testing.T) {
	cl := newFakeCluster(t, 4, nil)
	cl.cfg.Replicas[primary].ClientAddr = blackhole(t)
	c := cl.client(cid, Options{Timeout: 100 * time.Millisecond, DialTimeout: guard})
	mustSubmit(t, c, op("x"))
	mustSubmit(t, c, op("y"))
}

// (d) Cancelling the context ends Submit promptly, also while it waits for
// an earlier Submit.
func TestSubmitContextCancellation(t *testing.T) {
	cl := newFakeCluster(t, 4, map[int]mode{0: silent, 1: silent, 2: silent, 3: silent})
	c := cl.client(cid, Options{Timeout: 50 * time.Millisecond})

	ctx1, cancel1 := context.WithCancel(context.Background())
	defer cancel1()
	first := submitAsync(ctx1, c, op("first"))
	cl.waitArrival("first request", func(r received) bool { return string(r.req.Op) == "first" })

	ctx2, cancel2 := context.WithCancel(context.Background())
	queued := submitAsync(ctx2, c, op("queued"))
	cancel2()
	if err := waitErr(t, queued); !errors.Is(err, context.Canceled) {
		t.Fatalf("queued Submit: %v, want context.Canceled", err)
	}

	cancel1()
	if err := waitErr(t, first); !errors.Is(err, context.Canceled) {
		t.Fatalf("Submit: %v, want context.Canceled", err)
	}

	ctx3, cancel3 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel3()
	if _, err := c.Submit(ctx3, op("late")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Submit: %v, want context.DeadlineExceeded", err)
	}
}

// (e) Many goroutines may submit at once; requests are serialised with
// increasing numbers and each executes once.
func TestConcurrentSubmit(t *testing.T) {
	cl := newFakeCluster(t, 4, nil)
	start := uint64(time.Now().UnixNano())
	c := cl.client(cid, Options{Timeout: 200 * time.Millisecond})
	const goroutines, each = 16, 8
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				o := op("g%d-%d", g, i)
				res, err := c.Submit(guardCtx(t), o)
				if err != nil {
					t.Errorf("Submit(%q): %v", o, err)
					return
				}
				if !bytes.Equal(res, resultOf(o)) {
					t.Errorf("Submit(%q) = %q", o, res)
				}
			}
		})
	}
	wg.Wait()
	cl.mu.Lock()
	defer cl.mu.Unlock()
	for _, fr := range cl.reps {
		if len(fr.executed) != goroutines*each {
			t.Errorf("replica %d executed %d requests, want %d", fr.id, len(fr.executed), goroutines*each)
		}
		for i, n := range fr.executed {
			if n < start || (i > 0 && n <= fr.executed[i-1]) {
				t.Fatalf("replica %d: request numbers not increasing from the clock: %v", fr.id, fr.executed)
			}
		}
	}
}

// (f) Replies whose From names another replica than the link's are ignored.
func TestSpoofedSenderIgnored(t *testing.T) {
	cl := newFakeCluster(t, 4, map[int]mode{0: silent, 2: custom, 3: silent})
	cl.reps[2].handler = func(fr *fakeReplica, c *transport.ClientConn, req msg.Request) {
		for _, from := range []msg.ReplicaID{0, 1, 3, msg.NoReplica} {
			fr.send(c, &msg.Reply{Client: req.Client, Number: req.Number, Result: resultOf(req.Op), From: from})
		}
	}
	c := cl.client(cid, Options{Timeout: 100 * time.Millisecond, Broadcast: true})
	mustNotAccept(t, c, op("x"), "one genuine reply, the rest spoofed")
}

func TestNoReplicasReachable(t *testing.T) {
	cl := newFakeCluster(t, 4, nil)
	for i := range cl.cfg.Replicas {
		cl.cfg.Replicas[i].ClientAddr = closedAddr(t)
	}
	c := cl.client(cid, Options{Timeout: guard})
	for range 2 { // the second time every replica is in backoff
		_, err := c.Submit(guardCtx(t), op("x"))
		if !errors.Is(err, ErrNoReplicas) || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Submit: %v, want ErrNoReplicas before the deadline", err)
		}
	}
}

// Connections dropped by the replicas are re-established.
func TestReconnectAfterDisconnect(t *testing.T) {
	cl := newFakeCluster(t, 4, nil)
	c := cl.client(cid, Options{Timeout: 100 * time.Millisecond})
	mustSubmit(t, c, op("a"))
	cl.mu.Lock()
	for _, fr := range cl.reps {
		for id, conn := range fr.conns {
			conn.Close()
			delete(fr.conns, id)
		}
	}
	cl.mu.Unlock()
	mustSubmit(t, c, op("b"))
}

func TestCloseEndsSubmit(t *testing.T) {
	cl := newFakeCluster(t, 4, map[int]mode{0: silent, 1: silent, 2: silent, 3: silent})
	c := cl.client(cid, Options{Timeout: 50 * time.Millisecond})
	done := submitAsync(context.Background(), c, op("x"))
	cl.waitArrival("request", func(received) bool { return true })
	c.Close()
	if err := waitErr(t, done); !errors.Is(err, ErrClosed) {
		t.Fatalf("Submit: %v, want ErrClosed", err)
	}
	if _, err := c.Submit(context.Background(), op("y")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Submit after Close: %v, want ErrClosed", err)
	}
	c.Close()
}

func TestNewChecksAdmission(t *testing.T) {
	cl := newFakeCluster(t, 4, nil)
	if _, err := New(cl.cfg, 1, cl.clients[2], Options{}); !errors.Is(err, ErrNotAdmitted) {
		t.Errorf("New with another client's key: %v, want ErrNotAdmitted", err)
	}
	if _, err := New(cl.cfg, 99, cl.clients[2], Options{}); !errors.Is(err, ErrNotAdmitted) {
		t.Errorf("New with an unlisted id: %v, want ErrNotAdmitted", err)
	}
	// "open" admission is gone: an unlisted id is never admitted.
	cl.cfg.Clients.Admission = config.Admission("open")
	if _, err := New(cl.cfg, 99, cl.clients[2], Options{}); !errors.Is(err, ErrNotAdmitted) {
		t.Errorf("New with an unlisted id under admission %q: %v, want ErrNotAdmitted", cl.cfg.Clients.Admission, err)
	}
}

func TestLoadIdentity(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default(4, 4)
	for i := range cfg.Replicas {
		pub, _, err := auth.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Replicas[i].PublicKey = auth.MarshalPublicKey(pub)
	}
	if err := os.Mkdir(filepath.Join(dir, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	keyPath := func(name string) string { return filepath.Join(dir, "keys", name) }
	var privs []auth.PrivateKey
	for j := range 3 {
		pub, priv, err := auth.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		privs = append(privs, priv)
		if j < 2 {
			cfg.Clients.Keys = append(cfg.Clients.Keys, config.ClientKey{ID: uint64(10 + j), PublicKey: auth.MarshalPublicKey(pub)})
		}
	}
	for j, name := range []string{"client-0.key", "client-1.key", "stranger.key"} {
		if err := auth.WritePrivateKeyFile(keyPath(name), privs[j]); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath := filepath.Join(dir, "cluster.json")
	if err := cfg.Save(cfgPath); err != nil {
		t.Fatal(err)
	}

	got, id, key, err := LoadIdentity(cfgPath, "")
	if err != nil || id != 10 || !key.Public().Equal(privs[0].Public()) || got.N != 4 {
		t.Fatalf("LoadIdentity(default key) = id %d, %v", id, err)
	}
	if _, id, _, err = LoadIdentity(cfgPath, keyPath("client-1.key")); err != nil || id != 11 {
		t.Fatalf("LoadIdentity(client-1) = id %d, %v", id, err)
	}
	if _, _, _, err = LoadIdentity(cfgPath, keyPath("stranger.key")); !errors.Is(err, ErrNotAdmitted) || !strings.Contains(err.Error(), "stranger.key") {
		t.Fatalf("LoadIdentity(unlisted key) = %v, want ErrNotAdmitted naming the file", err)
	}
	if _, _, _, err = LoadIdentity(cfgPath, keyPath("missing.key")); err == nil || !strings.Contains(err.Error(), "missing.key") {
		t.Fatalf("LoadIdentity(missing key) = %v", err)
	}
	if _, _, _, err = LoadIdentity(filepath.Join(dir, "nope.json"), ""); err == nil || !strings.Contains(err.Error(), "nope.json") {
		t.Fatalf("LoadIdentity(missing config) = %v", err)
	}
}
