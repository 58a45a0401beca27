package sim

import (
	"encoding/binary"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/braid-bft/braid/app"
	"github.com/braid-bft/braid/app/kv"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/quorum"
)

func op(client int, call, ret int64, in KVInput, out KVOutput) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Call: call, Return: ret, Input: in, Output: out}
}

func get(k string) KVInput    { return KVInput{Op: KVGet, Key: k} }
func put(k, v string) KVInput { return KVInput{Op: KVPut, Key: k, Value: v} }
func cas(k, exp, v string) KVInput {
	return KVInput{Op: KVCAS, Key: k, Expected: exp, Value: v}
}
func casAbsent(k, v string) KVInput { return KVInput{Op: KVCAS, Key: k, ExpectAbsent: true, Value: v} }

var (
	ok       = KVOutput{Status: KVOK}
	notFound = KVOutput{Status: KVNotFound}
	conflict = KVOutput{Status: KVConflict}
	unknown  = KVOutput{Status: KVUnknown}
)

func farFuture() time.Time { return time.Now().Add(time.Hour) }

func got(v string) KVOutput { return KVOutput{Status: KVOK, Value: v} }

const never = math.MaxInt64

// TestKVModel checks the model and its partition on hand-made histories,
// legal and not: the negative controls of the porcupine check itself.
func TestKVModel(t *testing.T) {
	for _, tc := range []struct {
		name  string
		hist  []porcupine.Operation
		legal bool
	}{
		{"sequential", []porcupine.Operation{
			op(0, 0, 1, get("a"), notFound), op(0, 2, 3, put("a", "x"), ok), op(0, 4, 5, get("a"), got("x")),
			op(0, 6, 7, cas("a", "x", "y"), ok), op(0, 8, 9, cas("a", "x", "z"), conflict), op(0, 10, 11, get("a"), got("y")),
		}, true},
		{"stale read after a completed put", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), ok), op(1, 2, 3, get("a"), notFound),
		}, false},
		{"concurrent put and get may go either way", []porcupine.Operation{
			op(0, 0, 10, put("a", "x"), ok), op(1, 1, 2, get("a"), notFound), op(1, 3, 4, get("a"), got("x")),
		}, true},
		{"a read cannot go back", []porcupine.Operation{
			op(0, 0, 10, put("a", "x"), ok), op(1, 1, 2, get("a"), got("x")), op(1, 3, 4, get("a"), notFound),
		}, false},
		{"value never written", []porcupine.Operation{op(0, 0, 1, get("a"), got("ghost"))}, false},
		{"cas absent", []porcupine.Operation{
			op(0, 0, 1, casAbsent("a", "x"), ok), op(1, 2, 3, casAbsent("a", "y"), conflict), op(1, 4, 5, get("a"), got("x")),
		}, true},
		{"two cas from one value both succeed", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), ok), op(1, 2, 5, cas("a", "x", "y"), ok), op(2, 2, 5, cas("a", "x", "z"), ok),
		}, false},
		{"an empty value is present", []porcupine.Operation{
			op(0, 0, 1, put("a", ""), ok), op(1, 2, 3, casAbsent("a", "y"), conflict), op(1, 4, 5, cas("a", "", "z"), ok),
		}, true},
		{"a pending put may take effect", []porcupine.Operation{
			op(0, 0, never, put("a", "x"), unknown), op(1, 5, 6, get("a"), got("x")),
		}, true},
		{"a pending put may never take effect", []porcupine.Operation{
			op(0, 0, never, put("a", "x"), unknown), op(1, 5, 6, get("a"), notFound),
		}, true},
		{"but once seen it stays", []porcupine.Operation{
			op(0, 0, never, put("a", "x"), unknown), op(1, 5, 6, get("a"), got("x")), op(1, 7, 8, get("a"), notFound),
		}, false},
		{"an error result is never legal", []porcupine.Operation{op(0, 0, 1, put("a", "x"), KVOutput{Status: KVOther})}, false},
		{"keys are independent", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), ok), op(1, 2, 3, get("b"), notFound), op(1, 4, 5, get("a"), got("x")),
		}, true},
		{"one bad key makes the history illegal", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), ok), op(1, 2, 3, put("b", "y"), ok), op(1, 4, 5, get("b"), notFound), op(1, 6, 7, get("a"), got("x")),
		}, false},
	} {
		if legal := porcupine.CheckOperations(KVModel, tc.hist); legal != tc.legal {
			t.Errorf("%s: linearizable %v, want %v", tc.name, legal, tc.legal)
		}
	}
	parts := KVModel.Partition([]porcupine.Operation{op(0, 0, 1, put("b", "x"), ok), op(0, 2, 3, get("a"), notFound), op(0, 4, 5, get("b"), got("x"))})
	if len(parts) != 2 || len(parts[0]) != 1 || len(parts[1]) != 2 || parts[0][0].Input.(KVInput).Key != "a" {
		t.Errorf("partition by key: %v", parts)
	}
}

