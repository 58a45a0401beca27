package transport

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

// testTimeout is a failure guard only; tests synchronise on events.
const testTimeout = 20 * time.Second

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// testLogger logs to stderr only with -v, to keep failures debuggable.
func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

// checkLeaks fails the test if goroutines started during it are still
// running shortly after its cleanups. Register it first so its cleanup
// runs last.
func checkLeaks(t testing.TB) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf)
				return
			}
			time.Sleep(10 * time.Millisecond) // bounded poll, not synchronisation
		}
	})
}

// testContext bounds a test's blocking calls by the guard timeout; it is
// cancelled when the test ends.
func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// waitUntil polls cond (for state that has no event to wait on, such as
// counters) until it holds or the guard timeout expires.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// recorder is a peer handler that stores frames per sender and wakes
// waiters on every arrival.
type recorder struct {
	mu     sync.Mutex
	frames map[int][][]byte
	notify chan struct{}
}

func newRecorder() *recorder {
	return &recorder{frames: make(map[int][][]byte), notify: make(chan struct{}, 1)}
}

func (r *recorder) handle(from int, f []byte) {
	r.mu.Lock()
	r.frames[from] = append(r.frames[from], f)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *recorder) get(from int) [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.frames[from]...)
}

func (r *recorder) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, fs := range r.frames {
		n += len(fs)
	}
	return n
}

// wait blocks until cond holds, re-checking on every delivered frame.
func (r *recorder) wait(t testing.TB, what string, cond func() bool) {
	t.Helper()
	guard := time.NewTimer(testTimeout)
	defer guard.Stop()
	for !cond() {
		select {
		case <-r.notify:
		case <-guard.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// waitFrame waits for a frame equal to want from sender from.
func (r *recorder) waitFrame(t testing.TB, from int, want []byte) {
	t.Helper()
	r.wait(t, fmt.Sprintf("frame %q from %d", want, from), func() bool {
		for _, f := range r.get(from) {
			if bytes.Equal(f, want) {
				return true
			}
		}
		return false
	})
}

// cluster builds n replicas on 127.0.0.1:0. Replicas are started from the
// highest id down, so every dialer already knows the (ephemeral) addresses
// of the higher ids it must dial.
type cluster struct {
	keys  []ed25519.PrivateKey
	peers map[int]Peer
	ts    []*Transport
	recs  []*recorder
}

func newCluster(t testing.TB, n int, tweak func(*Config)) *cluster {
	t.Helper()
	c := newKeys(t, n)
	for i := n - 1; i >= 0; i-- {
		c.ts[i] = c.start(t, i, "127.0.0.1:0", tweak)
	}
	return c
}

// newKeys prepares keys and recorders for n replicas without starting any.
func newKeys(t testing.TB, n int) *cluster {
	t.Helper()
	c := &cluster{peers: make(map[int]Peer), ts: make([]*Transport, n), recs: make([]*recorder, n)}
	for i := 0; i < n; i++ {
		c.keys = append(c.keys, newKey(t))
		c.peers[i] = Peer{PublicKey: pub(c.keys[i])}
		c.recs[i] = newRecorder()
	}
	return c
}

func (c *cluster) config(id int, listen string, tweak func(*Config)) Config {
	peers := make(map[int]Peer, len(c.peers))
	for k, v := range c.peers {
		peers[k] = v
	}
	cfg := Config{
		ID: id, Listen: listen, Peers: peers, Key: c.keys[id],
		BackoffMin: 5 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
		JitterSeed: 1, Logger: testLogger(),
	}
	if tweak != nil {
		tweak(&cfg)
	}
	return cfg
}

// start creates and starts replica id and publishes its address.
func (c *cluster) start(t testing.TB, id int, listen string, tweak func(*Config)) *Transport {
	t.Helper()
	tr, err := New(c.config(id, listen, tweak), c.recs[id].handle, nil)
	if err != nil {
		t.Fatalf("New(%d): %v", id, err)
	}
	if err := tr.Start(); err != nil {
		t.Fatalf("Start(%d): %v", id, err)
	}
	t.Cleanup(func() { tr.Close() })
	c.peers[id] = Peer{Addr: tr.Addr().String(), PublicKey: pub(c.keys[id])}
	return tr
}
