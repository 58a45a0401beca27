package replica

import (
	"context"
	"crypto/ed25519"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/braid-bft/braid/app/kv"
	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/config"
	"github.com/braid-bft/braid/internal/testcluster"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/storage"
	"github.com/braid-bft/braid/transport"
)

// Tests of issue 8: what a correct replica must never do after a crash, a
// storage failure or a hostile state-transfer peer.

var errInjected = errors.New("injected storage fault")

// failingStore is a disk that is gone: every write and sync fails.
type failingStore struct{ storage.Interface }

func (failingStore) Apply(*storage.Batch) error { return errInjected }
func (failingStore) Sync() error                { return errInjected }
func (failingStore) Close() error               { return nil }

func newReplica(t *testing.T, cfg *config.Config, id int, st storage.Interface) *Replica {
	t.Helper()
	r, err := New(cfg, id, Options{Logger: testcluster.Logger(), Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.front.Close(); r.peers.Close() })
	return r
}

// put is a signed kv put by client c.
func put(ckey auth.PrivateKey, c msg.ClientID, num uint64, k, v string) msg.Request {
	req := msg.Request{Client: c, Number: num, Op: kv.Put([]byte(k), []byte(v))}
	req.Sig = auth.ClientSigner(ckey).Sign(req.SignedBytes())
	return req
}

// Item 3: a failed write stops the replica (Run returns ErrFailStop) and
// nothing that depended on it is sent.
func TestStorageFailureStopsTheReplica(t *testing.T) {
	cfg, ckey := testcluster.Config(t, 4, true)
	mem := testcluster.MemStore(t)
	var mu sync.Mutex
	var sent []msg.Message
	r, err := New(cfg, 1, Options{Logger: testcluster.Logger(), Store: failingStore{mem},
		Sent: func(m msg.Message) { mu.Lock(); sent = append(sent, m); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	pkey, err := cfg.ReplicaKey(0)
	if err != nil {
		t.Fatal(err)
	}
	pp := &msg.PrePrepare{View: 0, Seq: 1, From: 0, Batch: msg.Batch{Requests: []msg.Request{put(ckey, 0, 1, "k", "v")}}}
	pp.Digest = pp.Batch.Digest()
	pp.Sig = auth.ReplicaSigner(pkey).Sign(msg.SignedBytes(pp))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	frame := msg.Marshal(pp)
	r.enqueue(&r.ingress[0], func() { r.sh.OnPeer(0, frame) }) // the prepare it causes must be persisted first
	select {
	case err := <-done:
		if !errors.Is(err, ErrFailStop) || !errors.Is(err, errInjected) {
			t.Fatalf("Run returned %v; want a fail-stop error wrapping the storage error", err)
		}
	case <-time.After(30 * time.Second):
		cancel()
		<-done
		t.Fatal("the replica kept running after a failed write")
	}
	mu.Lock()
	defer mu.Unlock()
	for _, m := range sent {
		if _, ok := m.(*msg.Prepare); ok {
			t.Fatalf("sent a prepare it could not persist: %+v", m)
		}
	}
}

// Item 10: a replica whose event queue is full when it stops (peer read
// loops blocked handing it frames) still shuts down.
func TestStopUnderFullLoad(t *testing.T) {
	cfg, _ := testcluster.Config(t, 4, true)
	r := newReplica(t, cfg, 1, testcluster.MemStore(t))
	if err := r.peers.Start(); err != nil {
		t.Fatal(err)
	}
	key0, err := cfg.ReplicaKey(0)
	if err != nil {
		t.Fatal(err)
	}
	pub1, _ := auth.ParsePublicKey(cfg.Replicas[1].PublicKey)
	blaster, err := transport.New(transport.Config{ID: 0, Listen: "127.0.0.1:0",
		Peers: map[int]transport.Peer{1: {Addr: cfg.Replicas[1].Addr, PublicKey: ed25519.PublicKey(pub1)}},
		Key:   ed25519.PrivateKey(key0), Logger: testcluster.Logger()}, func(int, []byte) {}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := blaster.Start(); err != nil {
		t.Fatal(err)
	}
	defer blaster.Close()
	// First a frame arrives: the peer link is up and its read loop feeds
	// the replica's queue.
	deadline := time.Now().Add(60 * time.Second)
	marker := []byte("marker")
	for arrived := false; !arrived; {
		_ = blaster.Send(1, marker)
		select {
		case <-r.frames: // from the only peer connected
			arrived = true
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no frame from the peer arrived")
		}
	}
	// The loop is not reading: fill its queue, then send until the read
	// loop is blocked handing a frame to the full event queue.
	for full := false; !full; {
		select {
		case r.frames <- event{&r.clientIngress, func() {}}:
		default:
			full = true
		}
	}
	// A frame read after the queue filled can only be stuck in the
	// handler: nothing drains the queue.
	before := r.peers.Stats().FramesReceived
	for r.peers.Stats().FramesReceived < before+1 {
		_ = blaster.Send(1, []byte{1})
		if time.Now().After(deadline) {
			t.Fatal("no frame read after the queue filled")
		}
		time.Sleep(time.Millisecond) // pacing the sender while polling a counter, not ordering events
	}
	closed := make(chan error, 1)
	go func() { closed <- r.close() }()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("close hangs with a full event queue")
	}
}
