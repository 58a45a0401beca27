package simnet

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"math/rand/v2"
	"time"
)

// pcgStream is the second PCG seed word. It is fixed so that the whole
// generator state is derived from the single user-visible seed.
const pcgStream = 0x9e3779b97f4a7c15

// Scheduler is a deterministic discrete-event scheduler. It owns the virtual
// clock, the run's only PRNG and the trace hash. The zero value is not
// usable; create one with [New].
type Scheduler struct {
	now   Time
	seq   uint64
	queue eventQueue

	seed uint64
	rng  *rand.Rand

	trace   hash.Hash
	traceN  uint64
	scratch []byte
	// hookFields is reused for the fields passed to hook.
	hookFields []uint64
	hook       func(t Time, kind string, fields []uint64, payload []byte)
}

// New returns a scheduler at virtual time 0 whose PRNG is seeded from seed.
func New(seed uint64) *Scheduler {
	return &Scheduler{
		seed:  seed,
		rng:   rand.New(rand.NewPCG(seed, pcgStream)),
		trace: sha256.New(),
	}
}

// Scheduled is how many events have been scheduled since the start (the
// simulator's own workload, for profiles and progress reports).
func (s *Scheduler) Scheduled() uint64 { return s.seq }

// Seed returns the seed the scheduler was created with, for logging: a
// failing run is reproduced by re-running with this seed.
func (s *Scheduler) Seed() uint64 { return s.seed }

// Now returns the current virtual time: the time of the event being run, or
// of the last event run, or the limit of the last RunUntil/RunWhile.
func (s *Scheduler) Now() Time { return s.now }

// Rand returns the run's only PRNG. All randomness in a simulation (the
// network's and the harness's) must come from it, and it must only be used
// from the simulation's single goroutine.
func (s *Scheduler) Rand() *rand.Rand { return s.rng }

// Pending returns the number of scheduled events that have neither run nor
// been stopped.
func (s *Scheduler) Pending() int { return len(s.queue) }

// At schedules fn to run at virtual time t. Events at the same time run in
// the order they were scheduled. Scheduling in the past is a bug in the
// caller (it would make time run backwards) and panics; t == Now() is
// allowed and runs after every event already scheduled for Now().
func (s *Scheduler) At(t Time, fn func()) *Timer {
	if fn == nil {
		panic("simnet: At with nil func")
	}
	if t < s.now {
		panic(fmt.Sprintf("simnet: At(%v) is before Now() = %v", t, s.now))
	}
	tm := &Timer{s: s, at: t, seq: s.seq, fn: fn}
	s.seq++
	s.queue.push(tm)
	return tm
}

// After schedules fn to run d after Now(). Like time.AfterFunc, a negative d
// is treated as zero.
func (s *Scheduler) After(d time.Duration, fn func()) *Timer {
	if d < 0 {
		d = 0
	}
	return s.At(s.now.Add(d), fn)
}

// Step runs the next event, advancing Now() to its time. It reports false,
// without changing Now(), if no event is pending.
func (s *Scheduler) Step() bool {
	if len(s.queue) == 0 {
		return false
	}
	tm := s.queue.pop()
	s.now = tm.at
	fn := tm.fn
	tm.fn = nil // mark fired and let the closure be collected
	fn()
	return true
}

// RunUntil runs every event with time ≤ t, including events scheduled by
// those events, and then sets Now() to t (Now never moves backwards: if t is
// already past, nothing runs and Now is unchanged).
func (s *Scheduler) RunUntil(t Time) {
	for len(s.queue) > 0 && s.queue[0].at <= t {
		s.Step()
	}
	if t > s.now {
		s.now = t
	}
}

// RunWhile runs events while cond() is true and the next event's time is ≤
// limit. cond is checked before every event. It returns true if it stopped
// because cond() became false, leaving Now() at the time of the last event
// run; otherwise (limit reached or no events left) it sets Now() to limit,
// as RunUntil does, and returns false.
func (s *Scheduler) RunWhile(cond func() bool, limit Time) bool {
	for cond() {
		if len(s.queue) == 0 || s.queue[0].at > limit {
			if limit > s.now {
				s.now = limit
			}
			return false
		}
		s.Step()
	}
	return true
}

// Timer is a scheduled event, returned by [Scheduler.At] and
// [Scheduler.After] so it can be cancelled.
type Timer struct {
	s     *Scheduler
	at    Time
	seq   uint64
	fn    func() // nil once fired or stopped
	index int    // position in the heap, -1 when not queued
}

// When returns the virtual time the timer is (or was) scheduled for.
func (t *Timer) When() Time { return t.at }

// Stop cancels the timer. It returns true if that prevented the callback
// from running, false if it had already run or been stopped. Stopped events
// are removed from the queue immediately, so Pending() reflects them and
// frequently reset timers do not accumulate.
func (t *Timer) Stop() bool {
	if t == nil || t.fn == nil {
		return false
	}
	t.fn = nil
	if t.index >= 0 {
		t.s.queue.remove(t.index)
	}
	return true
}

