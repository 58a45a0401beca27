package bank

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/braid-bft/braid/app"
	"github.com/braid-bft/braid/app/apptest"
	"github.com/braid-bft/braid/internal/testseed"
	"github.com/braid-bft/braid/internal/wire"
)

var alice, bob, eve = apptest.Alice, apptest.Bob, apptest.Eve

func mustSnapshot(t testing.TB, bk *Bank) []byte { return apptest.Snapshot(t, bk) }

// checkDigest checks that the incremental digest never drifted from one
// recomputed from the accounts.
func checkDigest(t testing.TB, bk *Bank) {
	t.Helper()
	apptest.CheckDigest(t, bk, New())
}

func mustOK(t testing.TB, res []byte) []byte {
	t.Helper()
	p, err := app.Payload(res)
	if err != nil {
		t.Fatalf("unexpected failure: %v", err)
	}
	return p
}

func balance(t testing.TB, bk *Bank, name string) uint64 {
	t.Helper()
	v, err := DecodeBalance(bk.Execute(nil, Balance(name)))
	if err != nil {
		t.Fatalf("balance(%s): %v", name, err)
	}
	return v
}

// example32 sets up Alice (1000), Bob (bobBalance) and Eve (0), each owned by
// its namesake.
func example32(t *testing.T, bobBalance uint64) *Bank {
	t.Helper()
	bk := New()
	for _, a := range []struct {
		c    app.Caller
		name string
		bal  uint64
	}{{alice, "Alice", 1000}, {bob, "Bob", bobBalance}, {eve, "Eve", 0}} {
		mustOK(t, bk.Execute(a.c, Open(a.name)))
		mustOK(t, bk.Execute(a.c, Deposit(a.name, a.bal)))
	}
	return bk
}

// TestExample32 reproduces the wait-free consensus paper's Example 3.2: the
// outcome of two conditional transfers depends on their order, which is why
// replicas must agree on one order.
//
//	CR1 = transfer(Alice, Bob, 500, 200)   (issued by Alice)
//	CR2 = transfer(Bob, Eve, 400, 300)     (issued by Bob)
//
// With 200 ≤ balance(Bob) < 400: CR2 first finds Bob ≤ 400 and does nothing,
// so Eve gets nothing; CR1 first raises Bob above 400 and CR2 pays Eve 300.
// The boundary balance(Bob) = 200 is special: CR1 raises Bob to exactly 400,
// and the condition is strict (> 400), so Eve gets nothing in either order.
func TestExample32(t *testing.T) {
	cr1 := Transfer("Alice", "Bob", 500, 200)
	cr2 := Transfer("Bob", "Eve", 400, 300)
	type req struct {
		c  app.Caller
		op []byte
	}
	r1, r2 := req{alice, cr1}, req{bob, cr2}
	tests := []struct {
		name        string
		bob         uint64
		order       []req
		wantEve     uint64
		wantApplied [2]bool
	}{
		{"CR1 then CR2, Bob=300", 300, []req{r1, r2}, 300, [2]bool{true, true}},
		{"CR2 then CR1, Bob=300", 300, []req{r2, r1}, 0, [2]bool{false, true}},
		{"CR1 then CR2, Bob=201", 201, []req{r1, r2}, 300, [2]bool{true, true}},
		{"CR2 then CR1, Bob=201", 201, []req{r2, r1}, 0, [2]bool{false, true}},
		{"CR1 then CR2, Bob=399", 399, []req{r1, r2}, 300, [2]bool{true, true}},
		{"CR2 then CR1, Bob=399", 399, []req{r2, r1}, 0, [2]bool{false, true}},
		{"CR1 then CR2, Bob=200 (strict >)", 200, []req{r1, r2}, 0, [2]bool{true, false}},
		{"CR2 then CR1, Bob=200", 200, []req{r2, r1}, 0, [2]bool{false, true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Two independent replicas, same order.
			replicas := []*Bank{example32(t, tc.bob), example32(t, tc.bob)}
			var results [2][][]byte
			for ri, bk := range replicas {
				for i, r := range tc.order {
					res := bk.Execute(r.c, r.op)
					results[ri] = append(results[ri], res)
					applied, err := DecodeTransfer(res)
					if err != nil {
						t.Fatalf("replica %d request %d: %v", ri, i, err)
					}
					if applied != tc.wantApplied[i] {
						t.Fatalf("replica %d request %d: applied=%v, want %v", ri, i, applied, tc.wantApplied[i])
					}
				}
				if got := balance(t, bk, "Eve"); got != tc.wantEve {
					t.Fatalf("replica %d: Eve has %d, want %d", ri, got, tc.wantEve)
				}
				if got := balance(t, bk, "Alice") + balance(t, bk, "Bob") + balance(t, bk, "Eve"); got != 1000+tc.bob {
					t.Fatalf("money not conserved: total %d", got)
				}
				checkDigest(t, bk)
			}
			for i := range results[0] {
				if !bytes.Equal(results[0][i], results[1][i]) {
					t.Fatalf("request %d: replicas returned different results", i)
				}
			}
			if replicas[0].Digest() != replicas[1].Digest() ||
				!bytes.Equal(mustSnapshot(t, replicas[0]), mustSnapshot(t, replicas[1])) {
				t.Fatal("replicas with the same order diverged")
			}
		})
	}
	// Different orders give different states (and so different digests):
	// exactly the divergence consensus prevents.
	a, b := example32(t, 300), example32(t, 300)
	a.Execute(alice, cr1)
	a.Execute(bob, cr2)
	b.Execute(bob, cr2)
	b.Execute(alice, cr1)
	if a.Digest() == b.Digest() {
		t.Fatal("different orders produced equal digests")
	}
}

