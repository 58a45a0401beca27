package rcc

import (
	"fmt"
	"slices"
	"testing"

	"github.com/braid-bft/braid/app"
	"github.com/braid-bft/braid/app/bank"
	"github.com/braid-bft/braid/internal/coretest"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/pbft"
)

func ptr[T any](v T) *T { return &v }

func decision(inst uint32, seq uint64, reqs ...msg.Request) *pbft.Decision {
	b := msg.Batch{Requests: reqs}
	return &pbft.Decision{Instance: inst, Seq: seq, View: uint64(inst) + 10, Digest: b.Digest(), Batch: b}
}

// A round's entries are its batches in Figure 3's order, each batch's
// requests in batch order, with instance changes in their place (carrying
// the operation they embed), and left out: requests of clients the ordering
// instance does not serve, and numbers that already executed (client 1's
// refused instance change carries the number its request "b" executed).
func TestEntriesFollowExecutionOrder(t *testing.T) {
	nd, err := New(Config{ID: 0, N: 4, M: 4, Clients: []msg.ClientID{0, 1, 2, 3, 4, 5, 6, 7}, Instance: pbft.Config{
		Signer: coretest.Signer{ID: 0}, MaxBatch: 4, CheckpointInterval: 8, Window: 32,
		RequestTimeout: 30, ProgressTimeout: 30, ViewChangeTimeout: 30, RetransmitTicks: 5,
	}})
	if err != nil {
		t.Fatal(err)
	}
	req := func(c msg.ClientID, n uint64, op string) msg.Request {
		return msg.Request{Client: c, Number: n, Op: []byte(op)}
	}
	change := func(c msg.ClientID, n uint64, target uint32, op string) msg.Request {
		return msg.Request{Client: c, Number: n, Op: msg.InstanceChangeOp(target, []byte(op))}
	}
	row := []*pbft.Decision{
		decision(0, 1, req(0, 1, "a"), change(5, 7, 0, "moves-to-0"), req(1, 1, "not-served-by-0")),
		decision(1, 1, req(1, 2, "b"), change(1, 2, 2, "wrong-instance")),
		decision(2, 1), // empty: not in S
		decision(3, 1, req(3, 1, "c"), req(7, 9, "d")),
	}
	nd.pending[1] = row
	nd.executeReady()
	rd := nd.Ready()
	if len(rd.Rounds) != 1 {
		t.Fatalf("%d rounds executed, want 1", len(rd.Rounds))
	}
	r := rd.Rounds[0]
	s := []SeedEntry{{0, row[0].Digest}, {1, row[1].Digest}, {3, row[3].Digest}}
	if r.Seed != RoundSeed(1, s) {
		t.Fatal("seed is not RoundSeed over S")
	}
	var want []Entry
	var order []uint32
	last := map[msg.ClientID]uint64{}
	for _, idx := range ExecutionOrder(r.Seed, len(s)) {
		d := row[s[idx].Instance]
		order = append(order, d.Instance)
		for _, q := range d.Batch.Requests {
			e := Entry{Instance: d.Instance, View: d.View, Request: q, Op: q.Op, Outcome: msg.Executed}
			switch string(q.Op) {
			case "not-served-by-0":
				continue
			}
			if _, op, ok := msg.ParseInstanceChange(q.Op); ok {
				e.Op = op
				if d.Instance == 0 {
					e.Outcome = msg.Moved
				} else {
					e.Outcome, e.Refusal = msg.NotMoved, RefusedWrongInstance
				}
			}
			if q.Number > last[q.Client] {
				last[q.Client] = q.Number
				want = append(want, e)
			}
		}
	}
	var got []uint32
	for _, b := range r.Batches {
		got = append(got, b.Instance)
		if b.Digest != row[b.Instance].Digest || b.View != row[b.Instance].View {
			t.Fatalf("batch ref %+v does not match instance %d's decision", b, b.Instance)
		}
	}
	if !slices.Equal(got, order) {
		t.Fatalf("batches in order %v, want Figure 3's %v", got, order)
	}
	if fmt.Sprint(r.Entries) != fmt.Sprint(want) {
		t.Fatalf("entries\n %+v\nwant\n %+v", r.Entries, want)
	}
	if nd.clients.final(5) != 0 || nd.clients.final(1) != 1 {
		t.Fatalf("after the round: client 5 at %d (want 0), client 1 at %d (want 1)", nd.clients.final(5), nd.clients.final(1))
	}
	// The ordering instance learns which numbers executed (ClientExecuted)
	// and no longer accepts them; a filtered request stays acceptable.
	for _, tc := range []struct {
		inst int
		r    msg.Request
		done bool
	}{{0, req(5, 7, "again"), true}, {3, req(3, 1, "again"), true}, {1, req(1, 2, "again"), true}, {0, req(1, 1, "again"), false}} {
		before := nd.Instance(tc.inst).Stats().Dropped["already-decided"]
		nd.Instance(tc.inst).Request(tc.r)
		if got := nd.Instance(tc.inst).Stats().Dropped["already-decided"] - before; (got == 1) != tc.done {
			t.Fatalf("instance %d: request %v refused as already decided: %v, want %v", tc.inst, tc.r.Key(), got == 1, tc.done)
		}
	}
	if st := nd.Stats(); st.InstanceChanges != 2 || st.RefusedChanges != 1 || st.Filtered != 1 || st.Duplicates != 1 {
		t.Fatalf("stats %+v: want 2 instance changes, 1 refused, 1 filtered, 1 duplicate", st)
	}
}