// TestDecodeKVMatchesStore: the outputs the workload records are what
// app/kv returns, and the model agrees with the store on a sequence.
func TestDecodeKVMatchesStore(t *testing.T) {
	s := kv.New(kv.Config{Scope: kv.Shared})
	caller := []byte{1}
	var hist []porcupine.Operation
	step := func(in KVInput, b []byte) KVOutput {
		out := decodeKV(in, s.Execute(caller, b))
		n := int64(len(hist))
		hist = append(hist, op(0, 2*n, 2*n+1, in, out))
		return out
	}
	if out := step(get("k"), kv.Get([]byte("k"))); out != notFound {
		t.Errorf("get of a missing key: %+v", out)
	}
	if out := step(casAbsent("k", "v1"), kv.CAS([]byte("k"), nil, true, []byte("v1"))); out != ok {
		t.Errorf("cas absent: %+v", out)
	}
	if out := step(cas("k", "v0", "v2"), kv.CAS([]byte("k"), []byte("v0"), false, []byte("v2"))); out != conflict {
		t.Errorf("cas on a wrong value: %+v", out)
	}
	if out := step(put("k", "v3"), kv.Put([]byte("k"), []byte("v3"))); out != ok {
		t.Errorf("put: %+v", out)
	}
	if out := step(get("k"), kv.Get([]byte("k"))); out != got("v3") {
		t.Errorf("get: %+v", out)
	}
	if !porcupine.CheckOperations(KVModel, hist) {
		t.Error("the store's own sequential history is not linearizable under the model")
	}
}

// TestFirstAnomalyNamesTheOperation: a violation names the first
// impossible response.
func TestFirstAnomalyNamesTheOperation(t *testing.T) {
	hist := []porcupine.Operation{
		op(0, 0, 1, put("a", "x"), ok), op(1, 2, 3, get("a"), got("x")), op(2, 4, 5, get("a"), notFound), op(1, 6, 7, get("a"), got("x")),
	}
	got := firstAnomaly(hist, farFuture())
	if !strings.Contains(got, "client 2's get(a) → not found") {
		t.Errorf("first anomaly: %s", got)
	}
}

// linScenarios are fault scenarios with view changes, crashes, an
// equivocating primary, partitions and f twins.
var linScenarios = []string{"crash-primary", "equivocating-primary", "silent-primary", "partition-heal", "twin", "lossy"}

