package sim

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/braid-bft/braid/app"
	"github.com/braid-bft/braid/app/kv"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/sim/simnet"
)

// The linearizability workload (Options.Linearizability): every closed-loop
// client runs gets, puts and compare-and-sets over the same few keys of the
// shared kv keyspace, the checker records each operation's virtual
// invocation time (its first send), response time (its f+1th matching
// reply), input and output, and at the end of the run checks the history of
// every key with porcupine against KVModel. Operations still outstanding at
// the end are pending: they may or may not have taken effect, so they are
// given an unknown output and a response at +∞ (porcupine may place them
// anywhere after their invocation, including after everything, i.e. never).
//
// The check reads the recorded history only; it draws nothing from the
// simulator's PRNG, so a run's trace is the same with or without it.

// linKeys is how many keys the workload shares among all clients: few, so
// that clients contend, and a key's history stays small enough to check.
const linKeys = 3

// DefaultLinTimeout bounds porcupine's search per key (Options.LinTimeout).
const DefaultLinTimeout = 5 * time.Second

// KVOp names a kv operation of the linearizability workload.
type KVOp uint8

// The operations the workload issues.
const (
	KVGet KVOp = iota + 1
	KVPut
	KVCAS
)

// KVInput is an operation's input, as porcupine sees it.
type KVInput struct {
	Op           KVOp
	Key          string
	Value        string // put's value, cas's new value
	Expected     string // cas
	ExpectAbsent bool   // cas: swap only if the key is absent
}

// KVStatus is the outcome class of a kv result.
type KVStatus uint8

// Outcomes. KVUnknown is a pending operation's: it may have taken effect.
// KVOther is any result the workload cannot get from a correct store (bad
// op, rejected): no step of the model produces it.
const (
	KVUnknown KVStatus = iota
	KVOK
	KVNotFound
	KVConflict
	KVOther
)

// KVOutput is an operation's output: its status and, for a get that found
// the key, the value.
type KVOutput struct {
	Status KVStatus
	Value  string
}

// kvState is one key's state in the model.
type kvState struct {
	present bool
	value   string
}

// KVModel is the sequential specification of app/kv's get, put and
// compare-and-set on one key, with histories partitioned by key: a get
// returns the value or not-found, a put sets the value, a cas sets the new
// value iff the key holds the expected value (or, with ExpectAbsent, is
// absent; a present key with an empty value is not absent) and otherwise
// reports a conflict without changing anything.
var KVModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(KVInput).Key
			byKey[k] = append(byKey[k], op)
		}
		var out [][]porcupine.Operation
		for _, k := range slices.Sorted(maps.Keys(byKey)) {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return kvState{} },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(kvState), input.(KVInput), output.(KVOutput)
		switch in.Op {
		case KVGet:
			switch out.Status {
			case KVUnknown:
				return true, s
			case KVOK:
				return s.present && s.value == out.Value, s
			case KVNotFound:
				return !s.present, s
			}
		case KVPut:
			if out.Status == KVOK || out.Status == KVUnknown {
				return true, kvState{present: true, value: in.Value}
			}
		case KVCAS:
			holds := !s.present
			if !in.ExpectAbsent {
				holds = s.present && s.value == in.Expected
			}
			next := s
			if holds {
				next = kvState{present: true, value: in.Value}
			}
			switch out.Status {
			case KVUnknown:
				return true, next
			case KVOK:
				return holds, next
			case KVConflict:
				return !holds, s
			}
		}
		return false, s
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(KVInput), output.(KVOutput)
		res := [...]string{KVUnknown: "?", KVOK: "ok", KVNotFound: "not found", KVConflict: "conflict", KVOther: "error"}[out.Status]
		switch in.Op {
		case KVGet:
			if out.Status == KVOK {
				res = fmt.Sprintf("%q", out.Value)
			}
			return fmt.Sprintf("get(%s) → %s", in.Key, res)
		case KVPut:
			return fmt.Sprintf("put(%s, %q) → %s", in.Key, in.Value, res)
		default:
			exp := fmt.Sprintf("%q", in.Expected)
			if in.ExpectAbsent {
				exp = "absent"
			}
			return fmt.Sprintf("cas(%s, %s, %q) → %s", in.Key, exp, in.Value, res)
		}
	},
	DescribeState: func(state any) string {
		if s := state.(kvState); s.present {
			return fmt.Sprintf("%q", s.value)
		}
		return "absent"
	},
}

