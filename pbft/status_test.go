package pbft

import (
	"bytes"
	"testing"

	"github.com/braid-bft/braid/internal/coretest"
	"github.com/braid-bft/braid/msg"
)

// fill makes replica 0 propose `slots` batches of `perBatch` requests with
// ops of opSize bytes that prepare but never commit, so every replica holds
// them and answers Status beacons with them.
func fill(c *cluster, slots, perBatch, opSize int) {
	inner := c.Filter
	c.Filter = func(e coretest.Envelope) []coretest.Envelope {
		if _, ok := e.Msg.(*msg.Commit); ok {
			return nil
		}
		if inner != nil {
			return inner(e)
		}
		return []coretest.Envelope{e}
	}
	num := uint64(0)
	for s := 0; s < slots; s++ {
		for k := 0; k < perBatch; k++ {
			num++
			r := req(1, num)
			r.Op = bytes.Repeat([]byte{byte(num)}, opSize)
			c.nodes[0].Request(r)
		}
	}
	c.Settle()
	c.Filter = inner
}

// answerBytes drains nd and sums the encoded size of what it sends to `to`.
func answerBytes(nd *Node, to msg.ReplicaID) (total, largest int) {
	for nd.HasReady() {
		for _, o := range nd.Ready().Messages {
			if !o.Broadcast && o.To == to {
				size := len(msg.Marshal(o.Msg))
				total += size
				largest = max(largest, size)
			}
		}
	}
	return total, largest
}

// A Byzantine peer that reports a different NextSeq in every Status, many
// times a tick, can make a replica send at most its answer budget per
// retransmit period (plus one burst and one message in flight over it),
// however often it asks — not a fresh answer of up to a window of full
// batches per question.
func TestStatusAnswersAreBoundedInBytes(t *testing.T) {
	const budget = 32 << 10
	c := newCluster(t, 4, func(cfg *Config) {
		cfg.MaxBatch = 16
		cfg.CheckpointInterval = 8
		cfg.Window = 32
		cfg.ProgressTimeout = 1 << 20 // stay in view 0: the slots are the answer
		cfg.AnswerBytes = budget
	})
	fill(c, 32, 16, 512)
	nd := c.nodes[1]
	if got := len(nd.slots); got != 32 {
		t.Fatalf("replica 1 holds %d slots, want 32", got)
	}
	const ticks, perTick = 100, 10
	total, largest := 0, 0
	next := uint64(1)
	for tk := 0; tk < ticks; tk++ {
		nd.Tick()
		answerBytes(nd, 99) // beacons etc.: not answers to the attacker
		for k := 0; k < perTick; k++ {
			nd.Step(3, &msg.Status{View: 0, NextSeq: next, From: 3})
			next = next%4 + 1 // always a "new question", always asking for nearly everything
			b, l := answerBytes(nd, 3)
			total += b
			largest = max(largest, l)
		}
	}
	bound := (1+ticks/nd.cfg.RetransmitTicks)*budget + largest
	t.Logf("%d Status messages over %d ticks drew %d answer bytes (bound %d)", ticks*perTick, ticks, total, bound)
	if total > bound {
		t.Fatalf("a peer changing NextSeq drew %d answer bytes over %d ticks, want at most %d", total, ticks, bound)
	}
	if total == 0 {
		t.Fatal("no answers at all: the budget must still allow catching up")
	}
}