func TestOps(t *testing.T) {
	OK, NF, RJ, BAD := app.StatusOK, app.StatusNotFound, app.StatusRejected, app.StatusBadOp
	type step struct {
		c      app.Caller
		op     []byte
		want   app.Status
		reason string // substring of the failure reason
	}
	setup := []step{
		{alice, Open("alice"), OK, ""},
		{bob, Open("bob"), OK, ""},
		{alice, Deposit("alice", 100), OK, ""},
	}
	tests := []struct {
		name     string
		steps    []step
		balances map[string]uint64
	}{
		{"open duplicate", []step{{bob, Open("alice"), RJ, "exists"}}, map[string]uint64{"alice": 100}},
		{"open anonymous", []step{{nil, Open("anon"), RJ, "caller"}}, nil},
		{"open caller too long", []step{{make(app.Caller, app.MaxCallerLen+1), Open("x"), RJ, "caller"}}, nil},
		{"open empty name", []step{{alice, Open(""), BAD, "empty"}}, nil},
		{"open name too long", []step{{alice, Open(strings.Repeat("n", MaxNameLen+1)), BAD, "exceeds"}}, nil},
		{"open max name", []step{{alice, Open(strings.Repeat("n", MaxNameLen)), OK, ""}}, map[string]uint64{strings.Repeat("n", MaxNameLen): 0}},
		{"open invalid utf8", []step{{alice, Open("\xff\xfe"), BAD, "UTF-8"}}, nil},
		{"deposit by anyone", []step{{eve, Deposit("bob", 5), OK, ""}}, map[string]uint64{"bob": 5}},
		{"deposit anonymous", []step{{nil, Deposit("bob", 5), OK, ""}}, map[string]uint64{"bob": 5}},
		{"deposit zero", []step{{eve, Deposit("bob", 0), OK, ""}}, map[string]uint64{"bob": 0}},
		{"deposit missing", []step{{alice, Deposit("carol", 5), NF, ""}}, nil},
		{"deposit to max", []step{{alice, Deposit("bob", math.MaxUint64), OK, ""}}, map[string]uint64{"bob": math.MaxUint64}},
		{"deposit overflow", []step{{alice, Deposit("alice", math.MaxUint64-99), RJ, "overflow"}}, map[string]uint64{"alice": 100}},
		{"balance missing", []step{{alice, Balance("carol"), NF, ""}}, nil},
		{"transfer", []step{{alice, Transfer("alice", "bob", 50, 30), OK, ""}}, map[string]uint64{"alice": 70, "bob": 30}},
		{"transfer whole balance", []step{{alice, Transfer("alice", "bob", 0, 100), OK, ""}}, map[string]uint64{"alice": 0, "bob": 100}},
		{"transfer condition false (equal)", []step{{alice, Transfer("alice", "bob", 100, 30), OK, ""}}, map[string]uint64{"alice": 100, "bob": 0}},
		{"transfer condition false (above)", []step{{alice, Transfer("alice", "bob", 500, 30), OK, ""}}, map[string]uint64{"alice": 100, "bob": 0}},
		{"transfer insufficient funds", []step{{alice, Transfer("alice", "bob", 50, 101), RJ, "insufficient funds"}}, map[string]uint64{"alice": 100, "bob": 0}},
		{"transfer not owner", []step{{bob, Transfer("alice", "bob", 0, 10), RJ, "own"}}, map[string]uint64{"alice": 100, "bob": 0}},
		{"transfer anonymous", []step{{nil, Transfer("alice", "bob", 0, 10), RJ, "caller"}}, map[string]uint64{"alice": 100}},
		{"transfer missing source", []step{{alice, Transfer("carol", "bob", 0, 10), NF, "source"}}, nil},
		{"transfer missing destination", []step{{alice, Transfer("alice", "carol", 0, 10), NF, "destination"}}, map[string]uint64{"alice": 100}},
		{"transfer to self", []step{{alice, Transfer("alice", "alice", 0, 60), OK, ""}}, map[string]uint64{"alice": 100}},
		{"transfer to self insufficient", []step{{alice, Transfer("alice", "alice", 0, 160), RJ, "insufficient"}}, map[string]uint64{"alice": 100}},
		{"transfer overflow", []step{
			{eve, Deposit("bob", math.MaxUint64-10), OK, ""},
			{alice, Transfer("alice", "bob", 0, 11), RJ, "overflow"},
			{alice, Transfer("alice", "bob", 0, 10), OK, ""},
		}, map[string]uint64{"alice": 90, "bob": math.MaxUint64}},
		{"transfer zero amount", []step{{alice, Transfer("alice", "bob", 0, 0), OK, ""}}, map[string]uint64{"alice": 100, "bob": 0}},
		{"transfer bad destination name", []step{{alice, Transfer("alice", "", 0, 1), BAD, "destination"}}, map[string]uint64{"alice": 100}},
		{"ownership follows opener", []step{
			{eve, Open("eve"), OK, ""},
			{eve, Deposit("eve", 10), OK, ""},
			{alice, Transfer("eve", "alice", 0, 10), RJ, "own"},
			{eve, Transfer("eve", "alice", 0, 10), OK, ""},
		}, map[string]uint64{"alice": 110, "eve": 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bk := New()
			for i, s := range append(slices.Clone(setup), tc.steps...) {
				before, snap := bk.Digest(), mustSnapshot(t, bk)
				st, body, err := app.DecodeResult(bk.Execute(s.c, s.op))
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if st != s.want || (s.reason != "" && !strings.Contains(string(body), s.reason)) {
					t.Fatalf("step %d: got %v %q, want %v containing %q", i, st, body, s.want, s.reason)
				}
				if st != app.StatusOK && (bk.Digest() != before || !bytes.Equal(mustSnapshot(t, bk), snap)) {
					t.Fatalf("step %d: failed op changed state", i)
				}
			}
			for name, want := range tc.balances {
				if got := balance(t, bk, name); got != want {
					t.Errorf("balance(%s) = %d, want %d", name, got, want)
				}
			}
			checkDigest(t, bk)
		})
	}
}

