package rcc

import (
	"testing"

	"github.com/braid-bft/braid/internal/coretest"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/quorum"
)

// step delivers everything queued now — one message delay — and returns
// how many messages it delivered. What the deliveries send waits for the
// next step.
func (c *cluster) step() int {
	now := c.Queue
	c.Queue = nil
	for _, e := range now {
		if c.Down[e.To] {
			continue
		}
		c.nodes[e.To].Step(e.From, e.Msg)
		c.drain(int(e.To))
	}
	return len(now)
}

// cutBatches ticks every replica once without delivering anything, so the
// primary that holds a partial batch proposes it (BatchTicks = 1).
func (c *cluster) cutBatches() {
	for i, nd := range c.nodes {
		if !c.Down[msg.ReplicaID(i)] {
			nd.Tick()
			c.drain(i)
		}
	}
}

// stepsToExecute submits r to its instance's primary, lets the primary cut
// its batch, and counts message delays until every replica has executed r.
func (c *cluster) stepsToExecute(r msg.Request) int {
	c.t.Helper()
	c.submit(r, false)
	c.cutBatches()
	key := r.Key()
	for steps := 1; steps <= 50; steps++ {
		if c.step() == 0 {
			break
		}
		all := true
		for i := range c.nodes {
			all = all && c.executed[i][key]
		}
		if all {
			return steps
		}
	}
	c.t.Fatalf("request %v never executed everywhere (executed rounds: %d)", key, c.nodes[0].Executed())
	return 0
}

// oneClientLatency runs a closed loop of one client (client 0, served by
// instance 0) for k requests and returns the message delays each took
// from its pre-prepare to execution at every replica.
func oneClientLatency(t *testing.T, n, m, k int) []int {
	c := newCluster(t, n, m)
	var steps []int
	for num := uint64(1); num <= uint64(k); num++ {
		steps = append(steps, c.stepsToExecute(msg.Request{Client: 0, Number: num, Op: []byte("x")}))
		c.Settle() // let the round's stragglers (checkpoints and the like) settle
	}
	c.checkAgreement()
	return steps
}

// At light load a round must not cost two consensus latencies: an idle
// primary fills a round as soon as it sees another instance's pre-prepare
// for it, so its fill's consensus overlaps the request's. One client's
// request then executes within one message delay of plain PBFT (m = 1):
// pre-prepare, prepare, commit for the request, and the fills, which start
// one delay later, commit one delay later.
func TestLowLoadLatencyFillsOnPrePrepare(t *testing.T) {
	const k = 5
	for _, n := range []int{4, 7} {
		ms := []int{1, quorum.Correct(n), n}
		results := map[int][]int{}
		for _, m := range ms {
			results[m] = oneClientLatency(t, n, m, k)
		}
		t.Logf("1-client latency in message delays, n=%d, %d requests: m=1 %v | m=%d %v | m=n=%d %v", n, k, results[1], ms[1], results[ms[1]], n, results[n])
		for _, s := range results[1] {
			if s != 3 {
				t.Fatalf("n=%d m=1: a request took %d message delays, want 3 (plain PBFT): %v", n, s, results[1])
			}
		}
		for _, m := range []int{n, ms[1]} {
			for _, s := range results[m] {
				if s > 4 {
					t.Fatalf("n=%d m=%d: a request took %d message delays, want at most 4 (m=1 takes 3): the fills waited for the request's decision: %v (m=1: %v)", n, m, s, results[m], results[1])
				}
			}
		}
	}
}

