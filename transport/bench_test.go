package transport

import (
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkSendRecv measures one-way loopback throughput of 256-byte frames
// from replica 0 to replica 1 over TLS, including handler delivery. A full
// queue is treated as backpressure: the sender yields and retries.
func BenchmarkSendRecv(b *testing.B) {
	const size = 256
	c := newKeys(b, 2)
	var got atomic.Int64
	var target int64
	done := make(chan struct{})
	t1, err := New(c.config(1, "127.0.0.1:0", nil), func(int, []byte) {
		if got.Add(1) == atomic.LoadInt64(&target) {
			close(done)
		}
	}, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := t1.Start(); err != nil {
		b.Fatal(err)
	}
	defer t1.Close()
	c.peers[1] = Peer{Addr: t1.Addr().String(), PublicKey: pub(c.keys[1])}
	t0 := c.start(b, 0, "127.0.0.1:0", nil)

	// Warm up: establish the connection before timing.
	atomic.StoreInt64(&target, 1)
	if err := t0.Send(1, make([]byte, size)); err != nil {
		b.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(testTimeout):
		b.Fatal("warm-up frame not delivered")
	}
	got.Store(0)
	done = make(chan struct{})
	atomic.StoreInt64(&target, int64(b.N))

	frame := make([]byte, size)
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		for {
			err := t0.Send(1, frame)
			if err == nil {
				break
			}
			if !errors.Is(err, ErrQueueFull) {
				b.Fatal(err)
			}
			runtime.Gosched()
		}
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		b.Fatalf("delivered %d of %d", got.Load(), b.N)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "frames/s")
}