// TestLinearizabilityUnderFaults: under the fault scenarios, with PBFT and
// with RCC, every key's history is linearizable.
func TestLinearizabilityUnderFaults(t *testing.T) {
	base := baseSeed(t)
	const seeds = 2
	t.Logf("seeds %d..%d per case (BRAID_SIM_BASE)", base, base+seeds-1)
	var casOK, casConflict, reads int
	for _, protocol := range []string{"pbft", "rcc"} {
		for _, sc := range linScenarios {
			for seed := base; seed < base+seeds; seed++ {
				o := Options{Protocol: protocol, Scenario: sc, N: 4, Seed: seed, Linearizability: true}
				w, res, err := runWorld(o)
				if err != nil {
					t.Fatal(err)
				}
				for _, v := range res.Violations {
					t.Errorf("%s %s seed %d: replay: go run ./cmd/braid sim --linearizability --protocol %s --scenario %s --seed %d\n%s",
						protocol, sc, seed, protocol, sc, seed, v)
				}
				if l := res.Lin; l == nil || l.Keys != linKeys || l.Operations != res.Submitted || l.Illegal != 0 {
					t.Errorf("%s %s seed %d: linearizability %+v, %d operations submitted", protocol, sc, seed, l, res.Submitted)
				} else if l.Timeouts > 0 {
					t.Logf("%s %s seed %d: %d keys timed out (not a pass)", protocol, sc, seed, l.Timeouts)
				}
				for _, h := range w.chk.history {
					switch {
					case h.in.Op == KVCAS && h.out.Status == KVOK:
						casOK++
					case h.in.Op == KVCAS && h.out.Status == KVConflict:
						casConflict++
					case h.in.Op == KVGet && h.out.Status == KVOK:
						reads++
					}
				}
			}
		}
	}
	// The workload is interesting: reads see values, cas both wins and
	// loses.
	if casOK == 0 || casConflict == 0 || reads == 0 {
		t.Errorf("workload: %d cas succeeded, %d conflicted, %d gets found a value", casOK, casConflict, reads)
	}
}

