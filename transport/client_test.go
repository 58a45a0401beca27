package transport

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"
)

// startEchoReplica starts replica 0 of a one-replica configuration whose
// client handler replies "echo:"+frame and records the client key.
func startEchoReplica(t *testing.T, tweak func(*Config)) (*Transport, ed25519.PublicKey, chan ed25519.PublicKey) {
	t.Helper()
	key := newKey(t)
	seen := make(chan ed25519.PublicKey, 1)
	cfg := Config{ID: 0, Listen: "127.0.0.1:0", Key: key, Peers: map[int]Peer{0: {PublicKey: pub(key)}}, Logger: testLogger()}
	if tweak != nil {
		tweak(&cfg)
	}
	tr, err := New(cfg, func(int, []byte) { t.Error("unexpected peer frame") }, func(c *ClientConn, f []byte) {
		select {
		case seen <- c.PublicKey():
		default:
		}
		if err := c.Send(append([]byte("echo:"), f...)); err != nil {
			t.Errorf("reply: %v", err)
		}
	})
	if err := err; err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr, pub(key), seen
}

// TestClient: a client dials, sends frames, and receives the replica's
// replies in order; the handler sees the client's key as its identity.
func TestClient(t *testing.T) {
	checkLeaks(t)
	tr, serverKey, seen := startEchoReplica(t, nil)
	ctx := testContext(t)
	clientKey := newKey(t)
	cl, err := Dial(ctx, tr.Addr().String(), serverKey, clientKey, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const n = 200
	for i := 0; i < n; i++ {
		if err := cl.Send([]byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		f, err := cl.Recv(ctx)
		if err != nil {
			t.Fatalf("Recv %d: %v", i, err)
		}
		if want := fmt.Sprintf("echo:%d", i); string(f) != want {
			t.Fatalf("reply %d = %q, want %q", i, f, want)
		}
	}
	if k := <-seen; !k.Equal(pub(clientKey)) {
		t.Fatal("handler saw a different client key")
	}
	if s := tr.Stats(); s.ClientsConnected != 1 || s.ClientFramesReceived != n {
		t.Fatalf("stats: %+v", s)
	}
	// Closing the replica ends the client's stream.
	tr.Close()
	if _, err := cl.Recv(ctx); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Recv after server close: %v", err)
	}
	if err := cl.Send([]byte("x")); err == nil {
		t.Fatal("Send after connection loss succeeded")
	}
	if got := tr.Stats().ClientsConnected; got != 0 {
		t.Fatalf("ClientsConnected after close = %d", got)
	}
}

// TestClientRejections: a client refuses a replica with the wrong key, and
// a replica refuses clients beyond MaxClients or when it serves none.
func TestClientRejections(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t)
	tr, serverKey, _ := startEchoReplica(t, func(c *Config) { c.MaxClients = 1 })
	addr := tr.Addr().String()

	if _, err := Dial(ctx, addr, pub(newKey(t)), newKey(t), 0); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("wrong server key: %v", err)
	}
	first, err := Dial(ctx, addr, serverKey, newKey(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if _, err := Dial(ctx, addr, serverKey, newKey(t), 0); err == nil {
		t.Fatal("client beyond MaxClients accepted")
	}
	if got := tr.Stats().BusyRejected; got != 1 {
		t.Fatalf("BusyRejected = %d", got)
	}
	// The admitted client still works.
	if err := first.Send([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if f, err := first.Recv(ctx); err != nil || !bytes.Equal(f, []byte("echo:ping")) {
		t.Fatalf("Recv = %q, %v", f, err)
	}
	// A client-side Close frees the slot.
	first.Close()
	waitUntil(t, "client slot freed", func() bool { return tr.Stats().ClientsConnected == 0 })
	second, err := Dial(ctx, addr, serverKey, newKey(t), 0)
	if err != nil {
		t.Fatalf("after slot freed: %v", err)
	}
	second.Close()
	if _, err := second.Recv(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Recv after Close: %v", err)
	}
}

// TestClientOversizedFrame: a client sending more than the replica's
// MaxFrame is disconnected and counted.
func TestClientOversizedFrame(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t)
	tr, serverKey, _ := startEchoReplica(t, func(c *Config) { c.MaxFrame = 64 })
	cl, err := Dial(ctx, tr.Addr().String(), serverKey, newKey(t), 1024) // client allows more than server
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Send(make([]byte, 65)); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Recv(ctx); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Recv: %v, want connection closed", err)
	}
	if got := tr.Stats().RecvTooLarge; got != 1 {
		t.Fatalf("RecvTooLarge = %d", got)
	}
}