// eventQueue is a 4-ary min-heap ordered by (time, sequence number), with
// the keys inline so that comparisons do not dereference the timers. The
// sequence number is unique, so the order is total.
type qent struct {
	at  Time
	seq uint64
	tm  *Timer
}

type eventQueue []qent

func (e qent) less(o qent) bool {
	return e.at < o.at || (e.at == o.at && e.seq < o.seq)
}

func (q *eventQueue) push(tm *Timer) {
	*q = append(*q, qent{tm.at, tm.seq, tm})
	q.up(len(*q) - 1)
}

func (q *eventQueue) pop() *Timer {
	h := *q
	top := h[0].tm
	n := len(h) - 1
	h[0] = h[n]
	h[n] = qent{}
	*q = h[:n]
	if n > 0 {
		(*q).down(0)
	}
	top.index = -1
	return top
}

func (q *eventQueue) remove(i int) {
	h := *q
	n := len(h) - 1
	tm := h[i].tm
	if i != n {
		h[i] = h[n]
		h[n] = qent{}
		*q = h[:n]
		(*q).down(i)
		(*q).up(i)
	} else {
		h[n] = qent{}
		*q = h[:n]
	}
	tm.index = -1
}

func (q eventQueue) up(i int) {
	e := q[i]
	for i > 0 {
		p := (i - 1) / 4
		if !e.less(q[p]) {
			break
		}
		q.set(i, q[p])
		i = p
	}
	q.set(i, e)
}

// set places e at i and tells its timer where it is (Stop removes by index).
func (q eventQueue) set(i int, e qent) {
	q[i] = e
	e.tm.index = i
}

func (q eventQueue) down(i int) {
	n := len(q)
	if i >= n {
		return
	}
	e := q[i]
	for {
		c := 4*i + 1
		if c >= n {
			break
		}
		m := c
		for k := c + 1; k < c+4 && k < n; k++ {
			if q[k].less(q[m]) {
				m = k
			}
		}
		if !q[m].less(e) {
			break
		}
		q.set(i, q[m])
		i = m
	}
	q.set(i, e)
}

// Trace folds a record into the run's trace hash. kind names the record
// (e.g. "commit"), fields carry small integers (node ids, sequence numbers,
// views) and payload arbitrary bytes (hash large payloads first if you like;
// the network records the SHA-256 of each message). The current virtual time
// is included automatically. The encoding is length-prefixed, so distinct
// records never hash alike by concatenation.
func (s *Scheduler) Trace(kind string, payload []byte, fields ...uint64) {
	b := s.scratch[:0]
	b = binary.LittleEndian.AppendUint64(b, uint64(s.now))
	b = binary.LittleEndian.AppendUint64(b, uint64(len(kind)))
	b = append(b, kind...)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(fields)))
	for _, f := range fields {
		b = binary.LittleEndian.AppendUint64(b, f)
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(len(payload)))
	s.scratch = b
	s.trace.Write(b)
	s.trace.Write(payload)
	s.traceN++
	if s.hook != nil {
		// Pass a reused copy so that fields does not escape and callers'
		// variadic arguments stay on the stack when no hook is set.
		s.hookFields = append(s.hookFields[:0], fields...)
		s.hook(s.now, kind, s.hookFields, payload)
	}
}

// TraceHash returns the SHA-256 over every record traced so far. It does not
// reset the hash; tracing can continue afterwards.
func (s *Scheduler) TraceHash() [32]byte {
	var out [32]byte
	s.trace.Sum(out[:0])
	return out
}

// TraceLen returns the number of records traced so far.
func (s *Scheduler) TraceLen() uint64 { return s.traceN }

// SetTraceHook registers fn to be called with every traced record (nil
// removes it). It exists to debug determinism failures: log the records of
// two runs with the same seed and diff them. fn must not retain fields or
// payload, and must not affect the simulation.
func (s *Scheduler) SetTraceHook(fn func(t Time, kind string, fields []uint64, payload []byte)) {
	s.hook = fn
}

// Ticker runs a function periodically in virtual time; see
// [Scheduler.Every].
type Ticker struct {
	s       *Scheduler
	period  time.Duration
	fn      func()
	fire    func()
	next    *Timer
	stopped bool
}

// Every calls fn every period of virtual time, first at Now()+period, until
// the ticker is stopped. The next tick is scheduled before fn runs, so fn
// may stop the ticker, and events fn schedules for the next tick's instant
// run after that tick. period must be positive.
func (s *Scheduler) Every(period time.Duration, fn func()) *Ticker {
	if period <= 0 {
		panic("simnet: Every with non-positive period")
	}
	if fn == nil {
		panic("simnet: Every with nil func")
	}
	tk := &Ticker{s: s, period: period, fn: fn}
	tk.fire = func() {
		tk.next = tk.s.After(tk.period, tk.fire)
		tk.fn()
	}
	tk.next = s.After(period, tk.fire)
	return tk
}

// Stop stops the ticker; fn is not called again. It returns false if the
// ticker was already stopped.
func (tk *Ticker) Stop() bool {
	if tk.stopped {
		return false
	}
	tk.stopped = true
	tk.next.Stop()
	return true
}
