package replica

import (
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/httpapi"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/shell"
	"github.com/braid-bft/braid/storage"
	"github.com/braid-bft/braid/transport"
)

// The shell's dependencies, for real (see shell/deps.go).

// peerNet sends over the replica transport. A full peer queue drops the
// frame: the protocol retransmits.
type peerNet struct{ t *transport.Transport }

func (p peerNet) Send(to msg.ReplicaID, frame []byte) { _ = p.t.Send(int(to), frame) }
func (p peerNet) Broadcast(frame []byte)              { _ = p.t.Broadcast(frame) }

// globalRand is math/rand/v2's shared generator, for a Byzantine
// replica's filter (byzantine.Env.Rand): a real process has no seed to
// keep.
type globalRand struct{}

func (globalRand) IntN(n int) int { return rand.IntN(n) }
func (globalRand) Uint32() uint32 { return rand.Uint32() }

// clientConn is a client connection under the id its key is admitted for.
type clientConn struct {
	c  *transport.ClientConn
	id msg.ClientID
}

func (c clientConn) Client() msg.ClientID { return c.id }
func (c clientConn) Send(frame []byte)    { _ = c.c.Send(frame) }

// keyCrypto is Ed25519 under the cluster's keys; VerifyAll uses batch
// verification (one job runs on one worker; bursts spread over several).
// sizes sees each batch's size.
type keyCrypto struct {
	auth.Keyring
	sizes interface{ Observe(float64) }
}

func (k keyCrypto) VerifyAll(items []msg.Signature) []bool {
	k.sizes.Observe(float64(len(items)))
	batch := make([]auth.BatchItem, 0, len(items))
	index := make([]int, 0, len(items))
	out := make([]bool, len(items))
	for i := range items {
		it := &items[i]
		var key auth.PublicKey
		var ok bool
		ctx := auth.ContextReplica
		if it.Client {
			key, ok = k.Clients[it.ClientID]
			ctx = auth.ContextClient
		} else {
			key, ok = k.Replicas[it.Replica]
		}
		if !ok {
			continue // unknown signer: false
		}
		batch = append(batch, auth.BatchItem{Key: key, Context: ctx, Msg: it.Payload, Sig: it.Sig})
		index = append(index, i)
	}
	for j, ok := range auth.VerifyBatch(batch) {
		out[index[j]] = ok
	}
	return out
}

// disk is the store plus the committer that fsyncs it. It counts the
// batches staged, for the group-commit size metric.
type disk struct {
	storage.Interface
	c *committer
}

func (d disk) Apply(b *storage.Batch) error {
	d.c.staged.Add(1)
	return d.Interface.Apply(b)
}

func (d disk) Commit(done func(error)) { d.c.request(done) }

// completions carries done callbacks from other goroutines to the loop.
// It never blocks its producers (a worker blocked handing back a result
// while the loop waits to hand it a job would deadlock); it stays bounded
// because every entry is the end of a job the loop submitted, and the
// workers' queue is bounded.
type completions struct {
	mu    sync.Mutex
	queue []func()
	ready chan struct{} // signalled when queue becomes non-empty
}

func newCompletions() *completions { return &completions{ready: make(chan struct{}, 1)} }

func (c *completions) post(f func()) {
	c.mu.Lock()
	c.queue = append(c.queue, f)
	c.mu.Unlock()
	wake(c.ready)
}

// run runs every completion posted so far, on the loop.
func (c *completions) run() {
	c.mu.Lock()
	q := c.queue
	c.queue = nil
	c.mu.Unlock()
	for _, f := range q {
		f()
	}
}

// wake leaves a wake-up token in ch, a channel with room for one, without
// blocking. A full channel already holds a token its reader has yet to take,
// and that one wake-up covers this one too: the reader takes everything
// queued when it wakes.
func wake(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// workers is a bounded pool for the shell's off-loop jobs. It counts its
// busy workers and their time, for the utilisation metrics.
type workers struct {
	jobs chan job
	done *completions
	wg   sync.WaitGroup
	once sync.Once

	n         int
	busy      atomic.Int64
	busyNanos atomic.Int64
	inline    atomic.Uint64
}

type job struct{ work, done func() }

// workerQueue bounds jobs waiting for a worker; past it the loop runs the
// job itself (backpressure: the loop slows down instead of memory growing).
const workerQueue = 1024

func newWorkers(n int, done *completions) *workers {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	w := &workers{n: n, jobs: make(chan job, workerQueue), done: done}
	for range n {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for j := range w.jobs {
				w.busy.Add(1)
				start := time.Now()
				j.work()
				w.busyNanos.Add(int64(time.Since(start)))
				w.busy.Add(-1)
				w.done.post(j.done)
			}
		}()
	}
	return w
}

