package chaos

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/braid-bft/braid/app/bank"
	"github.com/braid-bft/braid/app/kv"
	"github.com/braid-bft/braid/client"
	"github.com/braid-bft/braid/config"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/sim"
)

// The workload: every client runs gets, puts and compare-and-sets over a
// few keys all clients share, one operation at a time, and now and then a
// bank transfer between the clients' accounts. Each kv operation is
// recorded with its wall-clock invocation and response times; an operation
// that never got f+1 matching replies is pending (it may or may not have
// taken effect). The history is checked with the simulator's model
// (sim.KVModel, sim.CheckKVHistory).

// kvKeys is how many keys the clients share: few, so they contend, and a
// key's history stays small enough for porcupine.
const kvKeys = 3

// opTimeout bounds one operation: long enough to outlast any single fault
// (an operation given up on stays pending in the history, and many pending
// operations make the check slow).
const opTimeout = 30 * time.Second

// startBalance is what every client deposits in its account; transfers
// move money between the accounts and never create or destroy it.
const startBalance = 1_000_000

// recorder holds the history of all clients.
type recorder struct {
	start time.Time

	mu      sync.Mutex
	ops     []porcupine.Operation
	bad     []string // results no correct cluster returns
	count   atomic.Int64
	failed  atomic.Int64 // operations given up on (pending)
	pending int
}

func (r *recorder) now() int64 { return int64(time.Since(r.start)) }

// record adds one operation; ok false makes it pending.
func (r *recorder) record(client int, in sim.KVInput, call int64, out sim.KVOutput, ret int64, ok bool) {
	op := porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
	if !ok {
		op.Output, op.Return = sim.KVOutput{Status: sim.KVUnknown}, math.MaxInt64
	}
	r.mu.Lock()
	r.ops = append(r.ops, op)
	if !ok {
		r.pending++
	}
	r.mu.Unlock()
	if ok {
		r.count.Add(1)
	} else {
		r.failed.Add(1)
	}
}

func (r *recorder) wrong(format string, args ...any) {
	r.mu.Lock()
	r.bad = append(r.bad, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

// worker is one SDK client of the workload.
type worker struct {
	j    int
	c    *client.Client
	rng  *rand.Rand
	seen map[string]*string // last value seen per key; nil: absent
	rec  *recorder
	acct string
	n    int  // clients
	bank bool // the accounts are set up: transfers run
	ops  int
}

func newWorker(cfgPath string, j int, key []byte, seed uint64, rec *recorder, clients int) (*worker, error) {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg, msg.ClientID(j), key, client.Options{Timeout: time.Second, Broadcast: true})
	if err != nil {
		return nil, err
	}
	return &worker{j: j, c: c, rng: rand.New(rand.NewPCG(seed, uint64(j)+1)), seen: map[string]*string{}, rec: rec, acct: account(j), n: clients}, nil
}

func account(j int) string { return fmt.Sprintf("chaos-%d", j) }

// submit runs op with the operation timeout, or until ctx ends.
func (w *worker) submit(ctx context.Context, op []byte) ([]byte, error) {
	octx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	return w.c.Submit(octx, op)
}

// setupBank opens and funds the client's account, before any fault. One
// attempt each: a retried deposit whose first attempt executed unseen
// would mint money twice, and the conservation check would be wrong.
func (w *worker) setupBank(ctx context.Context) error {
	res, err := w.submit(ctx, bank.Open(w.acct))
	if err == nil {
		err = bank.DecodeOpen(res)
	}
	if err != nil {
		return fmt.Errorf("client %d: open %s: %w", w.j, w.acct, err)
	}
	res, err = w.submit(ctx, bank.Deposit(w.acct, startBalance))
	if err == nil {
		err = bank.DecodeDeposit(res)
	}
	if err != nil {
		return fmt.Errorf("client %d: deposit into %s: %w", w.j, w.acct, err)
	}
	return nil
}

// run issues operations until stop is set (the operation in flight then
// completes, so it is not left pending) or ctx ends.
func (w *worker) run(ctx context.Context, stop *atomic.Bool) {
	for ctx.Err() == nil && !stop.Load() {
		w.ops++
		if w.bank && w.n > 1 && w.rng.IntN(10) == 0 {
			to := (w.j + 1 + w.rng.IntN(w.n-1)) % w.n
			// Moves amt only while the balance exceeds it: never an
			// "insufficient funds" rejection.
			amt := 1 + uint64(w.rng.IntN(100))
			res, err := w.submit(ctx, bank.Transfer(w.acct, account(to), amt, amt))
			if err == nil {
				if _, derr := bank.DecodeTransfer(res); derr != nil {
					w.rec.wrong("client %d: transfer: %v", w.j, derr)
				}
				w.rec.count.Add(1)
			}
			continue
		}
		w.kvOp(ctx, w.rng.IntN(100))
	}
}

// kvOp issues one kv operation over the shared keys and records it: gets
// 40%, puts 35%, compare-and-sets 25% expecting the value last seen.
func (w *worker) kvOp(ctx context.Context, r int) {
	key := fmt.Sprintf("chaos/%d", w.rng.IntN(kvKeys))
	value := fmt.Sprintf("%d/%d", w.j, w.ops)
	var in sim.KVInput
	var op []byte
	switch {
	case r < 40:
		in, op = sim.KVInput{Op: sim.KVGet, Key: key}, kv.Get([]byte(key))
	case r < 75:
		in, op = sim.KVInput{Op: sim.KVPut, Key: key, Value: value}, kv.Put([]byte(key), []byte(value))
	default:
		seen := w.seen[key]
		in = sim.KVInput{Op: sim.KVCAS, Key: key, Value: value, ExpectAbsent: seen == nil}
		if seen != nil {
			in.Expected = *seen
		}
		op = kv.CAS([]byte(key), []byte(in.Expected), in.ExpectAbsent, []byte(value))
	}
	w.do(ctx, in, op)
}

// do submits one recorded kv operation.
func (w *worker) do(ctx context.Context, in sim.KVInput, op []byte) {
	call := w.rec.now()
	res, err := w.submit(ctx, op)
	ret := w.rec.now()
	if err != nil {
		w.rec.record(w.j, in, call, sim.KVOutput{}, 0, false)
		return
	}
	out := sim.DecodeKVResult(in, res)
	if out.Status == sim.KVOther {
		w.rec.wrong("client %d: %s answered %x, which no correct store returns", w.j, sim.KVModel.DescribeOperation(in, out), res)
	}
	w.rec.record(w.j, in, call, out, ret, true)
	switch {
	case in.Op == sim.KVGet && out.Status == sim.KVOK:
		v := out.Value
		w.seen[in.Key] = &v
	case in.Op == sim.KVGet && out.Status == sim.KVNotFound:
		w.seen[in.Key] = nil
	case in.Op != sim.KVGet && out.Status == sim.KVOK:
		v := in.Value
		w.seen[in.Key] = &v
	}
}

// readAll reads every shared key once more (after the faults healed), so
// that an acknowledged write lost at the end shows in the history.
func (w *worker) readAll(ctx context.Context) {
	for k := 0; k < kvKeys; k++ {
		key := fmt.Sprintf("chaos/%d", k)
		w.do(ctx, sim.KVInput{Op: sim.KVGet, Key: key}, kv.Get([]byte(key)))
	}
}

// balance reads the client's account; ok false if it could not.
func (w *worker) balance(ctx context.Context, acct string) (uint64, error) {
	res, err := w.submit(ctx, bank.Balance(acct))
	if err != nil {
		return 0, err
	}
	return bank.DecodeBalance(res)
}