// TestLinearizabilityCatchesBeyondFaultBound is the negative control:
// with f+1 twins the two halves of the cluster decide differently and the
// clients on either side accept results no single order explains.
func TestLinearizabilityCatchesBeyondFaultBound(t *testing.T) {
	for _, protocol := range []string{"pbft", "rcc"} {
		caught := 0
		for seed := uint64(1); seed <= 3; seed++ {
			res, err := Run(Options{Protocol: protocol, Scenario: "twin", N: 4, Seed: seed, Byzantine: quorum.Vouch(4),
				Linearizability: true, MaxVirtual: 5 * time.Second}) // liveness fails too; no need to wait for it
			if err != nil {
				t.Fatal(err)
			}
			if res.Lin != nil && res.Lin.Illegal > 0 {
				caught++
				for _, v := range res.Violations {
					if strings.Contains(v, "linearizability:") {
						t.Logf("%s seed %d: %s", protocol, seed, v)
						break
					}
				}
			}
		}
		if caught == 0 {
			t.Errorf("%s: f+1 twins in 3 seeds and porcupine found every history linearizable", protocol)
		}
		// The bank replay notices too: the two halves' ledgers mix.
		res, err := Run(Options{Protocol: protocol, Scenario: "twin", N: 4, Seed: 1, Byzantine: quorum.Vouch(4), Bank: true, MaxVirtual: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, v := range res.Violations {
			if strings.Contains(v, "bank:") {
				t.Logf("%s seed 1, bank: %s", protocol, v)
				found = true
				break
			}
		}
		if !found {
			t.Errorf("%s seed 1: f+1 twins and the bank replay found nothing", protocol)
		}
	}
}

// TestLinearizabilitySameSeedSameTrace: the workload is a function of the
// seed, and the check after the run does not disturb it.
func TestLinearizabilitySameSeedSameTrace(t *testing.T) {
	o := Options{Protocol: "rcc", Scenario: "crash-primary", N: 4, Seed: 7, Linearizability: true}
	a, err := Run(o)
	if err != nil {
		t.Fatal(err)
	}
	o.LinTimeout = 1 // a check that gives up at once changes nothing either
	b, _ := Run(o)
	if a.TraceHash != b.TraceHash || a.Lin.Operations != b.Lin.Operations {
		t.Errorf("seed 7 gave two different runs: %s vs %s", a.TraceHash, b.TraceHash)
	}
}

// TestBankReplay checks the bank replay on hand-made ledgers: the
// negative controls of the conservation and at-most-once check.
func TestBankReplay(t *testing.T) {
	ops := map[msg.RequestKey]bankOp{}
	var entries []ledgerEntry
	add := func(client msg.ClientID, number uint64, o bankOp, result []byte) {
		key := msg.RequestKey{Client: client, Number: number}
		ops[key] = o
		entries = append(entries, ledgerEntry{key: key, result: result})
	}
	okEmpty, moved, skipped := app.OK(nil), app.OK([]byte{1}), app.OK([]byte{0})
	balance := func(v uint64) []byte { return app.OK(binary.BigEndian.AppendUint64(nil, v)) }
	add(0, 1, bankOp{kind: 'o', acct: "a"}, okEmpty)
	add(1, 1, bankOp{kind: 'o', acct: "b"}, okEmpty)
	add(0, 2, bankOp{kind: 'd', acct: "a", m: 100}, okEmpty)
	add(0, 3, bankOp{kind: 't', acct: "a", to: "b", n: 10, m: 30}, moved)
	add(1, 2, bankOp{kind: 't', acct: "b", to: "a", n: 30, m: 5}, skipped)
	add(1, 3, bankOp{kind: 't', acct: "b", to: "c", n: 0, m: 5}, app.Fail(app.StatusNotFound, "no"))
	add(1, 4, bankOp{kind: 'b', acct: "a"}, balance(70))
	legal := slices.Clone(entries)
	var st BankStats
	if errs := replayBank(legal, ops, &st); len(errs) > 0 || st.Money != 100 || st.Transfers != 1 {
		t.Errorf("legal ledger: %v, %+v", errs, st)
	}
	for _, tc := range []struct {
		name    string
		entries []ledgerEntry
		want    string
	}{
		{"a transfer twice", append(slices.Clone(legal[:4]), legal[3]), "in the ledger twice"},
		{"a balance the transfers do not give", append(slices.Clone(legal[:6]), ledgerEntry{legal[6].key, balance(100)}), "balance(a) (client 1, request 4) returned balance 100, but replaying the ledger a holds 70"},
		{"a transfer that should have been skipped", append(slices.Clone(legal[:4]), ledgerEntry{legal[4].key, moved}), "transfer(b → a, if > 30 move 5) (client 1, request 2) returned moved"},
	} {
		var st BankStats
		errs := replayBank(tc.entries, ops, &st)
		if len(errs) == 0 || !strings.Contains(strings.Join(errs, "\n"), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, errs, tc.want)
		}
	}
}

// TestBankUnderFaults: with PBFT and RCC under faults, the agreed ledger
// replays as a money-conserving bank, every transfer once.
func TestBankUnderFaults(t *testing.T) {
	seed := baseSeed(t)
	t.Logf("seed %d (BRAID_SIM_BASE)", seed)
	for _, protocol := range []string{"pbft", "rcc"} {
		for _, sc := range []string{"crash-primary", "equivocating-primary", "twin", "crash-restart"} {
			res, err := Run(Options{Protocol: protocol, Scenario: sc, N: 4, Seed: seed, Bank: true})
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range res.Violations {
				t.Errorf("%s %s seed %d: replay: go run ./cmd/braid sim --bank --protocol %s --scenario %s --seed %d\n%s", protocol, sc, seed, protocol, sc, seed, v)
			}
			if b := res.Bank; b == nil || b.Incomplete > 0 || b.Operations != res.Submitted || b.Transfers == 0 || b.Money != 4*bankStartBalance {
				t.Errorf("%s %s seed %d: bank %+v, %d submitted", protocol, sc, seed, b, res.Submitted)
			}
		}
	}
}
