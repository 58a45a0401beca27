package transport

import (
	"errors"
	"sync"
)

var (
	// ErrQueueFull is returned by Send when the destination's queue is at
	// its frame or byte limit. The frame was dropped and counted.
	ErrQueueFull = errors.New("transport: send queue full")
	// ErrClosed is returned for operations on a closed transport or
	// connection.
	ErrClosed = errors.New("transport: closed")
)

// sendQueue is a bounded FIFO of outbound frames for one destination,
// drained by a single writer goroutine.
//
// Bytes stay accounted until the writer has handed them to the connection
// (release), not merely until dequeued, so a writer stuck on a peer that
// does not read keeps the queue "full" and the bound covers everything we
// hold for that peer.
type sendQueue struct {
	maxFrames int
	maxBytes  int
	ready     chan struct{} // capacity 1: "queue may be non-empty"

	mu     sync.Mutex
	frames [][]byte
	bytes  int // queued + dequeued-but-unreleased, including headers
	closed bool
}

func newSendQueue(maxFrames, maxBytes int) *sendQueue {
	return &sendQueue{maxFrames: maxFrames, maxBytes: maxBytes, ready: make(chan struct{}, 1)}
}

// frameCost is what a frame counts against the byte bound.
func frameCost(f []byte) int { return len(f) + frameHeaderLen }

// push enqueues f without blocking.
func (q *sendQueue) push(f []byte) error {
	cost := frameCost(f)
	if cost > q.maxBytes {
		return ErrFrameTooLarge
	}
	q.mu.Lock()
	switch {
	case q.closed:
		q.mu.Unlock()
		return ErrClosed
	case len(q.frames) >= q.maxFrames || q.bytes+cost > q.maxBytes:
		q.mu.Unlock()
		return ErrQueueFull
	}
	q.frames = append(q.frames, f)
	q.bytes += cost
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default: // a wake-up is already pending
	}
	return nil
}

// popAll takes every queued frame, leaving spare (reset to length 0) as the
// new backing slice so steady-state operation does not allocate. The bytes
// remain accounted until release.
func (q *sendQueue) popAll(spare [][]byte) [][]byte {
	q.mu.Lock()
	out := q.frames
	q.frames = spare[:0]
	q.mu.Unlock()
	return out
}

// release returns the byte budget of frames the writer is done with.
func (q *sendQueue) release(cost int) {
	q.mu.Lock()
	q.bytes -= cost
	q.mu.Unlock()
}

// close rejects further pushes and discards what is queued.
func (q *sendQueue) close() {
	q.mu.Lock()
	q.closed = true
	clear(q.frames)
	q.frames = q.frames[:0]
	q.mu.Unlock()
}