func TestDecoders(t *testing.T) {
	bk := New()
	if err := DecodeOpen(bk.Execute(alice, Open("a"))); err != nil {
		t.Fatal(err)
	}
	var re *app.ResultError
	if err := DecodeOpen(bk.Execute(alice, Open("a"))); !errors.As(err, &re) || re.Status != app.StatusRejected {
		t.Fatalf("duplicate open err = %v", err)
	}
	if err := DecodeDeposit(bk.Execute(alice, Deposit("a", 7))); err != nil {
		t.Fatal(err)
	}
	if err := DecodeDeposit(bk.Execute(alice, Deposit("zz", 7))); !errors.As(err, &re) || re.Status != app.StatusNotFound {
		t.Fatalf("missing deposit err = %v", err)
	}
	if v, err := DecodeBalance(bk.Execute(alice, Balance("a"))); err != nil || v != 7 {
		t.Fatalf("DecodeBalance = %d, %v", v, err)
	}
	if _, err := DecodeTransfer(bk.Execute(alice, Transfer("a", "a", 100, 1))); err != nil {
		t.Fatal(err)
	}
	for _, res := range [][]byte{nil, {0}, {0, 1, 2}, {250}} {
		if _, err := DecodeBalance(res); err == nil {
			t.Errorf("DecodeBalance(%x) accepted", res)
		}
	}
	for _, res := range [][]byte{nil, {0}, {0, 2}, {0, 1, 1}} {
		if _, err := DecodeTransfer(res); err == nil {
			t.Errorf("DecodeTransfer(%x) accepted", res)
		}
	}
}