// Trimming answers to the budget slows a lagging replica's catch-up but does
// not stop it: it asks again from where it got to, and learns the rest.
func TestCatchUpWithinAnswerBudget(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) {
		cfg.MaxBatch = 4
		cfg.CheckpointInterval = 8
		cfg.Window = 32
		cfg.AnswerBytes = 4 << 10 // about one batch per retransmit period
	})
	c.Filter = func(e coretest.Envelope) []coretest.Envelope {
		if e.To == 3 {
			return nil // replica 3 misses everything while the others decide
		}
		return []coretest.Envelope{e}
	}
	num := uint64(0)
	for s := 0; s < 6; s++ {
		for k := 0; k < 4; k++ {
			num++
			r := req(1, num)
			r.Op = bytes.Repeat([]byte{byte(num)}, 900)
			c.nodes[0].Request(r)
		}
	}
	c.Settle()
	if got := c.nodes[1].LastDecided(); got != 6 {
		t.Fatalf("the others decided %d batches, want 6", got)
	}
	c.Filter = nil
	c.nodes[3].Announce()
	c.Tick(200)
	c.checkAgreement()
	if got := c.nodes[3].LastDecided(); got != 6 {
		t.Fatalf("lagging replica decided %d of 6 batches within the answer budget; drops: %v", got, c.nodes[1].Stats().Dropped)
	}
	if v, _ := c.nodes[3].View(); v != 0 {
		t.Fatalf("lagging replica moved to view %d instead of catching up", v)
	}
	if c.nodes[1].Stats().Dropped["answer-over-budget"] == 0 {
		t.Fatal("the budget never trimmed an answer: the test does not exercise it")
	}
}

// beaconWatch counts the Status beacons on a test cluster's network and
// holds back the messages its hold function picks, for the test to release.
type beaconWatch struct {
	held     []coretest.Envelope
	statuses int
}

func watchBeacons(c *cluster, hold func(coretest.Envelope) bool) *beaconWatch {
	w := &beaconWatch{}
	c.Filter = func(e coretest.Envelope) []coretest.Envelope {
		if _, ok := e.Msg.(*msg.Status); ok {
			w.statuses++
		}
		if hold(e) {
			w.held = append(w.held, e)
			return nil
		}
		return []coretest.Envelope{e}
	}
	return w
}

// A busy replica that keeps deciding does not beacon: under load there is
// always outstanding work, and every peer answers a Status with its
// pre-prepares above the asker's last decision — batches it mostly holds
// already. Beacons are for a replica that stopped deciding.
func TestNoBeaconsWhileDeciding(t *testing.T) {
	c := newCluster(t, 4, nil)
	// Commits are released at the next tick: a slot is always in flight.
	w := watchBeacons(c, func(e coretest.Envelope) bool { _, ok := e.Msg.(*msg.Commit); return ok })
	num := uint64(0)
	const ticks = 100
	for tk := 0; tk < ticks; tk++ {
		release := w.held
		w.held = nil
		c.Queue = append(c.Queue, release...)
		num++
		c.nodes[0].Request(req(1, num))
		c.Tick(1)
	}
	if got := len(c.decided[1]); got < ticks-2 {
		t.Fatalf("replica 1 decided %d of %d batches; the test needs steady progress", got, ticks)
	}
	if w.statuses > 0 {
		t.Fatalf("%d Status beacons while every replica decided a batch each tick; want none", w.statuses)
	}
	// Stalled, it beacons again: hold every commit from now on.
	for tk := 0; tk < 3*c.nodes[1].cfg.RetransmitTicks; tk++ {
		w.held = nil
		c.Tick(1)
	}
	if w.statuses == 0 {
		t.Fatal("no Status beacon after three retransmit periods without a decision")
	}
}

// A slow round is not a stalled one: while new pre-prepares and votes for
// the next slot keep arriving, a replica does not beacon even if deciding
// it takes longer than a retransmit period.
func TestNoBeaconsWhileTheNextSlotMoves(t *testing.T) {
	c := newCluster(t, 4, nil)
	// Replica 1 hears one message every third tick.
	w := watchBeacons(c, func(e coretest.Envelope) bool { return e.To == 1 })
	c.nodes[0].Request(req(1, 1))
	c.Settle()
	r := c.nodes[1].cfg.RetransmitTicks
	for tk := 0; tk < 4*r && len(c.decided[1]) == 0; tk++ {
		if tk%3 == 0 && len(w.held) > 0 {
			c.Queue = append(c.Queue, w.held[0])
			w.held = w.held[1:]
		}
		c.Tick(1)
	}
	if len(c.decided[1]) != 1 {
		t.Fatalf("replica 1 decided %d batches; the test needs it to decide slowly", len(c.decided[1]))
	}
	if w.statuses > 0 {
		t.Fatalf("%d Status beacons while replica 1's next slot kept moving (the others had decided); want none", w.statuses)
	}
}