// LinStats is what the linearizability check covered. Over a sweep of
// seeds the counts add up.
type LinStats struct {
	Operations int `json:"operations"` // recorded, pending included
	Pending    int `json:"pending"`    // never completed: outcome unknown
	Keys       int `json:"keys"`       // per-key histories checked
	Illegal    int `json:"illegal"`    // keys whose history is not linearizable
	// Timeouts counts keys porcupine could not decide within the timeout:
	// neither a pass nor a violation. Wall-clock bound, so unlike the rest
	// of a run it can differ between machines.
	Timeouts     int     `json:"timeouts"`
	CheckSeconds float64 `json:"check_seconds"` // wall time of the check
}

func (s *LinStats) add(o LinStats) {
	s.Operations += o.Operations
	s.Pending += o.Pending
	s.Keys += o.Keys
	s.Illegal += o.Illegal
	s.Timeouts += o.Timeouts
	s.CheckSeconds += o.CheckSeconds
}

// linOp is one recorded operation.
type linOp struct {
	client msg.ClientID
	in     KVInput
	call   simnet.Time
	ret    simnet.Time
	out    KVOutput
	done   bool
}

// nextLinOp picks client c's next operation: a fixed function of the client
// and its operation count (never the simulator's PRNG), over the shared
// keys, mixing gets (40%), puts (35%) and compare-and-sets (25%) that
// expect the value the client last saw for the key.
func (c *client) nextLinOp() (KVInput, []byte) {
	h := mix64(uint64(c.id)<<32 | uint64(c.ops))
	key := fmt.Sprintf("lin/%d", h%linKeys)
	value := fmt.Sprintf("%d/%d", c.id, c.ops+1)
	switch r := (h >> 8) % 100; {
	case r < 40:
		return KVInput{Op: KVGet, Key: key}, kv.Get([]byte(key))
	case r < 75:
		return KVInput{Op: KVPut, Key: key, Value: value}, kv.Put([]byte(key), []byte(value))
	default:
		seen, ok := c.seen[key]
		in := KVInput{Op: KVCAS, Key: key, Value: value, Expected: seen, ExpectAbsent: !ok}
		return in, kv.CAS([]byte(key), []byte(seen), !ok, []byte(value))
	}
}

// observe notes what a completed operation tells the client about its key
// (what its next cas on the key expects).
func (c *client) observe(in KVInput, out KVOutput) {
	if c.seen == nil {
		c.seen = map[string]string{}
	}
	switch {
	case in.Op == KVGet && out.Status == KVOK:
		c.seen[in.Key] = out.Value
	case in.Op == KVGet && out.Status == KVNotFound:
		delete(c.seen, in.Key)
	case in.Op != KVGet && out.Status == KVOK:
		c.seen[in.Key] = in.Value
	}
}

// mix64 is SplitMix64's finaliser.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// decodeKV classifies an accepted result of an operation.
func decodeKV(in KVInput, result []byte) KVOutput {
	st, body, err := app.DecodeResult(result)
	if err != nil {
		return KVOutput{Status: KVOther}
	}
	switch {
	case st == app.StatusOK && in.Op == KVGet:
		return KVOutput{Status: KVOK, Value: string(body)}
	case st == app.StatusOK && len(body) == 0:
		return KVOutput{Status: KVOK}
	case st == app.StatusNotFound && in.Op == KVGet:
		return KVOutput{Status: KVNotFound}
	case st == app.StatusConflict && in.Op == KVCAS:
		return KVOutput{Status: KVConflict}
	}
	return KVOutput{Status: KVOther}
}

// invoked records an operation's invocation; the index names it for
// returned.
func (c *checker) invoked(client msg.ClientID, in KVInput) int {
	c.history = append(c.history, linOp{client: client, in: in, call: c.w.s.Now()})
	return len(c.history) - 1
}

// returned records an operation's response.
func (c *checker) returned(i int, out KVOutput) {
	op := &c.history[i]
	op.ret, op.out, op.done = c.w.s.Now(), out, true
}