func TestMalformedOps(t *testing.T) {
	long := strings.Repeat("n", MaxNameLen+1)
	tests := []struct {
		name string
		op   []byte
	}{
		{"empty", nil},
		{"unknown opcode", []byte{0x42}},
		{"open truncated", Open("alice")[:6]},
		{"open trailing", append(Open("alice"), 0)},
		{"open huge length", wire.AppendU32([]byte{opOpen}, 0xffffffff)},
		{"deposit truncated amount", Deposit("alice", 1)[:12]},
		{"deposit trailing", append(Deposit("alice", 1), 0)},
		{"deposit long name", Deposit(long, 1)},
		{"balance long name", Balance(long)},
		{"balance empty name", Balance("")},
		{"transfer truncated", Transfer("alice", "bob", 1, 1)[:20]},
		{"transfer trailing", append(Transfer("alice", "bob", 1, 1), 9)},
		{"transfer long destination", Transfer("alice", long, 1, 1)},
		{"transfer invalid utf8 source", Transfer("\xc3", "bob", 1, 1)},
	}
	bk := New()
	bk.Execute(alice, Open("alice"))
	bk.Execute(bob, Open("bob"))
	bk.Execute(alice, Deposit("alice", 100))
	digest, snap := bk.Digest(), mustSnapshot(t, bk)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if bk.ReadOnly(tc.op) {
				t.Error("malformed op reported read-only")
			}
			st, reason, err := app.DecodeResult(bk.Execute(alice, tc.op))
			if err != nil || st != app.StatusBadOp || len(reason) == 0 {
				t.Fatalf("got %v %q (%v), want bad op with reason", st, reason, err)
			}
			if bk.Digest() != digest || !bytes.Equal(mustSnapshot(t, bk), snap) {
				t.Fatal("malformed op changed state")
			}
		})
	}
}

func TestReadOnly(t *testing.T) {
	bk := New()
	tests := []struct {
		op   []byte
		want bool
	}{
		{Balance("a"), true},
		{Open("a"), false},
		{Deposit("a", 1), false},
		{Transfer("a", "b", 1, 1), false},
		{Balance(""), false},
		{nil, false},
	}
	for i, tc := range tests {
		if got := bk.ReadOnly(tc.op); got != tc.want {
			t.Errorf("case %d: ReadOnly = %v, want %v", i, got, tc.want)
		}
	}
}

var (
	names   = []string{"alice", "bob", "eve", "carol"}
	callers = []app.Caller{alice, bob, eve, nil}
)

