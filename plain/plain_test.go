package plain

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/braid-bft/braid/app/bank"
	"github.com/braid-bft/braid/app/kv"
	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/client"
	"github.com/braid-bft/braid/config"
	"github.com/braid-bft/braid/internal/loopback"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/storage"
	"github.com/braid-bft/braid/transport"
)

// fixture is a one-server cluster file with one admitted client.
type fixture struct {
	cfg       *config.Config
	clientKey auth.PrivateKey
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	base, err := loopback.FreeBase(3)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default(1, 1)
	if err := cfg.SetLocalAddresses("127.0.0.1", base); err != nil {
		t.Fatal(err)
	}
	rpub, rkey, err := auth.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cpub, ckey, err := auth.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Replicas[0].PublicKey = auth.MarshalPublicKey(rpub)
	cfg.Replicas[0].HTTPAddr = ""
	cfg.Clients.Keys = []config.ClientKey{{ID: 7, PublicKey: auth.MarshalPublicKey(cpub)}}
	if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := auth.WritePrivateKeyFile(filepath.Join(dir, "keys", "replica-0.key"), rkey); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "cluster.json")
	if err := cfg.Save(path); err != nil {
		t.Fatal(err)
	}
	if cfg, err = config.Load(path); err != nil {
		t.Fatal(err)
	}
	return &fixture{cfg: cfg, clientKey: ckey}
}

// start runs a server until the test ends; the returned func waits for
// Run to return and gives its error.
func (f *fixture) start(t *testing.T, store storage.Interface) (wait func() error) {
	t.Helper()
	return f.startWith(t, Options{Store: store})
}