// linOperations returns the recorded history in porcupine's form, pending
// operations with an unknown output and a response at +∞.
func linOperations(history []linOp) []porcupine.Operation {
	ops := make([]porcupine.Operation, 0, len(history))
	for _, h := range history {
		op := porcupine.Operation{ClientId: int(h.client), Input: h.in, Call: int64(h.call), Output: h.out, Return: int64(h.ret)}
		if !h.done {
			op.Output, op.Return = KVOutput{Status: KVUnknown}, math.MaxInt64
		}
		ops = append(ops, op)
	}
	return ops
}

// checkLinearizability checks every key's history and reports each key
// whose history is not linearizable.
func (c *checker) checkLinearizability() *LinStats {
	start := time.Now()
	st := &LinStats{Operations: len(c.history)}
	for _, h := range c.history {
		if !h.done {
			st.Pending++
		}
	}
	timeout := c.w.opts.LinTimeout
	if timeout == 0 {
		timeout = DefaultLinTimeout
	}
	res := CheckKVHistory(linOperations(c.history), timeout)
	st.Keys, st.Illegal, st.Timeouts = res.Keys, res.Illegal, res.Timeouts
	for _, a := range res.Anomalies {
		// Past the report's cap too: at most one line per key.
		c.report("linearizability: %s", a)
	}
	st.CheckSeconds = time.Since(start).Seconds()
	return st
}

// KVCheck is what CheckKVHistory found.
type KVCheck struct {
	Keys     int // per-key histories checked
	Illegal  int // keys whose history is not linearizable
	Timeouts int // keys porcupine could not decide within the timeout
	// Anomalies describes each illegal key's history, one line per key.
	Anomalies []string
}

// CheckKVHistory checks a kv history (operations over KVInput and
// KVOutput, pending ones with output KVUnknown and Return math.MaxInt64)
// key by key against KVModel, giving porcupine timeout per key. The
// simulator's check and braid chaos's, on real processes, both use it.
func CheckKVHistory(ops []porcupine.Operation, timeout time.Duration) KVCheck {
	var res KVCheck
	parts := KVModel.Partition(ops)
	res.Keys = len(parts)
	for _, part := range parts {
		key := part[0].Input.(KVInput).Key
		switch porcupine.CheckOperationsTimeout(KVModel, part, timeout) {
		case porcupine.Illegal:
			res.Illegal++
			res.Anomalies = append(res.Anomalies, fmt.Sprintf("the history of key %q (%d operations, %d clients) is not linearizable: %s",
				key, len(part), clientsIn(part), firstAnomaly(part, time.Now().Add(timeout))))
		case porcupine.Unknown:
			res.Timeouts++
		}
	}
	return res
}

// DecodeKVResult classifies an accepted result of the operation in, as
// the history records it.
func DecodeKVResult(in KVInput, result []byte) KVOutput { return decodeKV(in, result) }

func clientsIn(part []porcupine.Operation) int {
	seen := map[int]bool{}
	for _, op := range part {
		seen[op.ClientId] = true
	}
	return len(seen)
}

// firstAnomaly describes, for the report, the first completed operation
// (in response order) whose prefix of the history is already not
// linearizable.
func firstAnomaly(part []porcupine.Operation, deadline time.Time) string {
	done := make([]porcupine.Operation, 0, len(part))
	for _, op := range part {
		if op.Return != math.MaxInt64 {
			done = append(done, op)
		}
	}
	sort.SliceStable(done, func(i, j int) bool { return done[i].Return < done[j].Return })
	for i := range done {
		if time.Now().After(deadline) {
			break
		}
		prefix := make([]porcupine.Operation, 0, len(part))
		for _, op := range part {
			if op.Call <= done[i].Return {
				// Operations invoked by now: the ones responded by now as
				// recorded, the rest pending.
				if op.Return > done[i].Return {
					op.Output, op.Return = KVOutput{Status: KVUnknown}, math.MaxInt64
				}
				prefix = append(prefix, op)
			}
		}
		if porcupine.CheckOperationsTimeout(KVModel, prefix, time.Second) == porcupine.Illegal {
			op := done[i]
			return fmt.Sprintf("first impossible by t=%v: client %d's %s", time.Duration(op.Return), op.ClientId, KVModel.DescribeOperation(op.Input, op.Output))
		}
	}
	return "(no shorter prefix found illegal in time)"
}