// shell executes rounds on a bank the way a replica's shell does: every
// entry in order; a number at or below the client's last executed one is a
// duplicate the layer should have dropped.
type shell struct {
	bank    *bank.Bank
	last    map[msg.ClientID]uint64
	ran     map[msg.RequestKey]int
	outcome map[msg.RequestKey]msg.Outcome
}

func newShell() *shell {
	return &shell{bank: bank.New(), last: map[msg.ClientID]uint64{}, ran: map[msg.RequestKey]int{}, outcome: map[msg.RequestKey]msg.Outcome{}}
}

func (s *shell) execute(rounds []Round) {
	for _, r := range rounds {
		for _, e := range r.Entries {
			q := e.Request
			if q.Number <= s.last[q.Client] {
				panic(fmt.Sprintf("round %d hands the shell request %v, already executed", r.Round, q.Key()))
			}
			s.bank.Execute(app.CallerID(uint64(q.Client)), e.Op)
			s.last[q.Client] = q.Number
			s.ran[q.Key()]++
			s.outcome[q.Key()] = e.Outcome
		}
	}
}

func (s *shell) balance(t *testing.T, acct string) uint64 {
	t.Helper()
	v, err := bank.DecodeBalance(s.bank.Execute(app.CallerID(0), bank.Balance(acct)))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A client whose transfer was not answered sends an instance change that
// carries the transfer under the same request number. Whether the original
// or the change executes first — or both are ordered, in one round or two —
// the transfer is paid exactly once on every replica.
func TestInstanceChangeAndOriginalExecuteOnce(t *testing.T) {
	transfer := bank.Transfer("alice", "bob", 0, 30)
	for _, tc := range []struct {
		name string
		// originalFirst: the original reaches its primary before the
		// change is sent; changeExecutedFirst: only after the change has
		// executed (then the primary no longer proposes it).
		originalFirst, changeExecutedFirst bool
		wantOrdered                        int          // entries with the request's number
		wantOutcome                        *msg.Outcome // of the execution, if known
	}{
		{"together", true, false, 2, nil},
		// The original goes to the client's new instance, which knows the
		// number executed: it is never ordered.
		{"change first, original late", false, true, 1, ptr(msg.Moved)},
		// The change is ordered after the original executed: a duplicate
		// that still moves the client.
		{"original first", true, true, 2, ptr(msg.Executed)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 4, 4)
			const cl = msg.ClientID(1) // instance 1, primary replica 1
			setup := [][]byte{bank.Open("alice"), bank.Open("bob"), bank.Deposit("alice", 100)}
			for k, op := range setup {
				c.submit(msg.Request{Client: cl, Number: uint64(k + 1), Op: op}, false)
				c.Tick(3)
			}
			const n = 4
			original := msg.Request{Client: cl, Number: n, Op: transfer}
			moveTo2 := msg.Request{Client: cl, Number: n, Op: msg.InstanceChangeOp(2, transfer)}
			if tc.originalFirst && tc.changeExecutedFirst {
				c.submit(original, false)
				c.Tick(20)
				c.submit(moveTo2, true)
			} else if tc.originalFirst {
				c.submit(original, false)
				c.submit(moveTo2, true)
			} else {
				c.submit(moveTo2, true)
				c.Tick(20)
				c.submit(original, false)
			}
			c.Tick(200)
			c.checkAgreement()
			// Ordered: executed once (an entry) plus dropped as a duplicate
			// (the only request of the test that can be one).
			ordered := 0
			var rounds []uint64
			for _, r := range c.rounds[0] {
				for _, e := range r.Entries {
					if e.Request.Key() == original.Key() {
						ordered++
						rounds = append(rounds, r.Round)
					}
				}
			}
			ordered += len(c.dupRounds[0])
			rounds = append(rounds, c.dupRounds[0]...)
			for i := range c.nodes {
				s := newShell()
				s.execute(c.rounds[i])
				if got := s.ran[original.Key()]; got != 1 {
					t.Fatalf("replica %d executed request %d %d times", i, n, got)
				}
				if a, b := s.balance(t, "alice"), s.balance(t, "bob"); a != 70 || b != 30 {
					t.Fatalf("replica %d: alice %d, bob %d after one transfer of 30 (request %d ordered %d times)", i, a, b, n, ordered)
				}
				if o := s.outcome[original.Key()]; tc.wantOutcome != nil && o != *tc.wantOutcome {
					t.Fatalf("replica %d: request %d executed with outcome %v, want %v", i, n, o, *tc.wantOutcome)
				}
			}
			t.Logf("request %d ordered %d times, in rounds %v", n, ordered, rounds)
			if ordered != tc.wantOrdered {
				t.Errorf("request %d ordered %d times, want %d (the case under test)", n, ordered, tc.wantOrdered)
			}
			if tc.originalFirst && !tc.changeExecutedFirst && (len(rounds) != 2 || rounds[0] != rounds[1]) {
				t.Errorf("the original and the change were ordered in rounds %v, want one round (the case under test)", rounds)
			}
			if c.nodes[0].InstanceFor(cl) != 2 {
				t.Errorf("client served by instance %d after its instance change to 2 executed", c.nodes[0].InstanceFor(cl))
			}
		})
	}
}