// answered counts the pre-prepares and votes nd sends to `to`.
func answered(nd *Node, to msg.ReplicaID) (prePrepares, votes int) {
	for nd.HasReady() {
		for _, o := range nd.Ready().Messages {
			if o.Broadcast || o.To != to {
				continue
			}
			switch o.Msg.(type) {
			case *msg.PrePrepare:
				prePrepares++
			case *msg.Prepare, *msg.Commit:
				votes++
			}
		}
	}
	return prePrepares, votes
}

// A replica that holds the pre-prepares above its last decision and is only
// slow to decide them (its checks queued, say) says so in its beacon, and a
// peer answers with its votes alone: not every batch again. At n = 32 the
// re-sent batches were a primary's whole NIC for 200 ms at a time.
func TestStatusAnswerSkipsPrePreparesTheAskerHolds(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) {
		cfg.MaxBatch = 4
		cfg.ProgressTimeout = 1 << 20
	})
	fill(c, 6, 4, 16)
	asker, peer := c.nodes[3], c.nodes[1]
	st := asker.status()
	if st.NextSeq != 1 || st.Accepted != 6 {
		t.Fatalf("asker's status: NextSeq %d Accepted %d, want 1 and 6 (it holds the six pre-prepares)", st.NextSeq, st.Accepted)
	}
	answered(peer, 3)
	peer.Step(3, st)
	pps, votes := answered(peer, 3)
	if pps != 0 || votes == 0 {
		t.Fatalf("answer to an asker holding every pre-prepare: %d pre-prepares, %d votes; want only votes", pps, votes)
	}
	// The same question without the field (an asker missing them): the
	// pre-prepares come back.
	for range 21 { // past the retransmit period: a repeated question is answered again
		peer.Tick()
	}
	answered(peer, 3)
	old := *st
	old.Accepted = 0
	peer.Step(3, &old)
	if pps, _ := answered(peer, 3); pps != 6 {
		t.Fatalf("answer to an asker holding none: %d pre-prepares, want 6", pps)
	}
}

// An announcement whose answers are lost is asked again: the replica
// beacons through its hold period (two retransmit periods), so a lagging
// replica that announced while it could not hear still catches up when
// the cluster is idle and sends nothing unasked. Swarm seed 6727: a
// replica announced as a partition healed while a one-way fault still
// kept it from hearing, announced again 20 ms later as that ended — too
// soon, refused as a repeated question — and stayed behind for good.
func TestAnnouncementAnsweredWhenFirstAnswersAreLost(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.MaxBatch = 1; cfg.CheckpointInterval = 8; cfg.Window = 32 })
	deaf := true
	c.Filter = func(e coretest.Envelope) []coretest.Envelope {
		if e.To == 3 && deaf {
			return nil
		}
		return []coretest.Envelope{e}
	}
	for num := uint64(1); num <= 4; num++ {
		c.nodes[0].Request(req(1, num))
	}
	c.Settle()
	c.Tick(100) // idle
	if got := c.nodes[1].LastDecided(); got < 4 {
		t.Fatalf("the others decided %d, want at least 4", got)
	}
	behind := c.nodes[3].LastDecided()
	c.nodes[3].Announce() // the answers are lost
	c.Settle()
	deaf = false
	c.Tick(200)
	c.checkAgreement()
	if got, want := c.nodes[3].LastDecided(), c.nodes[1].LastDecided(); got != want {
		t.Fatalf("replica 3 at %d (announced at %d) while the others are at %d", got, behind, want)
	}
}