func randomReq(rng *rand.Rand) (app.Caller, []byte) {
	name := func() string { return names[rng.IntN(len(names))] }
	amt := func() uint64 {
		if rng.IntN(50) == 0 {
			return math.MaxUint64 - uint64(rng.IntN(3))
		}
		return uint64(rng.IntN(200))
	}
	c := callers[rng.IntN(len(callers))]
	switch rng.IntN(8) {
	case 0:
		return c, Open(name())
	case 1, 2:
		return c, Deposit(name(), amt())
	case 3:
		return c, Balance(name())
	case 4, 5, 6:
		return c, Transfer(name(), name(), amt(), amt())
	default:
		op := Transfer(name(), name(), amt(), amt())
		op[rng.IntN(len(op))] ^= byte(1 + rng.IntN(255))
		return c, op
	}
}

func TestRandomOpsDigestAndConservation(t *testing.T) {
	seed := testseed.New(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	bk := New()
	var minted uint64 // total of successful deposits (may saturate; see below)
	overflowed := false
	for i := range 3000 {
		c, op := randomReq(rng)
		before := bk.Digest()
		res := bk.Execute(c, op)
		st, _, err := app.DecodeResult(res)
		if err != nil {
			t.Fatalf("req %d: %v", i, err)
		}
		if st != app.StatusOK && bk.Digest() != before {
			t.Fatalf("req %d: failed op changed digest", i)
		}
		if st == app.StatusOK && op[0] == opDeposit {
			o, _ := decodeOp(op)
			if minted > math.MaxUint64-o.amount {
				overflowed = true
			}
			minted += o.amount
		}
		if i%100 == 0 {
			checkDigest(t, bk)
		}
	}
	checkDigest(t, bk)
	if !overflowed {
		// Transfers move money, never create or destroy it.
		var total uint64
		for _, n := range names {
			if v, err := DecodeBalance(bk.Execute(nil, Balance(n))); err == nil {
				total += v
			}
		}
		if total != minted {
			t.Fatalf("total balance %d != deposited %d", total, minted)
		}
	}
}

func TestSnapshotRestoreSameBehaviour(t *testing.T) {
	seed := testseed.New(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	a := New()
	for range 500 {
		a.Execute(randomReq(rng))
	}
	snap := mustSnapshot(t, a)
	b := New()
	b.Execute(eve, Open("pre-existing"))
	if err := b.Restore(snap); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if a.Digest() != b.Digest() || !bytes.Equal(mustSnapshot(t, b), snap) {
		t.Fatal("restored ledger differs")
	}
	for i := range 500 {
		c, op := randomReq(rng)
		if ra, rb := a.Execute(c, op), b.Execute(c, op); !bytes.Equal(ra, rb) {
			t.Fatalf("req %d: results diverge", i)
		}
	}
	if a.Digest() != b.Digest() || !bytes.Equal(mustSnapshot(t, a), mustSnapshot(t, b)) {
		t.Fatal("ledgers diverge after identical requests")
	}
}

func TestDeterministicReplicas(t *testing.T) {
	seed := testseed.New(t)
	rng := rand.New(rand.NewPCG(seed, 2))
	a, b := New(), New()
	for i := range 2000 {
		c, op := randomReq(rng)
		if ra, rb := a.Execute(c, op), b.Execute(slices.Clone(c), slices.Clone(op)); !bytes.Equal(ra, rb) {
			t.Fatalf("req %d: results diverge", i)
		}
	}
	if a.Digest() != b.Digest() || !bytes.Equal(mustSnapshot(t, a), mustSnapshot(t, b)) {
		t.Fatal("replicas diverge")
	}
}

func TestCallerBufferNotRetained(t *testing.T) {
	bk := New()
	c := slices.Clone(alice)
	bk.Execute(c, Open("acct"))
	for i := range c {
		c[i] = 0
	}
	bk.Execute(alice, Deposit("acct", 10))
	if ok, err := DecodeTransfer(bk.Execute(alice, Transfer("acct", "acct", 0, 1))); err != nil || !ok {
		t.Fatalf("owner lost after caller buffer reuse: %v %v", ok, err)
	}
	checkDigest(t, bk)
}

func TestRestoreRejectsBadSnapshots(t *testing.T) {
	entry := func(name, owner string, bal uint64) []byte {
		b := wire.AppendBytes(nil, []byte(name))
		b = wire.AppendBytes(b, []byte(owner))
		return wire.AppendU64(b, bal)
	}
	header := func(n uint64) []byte { return wire.AppendU64(append([]byte(snapMagic), snapVersion), n) }
	join := func(parts ...[]byte) []byte { return slices.Concat(parts...) }
	own := string(alice)

	src := New()
	for _, n := range names {
		src.Execute(alice, Open(n))
		src.Execute(alice, Deposit(n, 42))
	}
	valid := mustSnapshot(t, src)

	tests := []struct {
		name string
		snap []byte
	}{
		{"nil", nil},
		{"garbage", []byte("definitely not a ledger")},
		{"bad magic", join([]byte("BRKV"), valid[4:])},
		{"bad version", join([]byte(snapMagic), []byte{2}, valid[5:])},
		{"count too large", header(math.MaxUint64)},
		{"count exceeds entries", join(header(2), entry("a", own, 1))},
		{"count below entries", join(header(1), entry("a", own, 1), entry("b", own, 1))},
		{"unsorted", join(header(2), entry("b", own, 1), entry("a", own, 1))},
		{"duplicate", join(header(2), entry("a", own, 1), entry("a", own, 2))},
		{"empty name", join(header(1), entry("", own, 1))},
		{"name too long", join(header(1), entry(strings.Repeat("n", MaxNameLen+1), own, 1))},
		{"invalid utf8 name", join(header(1), entry("\xff", own, 1))},
		{"empty owner", join(header(1), entry("a", "", 1))},
		{"owner too long", join(header(1), entry("a", strings.Repeat("o", app.MaxCallerLen+1), 1))},
		{"truncated balance", join(header(1), entry("a", own, 1)[:15])},
		{"trailing", append(slices.Clone(valid), 0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bk := New()
			bk.Execute(bob, Open("keep"))
			bk.Execute(bob, Deposit("keep", 9))
			d, snap := bk.Digest(), mustSnapshot(t, bk)
			if err := bk.Restore(tc.snap); err == nil {
				t.Fatal("Restore accepted a bad snapshot")
			}
			if bk.Digest() != d || !bytes.Equal(mustSnapshot(t, bk), snap) {
				t.Fatal("failed Restore changed state")
			}
		})
	}
	for n := range len(valid) {
		if err := New().Restore(valid[:n]); err == nil {
			t.Fatalf("Restore accepted truncation to %d bytes", n)
		}
	}
	ok := join(header(2), entry("a", own, 5), entry("b", "x", math.MaxUint64))
	bk := New()
	if err := bk.Restore(ok); err != nil {
		t.Fatalf("valid snapshot rejected: %v", err)
	}
	if !bytes.Equal(mustSnapshot(t, bk), ok) {
		t.Fatal("restored snapshot not canonical")
	}
	if v := balance(t, bk, "b"); v != math.MaxUint64 {
		t.Fatalf("balance(b) = %d", v)
	}
	if ok, err := DecodeTransfer(bk.Execute(alice, Transfer("a", "b", 0, 1))); err == nil || ok {
		t.Fatal("transfer into a full account was not rejected")
	}
}

func TestCallerBound(t *testing.T) {
	for _, tc := range []struct {
		op   []byte
		want bool
	}{
		{Open("a"), true}, {Transfer("a", "b", 1, 1), true},
		{Deposit("a", 1), false}, {Balance("a"), false}, {nil, false},
	} {
		if got := CallerBound(tc.op); got != tc.want {
			t.Errorf("CallerBound(%x) = %v, want %v", tc.op, got, tc.want)
		}
	}
}

// TestValidName: ValidName accepts exactly the names open accepts.
func TestValidName(t *testing.T) {
	for _, name := range []string{"a", "alice", strings.Repeat("x", MaxNameLen), "é", "", strings.Repeat("x", MaxNameLen+1), "\xff", "a\xc3"} {
		res := New().Execute(app.CallerID(1), Open(name))
		accepted := app.Status(res[0]) != app.StatusBadOp
		if err := ValidName(name); (err == nil) != accepted {
			t.Errorf("ValidName(%q) = %v, but open accepted it: %v", name, err, accepted)
		}
	}
}