func (f *fixture) startWith(t *testing.T, opts Options) (wait func() error) {
	t.Helper()
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := New(f.cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var runErr error
	go func() {
		runErr = s.Run(ctx)
		close(done)
	}()
	// Run starts the listener; a client dialling before that is refused,
	// and with one replica Submit fails at once (seen in CI under load).
	waitListening(t, f.cfg.Replicas[0].ClientAddr, done)
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return func() error {
		<-done
		return runErr
	}
}

func (f *fixture) client(t *testing.T) *client.Client {
	t.Helper()
	c, err := client.New(f.cfg, 7, f.clientKey, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func submit(t *testing.T, c *client.Client, op []byte) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := c.Submit(ctx, op)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// The unchanged SDK, on an n = 1 cluster file, gets kv and bank results
// from the server, and what executed is in the ledger.
func TestServesKVAndBank(t *testing.T) {
	f := newFixture(t)
	store, err := storage.NewMemory(storage.Options{Fsync: storage.GroupCommit{Interval: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	f.start(t, store)
	c := f.client(t)
	if err := kv.DecodePut(submit(t, c, kv.Put([]byte("k"), []byte("v1")))); err != nil {
		t.Fatal(err)
	}
	v, found, err := kv.DecodeGet(submit(t, c, kv.Get([]byte("k"))))
	if err != nil || !found || string(v) != "v1" {
		t.Fatalf("get k: %q %v %v, want v1", v, found, err)
	}
	for _, op := range [][]byte{bank.Open("a"), bank.Open("b"), bank.Deposit("a", 10)} {
		submit(t, c, op)
	}
	if ok, err := bank.DecodeTransfer(submit(t, c, bank.Transfer("a", "b", 0, 3))); err != nil || !ok {
		t.Fatalf("transfer: %v %v", ok, err)
	}
	if bal, err := bank.DecodeBalance(submit(t, c, bank.Balance("a"))); err != nil || bal != 7 {
		t.Fatalf("balance a: %d %v, want 7", bal, err)
	}
	// Every reply waited for its block: all seven requests are stored.
	h, err := store.Height()
	if err != nil {
		t.Fatal(err)
	}
	stored := 0
	for i := uint64(1); i <= h; i++ {
		b, err := store.Block(i)
		if err != nil {
			t.Fatal(err)
		}
		stored += len(b.Requests)
		if i > 1 {
			prev, _ := store.Block(i - 1)
			if b.Prev != prev.Hash() {
				t.Fatalf("block %d does not chain to block %d", i, i-1)
			}
		}
	}
	if stored != 7 {
		t.Fatalf("%d requests in %d stored blocks, want 7", stored, h)
	}
}

// rawClient speaks the client transport directly, to send what the SDK
// never would: forged signatures and retransmissions.
type rawClient struct {
	t   *testing.T
	tc  *transport.Client
	key auth.PrivateKey
}

func (f *fixture) raw(t *testing.T) *rawClient {
	t.Helper()
	pubs, err := f.cfg.ReplicaPublicKeys()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var tc *transport.Client
	for { // the server may still be starting its listener
		tc, err = transport.Dial(ctx, f.cfg.Replicas[0].ClientAddr, ed25519.PublicKey(pubs[0]), ed25519.PrivateKey(f.clientKey), 0)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() { tc.Close() })
	return &rawClient{t: t, tc: tc, key: f.clientKey}
}

func (r *rawClient) send(num uint64, op []byte, forge bool) {
	r.t.Helper()
	req := msg.Request{Client: 7, Number: num, Op: op}
	req.Sig = auth.ClientSigner(r.key).Sign(req.SignedBytes())
	if forge {
		req.Sig = append([]byte(nil), req.Sig...)
		req.Sig[0] ^= 1
	}
	if err := r.tc.Send(msg.Marshal(&msg.ClientRequest{Request: req})); err != nil {
		r.t.Fatal(err)
	}
}

// until reads replies until one answers num and returns it with every
// number answered on the way.
func (r *rawClient) until(num uint64) (*msg.Reply, []uint64) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var seen []uint64
	for {
		frame, err := r.tc.Recv(ctx)
		if err != nil {
			r.t.Fatalf("waiting for the reply to %d (seen %v): %v", num, seen, err)
		}
		m, err := msg.Unmarshal(frame)
		if err != nil {
			r.t.Fatal(err)
		}
		rep, ok := m.(*msg.Reply)
		if !ok {
			r.t.Fatalf("got a %v, want a reply", m.Kind())
		}
		seen = append(seen, rep.Number)
		if rep.Number == num {
			return rep, seen
		}
	}
}

// A request whose signature does not verify is neither executed nor
// answered.
func TestForgedRequestNotExecuted(t *testing.T) {
	f := newFixture(t)
	store, _ := storage.NewMemory(storage.Options{Fsync: storage.GroupCommit{Interval: time.Hour}})
	f.start(t, store)
	r := f.raw(t)
	r.send(10, kv.Put([]byte("x"), []byte("forged")), true)
	r.send(11, kv.Get([]byte("x")), false)
	rep, seen := r.until(11)
	if len(seen) != 1 {
		t.Errorf("replies to %v, want only to 11", seen)
	}
	if v, found, err := kv.DecodeGet(rep.Result); err != nil || found {
		t.Fatalf("get x after a forged put: %q found=%v err=%v, want not found", v, found, err)
	}
}

// A retransmitted request executes once; the retransmission is answered
// from the reply cache.
func TestRetransmissionExecutesOnce(t *testing.T) {
	f := newFixture(t)
	store, _ := storage.NewMemory(storage.Options{Fsync: storage.GroupCommit{Interval: time.Hour}})
	f.start(t, store)
	r := f.raw(t)
	r.send(1, bank.Open("a"), false)
	r.send(2, bank.Open("b"), false)
	r.send(3, bank.Deposit("a", 10), false)
	r.until(3)
	transfer := bank.Transfer("a", "b", 0, 1)
	r.send(4, transfer, false)
	r.send(4, transfer, false) // verified alongside the original, or after it executed
	r.until(4)
	r.send(4, transfer, false) // after the reply: from the cache
	r.until(4)
	r.send(5, bank.Balance("a"), false)
	rep, _ := r.until(5)
	if bal, err := bank.DecodeBalance(rep.Result); err != nil || bal != 9 {
		t.Fatalf("balance of a after one transfer sent three times: %d %v, want 9", bal, err)
	}
}

// heldStore holds every Sync until the test releases it, then syncs (nil)
// or fails with the error released. Once freed (at the end of the test,
// whatever happened) it syncs without waiting.
type heldStore struct {
	*storage.Memory
	entered chan struct{}
	release chan error
	freed   chan struct{}
}

func (h *heldStore) Sync() error {
	select {
	case h.entered <- struct{}{}:
	case <-h.freed:
		return h.Memory.Sync()
	}
	select {
	case err := <-h.release:
		if err != nil {
			return err
		}
	case <-h.freed:
	}
	return h.Memory.Sync()
}

// hold runs a server on a heldStore, freed before the server stops.
func (f *fixture) hold(t *testing.T) (*heldStore, func() error) {
	m, err := storage.NewMemory(storage.Options{Fsync: storage.GroupCommit{Interval: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	h := &heldStore{Memory: m, entered: make(chan struct{}), release: make(chan error), freed: make(chan struct{})}
	wait := f.start(t, h)
	t.Cleanup(func() { close(h.freed) }) // runs before start's cleanup stops the server
	return h, wait
}

// No reply leaves before the block holding its request is durable.
func TestRepliesWaitForFsync(t *testing.T) {
	f := newFixture(t)
	store, _ := f.hold(t)
	c := f.client(t)
	done := make(chan error, 1)
	go func() {
		_, err := c.Submit(context.Background(), kv.Put([]byte("k"), []byte("v")))
		done <- err
	}()
	<-store.entered // the server's fsync of the put's block has begun
	select {
	case err := <-done:
		t.Fatalf("Submit returned (%v) while the block was not yet durable", err)
	case <-time.After(300 * time.Millisecond):
	}
	store.release <- nil
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A failed fsync stops the server, and the request it held is never
// answered.
func TestFsyncFailureStops(t *testing.T) {
	f := newFixture(t)
	store, wait := f.hold(t)
	c := f.client(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Submit(ctx, kv.Put([]byte("k"), []byte("v")))
		done <- err
	}()
	<-store.entered
	disk := errors.New("disk on fire")
	store.release <- disk
	stopped := make(chan error, 1)
	go func() { stopped <- wait() }()
	var err error
	select {
	case err = <-stopped:
	case <-time.After(20 * time.Second):
		t.Fatal("the server still runs 20 s after its fsync failed")
	}
	if !errors.Is(err, disk) || !strings.Contains(err.Error(), "fsync") {
		t.Fatalf("Run returned %v, want the fsync failure", err)
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("Submit got a result for a request whose block never became durable")
	}
}

func TestNeedsOneServer(t *testing.T) {
	cfg := config.Default(4, 0)
	if _, err := New(cfg, Options{}); err == nil || !strings.Contains(err.Error(), "needs n = 1") {
		t.Fatalf("New on n = 4: %v, want an error naming n = 1", err)
	}
}

// A client's requests execute in the order they arrived even when a later
// one's signature check finishes first: otherwise the later one would
// execute and make the earlier one look like an old retransmission.
func TestArrivalOrderAcrossBatches(t *testing.T) {
	f := newFixture(t)
	first, second := make(chan struct{}), make(chan struct{})
	release := make(chan struct{})
	var calls atomic.Int32
	verify := func(items []auth.BatchItem) []bool {
		switch calls.Add(1) {
		case 1:
			close(first)
			<-release
		case 2:
			defer close(second)
		}
		return auth.VerifyBatch(items)
	}
	store, _ := storage.NewMemory(storage.Options{Fsync: storage.GroupCommit{Interval: time.Hour}})
	f.startWith(t, Options{Store: store, Cores: 2, verifyBatch: verify})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	r := f.raw(t)
	r.send(1, bank.Open("a"), false)
	<-first // request 1's check has begun and is held
	r.send(2, bank.Deposit("a", 5), false)
	<-second // request 2 is checked, in a batch of its own
	got := make(chan *msg.Reply, 1)
	go func() {
		frame, err := r.tc.Recv(context.Background())
		if err != nil {
			return
		}
		if m, err := msg.Unmarshal(frame); err == nil {
			if rep, ok := m.(*msg.Reply); ok {
				got <- rep
			}
		}
	}()
	select {
	case rep := <-got:
		t.Fatalf("reply to request %d while request 1 was still being checked", rep.Number)
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	rep := <-got
	if rep.Number != 1 {
		t.Fatalf("first reply is to request %d, want 1", rep.Number)
	}
	if rep, _ = r.until(2); bank.DecodeDeposit(rep.Result) != nil {
		t.Fatalf("deposit after open: %v", bank.DecodeDeposit(rep.Result))
	}
}

// waitListening returns once addr accepts TCP connections, failing the
// test if the server exits first or it takes longer than 20 s.
func waitListening(t *testing.T, addr string, exited <-chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("the server exited before listening on %s", addr)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listening on %s after 20 s", addr)
		}
	}
}