// A Byzantine primary's valid pre-prepare far ahead of its instance's
// decided rounds pulls the correct primaries' fills only fillLead rounds
// past what that instance decided: one message cannot make them race to
// the end of the window.
func TestFarPrePrepareBoundsFills(t *testing.T) {
	c := newCluster(t, 4, 4)
	// Replica 0, primary of instance 0, signs a pre-prepare for round 20
	// (inside the window of 32), skipping rounds 1–19, sends it to all and
	// then falls silent.
	b := msg.Batch{Requests: []msg.Request{{Client: 0, Number: 1, Op: []byte("far")}}}
	pp := &msg.PrePrepare{Instance: 0, View: 0, Seq: 20, Digest: b.Digest(), Batch: b, From: 0}
	msg.SetSig(pp, coretest.Signer{ID: 0}.Sign(msg.SignedBytes(pp)))
	for j := 1; j < 4; j++ {
		c.Queue = append(c.Queue, coretest.Envelope{From: 0, To: msg.ReplicaID(j), Msg: pp})
	}
	c.Down[0] = true
	c.Settle()
	for j := 1; j < 4; j++ {
		nd := c.nodes[j]
		if got := nd.Instance(j).NextProposal() - 1; got != fillLead {
			t.Fatalf("primary of instance %d proposed up to round %d after a lone pre-prepare for round 20; want exactly fillLead = %d", j, got, fillLead)
		}
		if st := nd.Stats(); st.EarlyFills != fillLead || st.EmptyProposals != fillLead {
			t.Fatalf("replica %d: stats %+v, want %d early fills", j, st, fillLead)
		}
	}
	c.checkAgreement()
}

// Fills answer only pre-prepares that carry requests: other instances'
// fills are not work, so once the requests executed the cluster goes
// idle with every instance exactly at the last executed round.
func TestIdleAfterEarlyFills(t *testing.T) {
	c := newCluster(t, 4, 4)
	for cl := msg.ClientID(1); cl <= 3; cl++ {
		c.stepsToExecute(msg.Request{Client: cl, Number: 1, Op: []byte("x")})
	}
	c.Tick(5)
	before := c.Sent
	c.Tick(200)
	if c.Sent != before {
		t.Fatalf("idle cluster sent %d messages in 200 ticks", c.Sent-before)
	}
	exec := c.nodes[0].Executed()
	if exec != 3 {
		t.Fatalf("executed %d rounds for 3 sequential requests, want 3", exec)
	}
	for i, nd := range c.nodes {
		for j := 0; j < 4; j++ {
			if got := nd.Instance(j).LastDecided(); got != exec {
				t.Fatalf("replica %d: instance %d decided %d rounds, executed %d: fills ran ahead", i, j, got, exec)
			}
		}
	}
	c.checkAgreement()
}

// Two clients of different instances, the second request arriving while
// the first is in flight: the second instance's primary already filled the
// first request's round, so its request goes into the next round, one past
// what its instance decided. fillLead = 2 lets that pre-prepare pull the
// fills too, so neither request waits for a decision.
func TestOverlappingRequestsFillEarly(t *testing.T) {
	for _, gap := range []int{0, 1, 2} {
		c := newCluster(t, 4, 4)
		a := msg.Request{Client: 1, Number: 1, Op: []byte("a")}
		b := msg.Request{Client: 2, Number: 1, Op: []byte("b")}
		c.submit(a, false)
		c.cutBatches()
		for range gap {
			c.step()
		}
		c.submit(b, false)
		c.cutBatches()
		everywhere := func(k msg.RequestKey) bool {
			for i := range c.nodes {
				if !c.executed[i][k] {
					return false
				}
			}
			return true
		}
		doneA, doneB := 0, 0
		for steps := gap + 1; steps <= 30 && (doneA == 0 || doneB == 0); steps++ {
			c.step()
			if doneA == 0 && everywhere(a.Key()) {
				doneA = steps
			}
			if doneB == 0 && everywhere(b.Key()) {
				doneB = steps - gap
			}
		}
		t.Logf("second request %d message delays after the first: first took %d, second %d", gap, doneA, doneB)
		if doneA == 0 || doneB == 0 || doneA > 4 || doneB > 4 {
			t.Fatalf("second request %d delays after the first: they took %d and %d message delays, want at most 4 each", gap, doneA, doneB)
		}
		c.checkAgreement()
	}
}