// After a restart or a state transfer the layer learns, from the shell's
// durable reply table, which numbers executed, and drops a late ordering
// of one of them: the shell executes every entry it is handed, so this is
// where exactly-once holds across a crash.
func TestLearnedNumbersAreNotExecutedAgain(t *testing.T) {
	for _, how := range []string{"restore", "state transfer"} {
		t.Run(how, func(t *testing.T) {
			nd, err := New(Config{ID: 0, N: 4, M: 1, Clients: []msg.ClientID{1, 2}, Instance: pbft.Config{
				Signer: coretest.Signer{ID: 0}, MaxBatch: 4, CheckpointInterval: 8, Window: 32,
			}})
			if err != nil {
				t.Fatal(err)
			}
			done := map[msg.ClientID]uint64{1: 4}
			if how == "restore" {
				nd.Restore(nil, 0, done)
			} else {
				nd.StateTransferred(0, done)
			}
			nd.Ready()
			r := func(c msg.ClientID, n uint64) msg.Request { return msg.Request{Client: c, Number: n, Op: []byte("op")} }
			nd.pending[1] = []*pbft.Decision{decision(0, 1, r(1, 3), r(1, 4), r(2, 4), r(1, 5))}
			nd.executeReady()
			rd := nd.Ready()
			if len(rd.Rounds) != 1 {
				t.Fatalf("%d rounds executed, want 1", len(rd.Rounds))
			}
			var got []msg.RequestKey
			for _, e := range rd.Rounds[0].Entries {
				got = append(got, e.Request.Key())
			}
			if want := []msg.RequestKey{{Client: 2, Number: 4}, {Client: 1, Number: 5}}; !slices.Equal(got, want) {
				t.Fatalf("entries %v, want %v (client 1's numbers up to 4 executed before)", got, want)
			}
			if d := nd.Stats().Duplicates; d != 2 {
				t.Fatalf("%d duplicates dropped, want 2", d)
			}
		})
	}
}
