package auth

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
)

// ErrPoolClosed is returned by Pool.Verify once Close has been called.
var ErrPoolClosed = errors.New("auth: verification pool closed")

// Chunking bounds for Pool.Verify. Below minChunk, per-chunk overhead
// outweighs the parallelism gained; above maxChunk the per-signature cost
// of a batch barely improves, while a failing chunk costs more to resolve
// and holds one worker for longer.
const (
	minChunk = 8
	maxChunk = 256
)

// Pool verifies batches of signatures on a fixed number of worker
// goroutines, so that signature checking uses bounded CPU and a flood of
// client requests queues (and pushes back on the network layer) instead of
// spawning unbounded goroutines. It applies exactly the rule of Verify.
// All methods are safe for concurrent use.
type Pool struct {
	jobs    chan *job
	closing chan struct{}

	mu        sync.Mutex // guards closed and senders.Add
	closed    bool
	senders   sync.WaitGroup // Verify calls that may still send on jobs
	workers   sync.WaitGroup
	closeOnce sync.Once

	nworkers int
	// beforeJob, if set (tests only), runs in a worker before each chunk.
	beforeJob func()

	batches, signatures, fallbacks, invalid, batchChecks, singleChecks atomic.Uint64
}

// job is one chunk of a Verify call.
type job struct {
	ctx   context.Context
	items []BatchItem
	out   []bool       // the chunk's slice of the caller's result
	done  chan<- error // buffered for every chunk of the call; never blocks
}

// NewPool starts a pool with the given number of worker goroutines
// (runtime.GOMAXPROCS(0) if workers <= 0) and a queue of up to queue
// pending chunks (workers if queue <= 0). When the queue is full,
// Verify blocks until there is room: that is the backpressure.
func NewPool(workers, queue int) *Pool {
	return newPool(workers, queue, nil)
}

func newPool(workers, queue int, beforeJob func()) *Pool {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if queue <= 0 {
		queue = workers
	}
	p := &Pool{
		jobs:      make(chan *job, queue),
		closing:   make(chan struct{}),
		nworkers:  workers,
		beforeJob: beforeJob,
	}
	p.workers.Add(workers)
	for range workers {
		go p.work()
	}
	return p
}

func (p *Pool) work() {
	defer p.workers.Done()
	for j := range p.jobs {
		if p.beforeJob != nil {
			p.beforeJob()
		}
		if err := j.ctx.Err(); err != nil {
			// The caller has given up; don't spend CPU on it.
			j.done <- err
			continue
		}
		p.record(verifyInto(j.items, j.out))
		j.done <- nil
	}
}

func (p *Pool) record(st Stats) {
	p.batches.Add(st.Batches)
	p.signatures.Add(st.Signatures)
	p.fallbacks.Add(st.Fallbacks)
	p.invalid.Add(st.Invalid)
	p.batchChecks.Add(st.BatchChecks)
	p.singleChecks.Add(st.SingleChecks)
}

// Verify verifies items on the pool's workers and returns, for each item,
// exactly what Verify would (see VerifyBatch). Large inputs are split into
// chunks spread over the workers. Verify blocks while the queue is full
// and returns ctx.Err() if ctx is done before all results are in, or
// ErrPoolClosed if the pool is closed before all chunks were queued. On
// error the results are nil. The caller should charge senders for invalid
// items (see InvalidBySigner): each one makes its chunk fall back to more
// expensive checking.
func (p *Pool) Verify(ctx context.Context, items []BatchItem) ([]bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrPoolClosed
	}
	p.senders.Add(1)
	p.mu.Unlock()

	out := make([]bool, len(items))
	size := chunkSize(len(items), p.nworkers)
	nchunks := 0
	if len(items) > 0 {
		nchunks = (len(items) + size - 1) / size
	}
	done := make(chan error, nchunks)
	sent := 0
	var sendErr error
	for lo := 0; lo < len(items); lo += size {
		hi := min(lo+size, len(items))
		j := &job{ctx: ctx, items: items[lo:hi], out: out[lo:hi], done: done}
		select {
		case p.jobs <- j:
			sent++
			continue
		case <-ctx.Done():
			sendErr = ctx.Err()
		case <-p.closing:
			sendErr = ErrPoolClosed
		}
		break
	}
	p.senders.Done()
	if sendErr != nil {
		return nil, sendErr
	}
	// Every queued chunk is processed, even after Close, so this wait ends
	// unless ctx ends first.
	for range sent {
		select {
		case err := <-done:
			if err != nil {
				return nil, err
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return out, nil
}

// chunkSize splits n items evenly over the workers, within
// [minChunk, maxChunk].
func chunkSize(n, workers int) int {
	size := (n + workers - 1) / workers
	return max(minChunk, min(maxChunk, size))
}

// Close stops the pool: Verify calls that have not yet queued all their
// chunks fail with ErrPoolClosed, chunks already queued are still
// verified, and Close returns once every worker has exited. Close is
// idempotent.
func (p *Pool) Close() {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		close(p.closing)
		p.mu.Unlock()
		p.senders.Wait() // nobody can send on jobs after this
		close(p.jobs)
		p.workers.Wait()
	})
}

// Stats returns the pool's cumulative counters. Each counter is read
// atomically, but the set is not a single snapshot.
func (p *Pool) Stats() Stats {
	return Stats{
		Batches:      p.batches.Load(),
		Signatures:   p.signatures.Load(),
		Fallbacks:    p.fallbacks.Load(),
		Invalid:      p.invalid.Load(),
		BatchChecks:  p.batchChecks.Load(),
		SingleChecks: p.singleChecks.Load(),
	}
}