// Cores implements shell.Worker: the pool's goroutines.
func (w *workers) Cores() int { return w.n }

func (w *workers) stats() httpapi.Pool {
	return httpapi.Pool{
		Workers: w.n, Busy: int(w.busy.Load()), Queued: len(w.jobs),
		BusySeconds: time.Duration(w.busyNanos.Load()).Seconds(), Inline: w.inline.Load(),
	}
}

// Go implements shell.Worker.
func (w *workers) Go(work func() shell.Cost, done func()) {
	select {
	case w.jobs <- job{func() { work() }, done}:
	default:
		w.inline.Add(1)
		work()
		w.done.post(done)
	}
}

func (w *workers) close() {
	w.once.Do(func() { close(w.jobs) })
	w.wg.Wait()
}

// committer fsyncs the store off the loop: one Sync covers every commit
// asked for before it started — one journal fdatasync for everything every
// instance staged meanwhile (group commit), while the loop keeps stepping.
type committer struct {
	store   storage.Interface
	done    *completions
	metrics *httpapi.Metrics
	staged  atomic.Uint64 // batches applied since the last Sync began (see disk)

	mu      sync.Mutex
	waiting []func(error)
	stopped bool
	kick    chan struct{}
	exited  chan struct{}
}

func newCommitter(store storage.Interface, done *completions, metrics *httpapi.Metrics) *committer {
	c := &committer{store: store, done: done, metrics: metrics, kick: make(chan struct{}, 1), exited: make(chan struct{})}
	go c.loop()
	return c
}

func (c *committer) request(done func(error)) {
	c.mu.Lock()
	c.waiting = append(c.waiting, done)
	c.mu.Unlock()
	wake(c.kick)
}

func (c *committer) loop() {
	defer close(c.exited)
	for range c.kick {
		c.mu.Lock()
		batch, stopped := c.waiting, c.stopped
		c.waiting = nil
		c.mu.Unlock()
		if len(batch) > 0 {
			// Every write these waiters staged came before their request,
			// so before this Sync takes the pending writes. (A batch the
			// loop stages while the Sync starts may be counted here or in
			// the next one: the size metric is approximate by one.)
			staged := c.staged.Swap(0)
			start := time.Now()
			err := c.store.Sync()
			c.metrics.FsyncSeconds.Observe(time.Since(start).Seconds())
			if staged > 0 {
				c.metrics.GroupCommitBatches.Observe(float64(staged))
			}
			for _, d := range batch {
				c.done.post(func() { d(err) })
			}
		}
		if stopped {
			return
		}
	}
}

// close finishes the commits asked for and stops.
func (c *committer) close() {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		<-c.exited
		return
	}
	c.stopped = true
	c.mu.Unlock()
	wake(c.kick)
	<-c.exited
}

// latency measures client-facing latency: from a request's arrival (the
// shell's Received) to the reply to it (Replied), per client's latest
// request number. Both run on the loop, so the map needs no lock; it holds
// at most one entry per admitted client (connections authenticate as one).
type latency struct {
	pending map[msg.ClientID]arrival
	hist    interface{ Observe(float64) }
}

type arrival struct {
	number uint64
	at     time.Time
}

func (l *latency) received(req *msg.Request) {
	// A retransmission keeps the first arrival: the client has waited
	// since then.
	if a, ok := l.pending[req.Client]; ok && a.number >= req.Number {
		return
	}
	l.pending[req.Client] = arrival{req.Number, time.Now()}
}

func (l *latency) replied(rep *msg.Reply) {
	a, ok := l.pending[rep.Client]
	if !ok || a.number != rep.Number {
		return
	}
	delete(l.pending, rep.Client)
	l.hist.Observe(time.Since(a.at).Seconds())
}
