package pbft

import (
	"slices"
	"testing"

	"github.com/braid-bft/braid/internal/coretest"
	"github.com/braid-bft/braid/msg"
)

// Catching up without a stable checkpoint to transfer to: what the
// simulator's liveness mode found (issue 9).

// A replica alone in a view change — the others stayed in the view it left
// — that missed their decisions must still learn them (it beacons Status
// while it waits, and learns from the answers' commits and pre-prepares).
func TestLoneViewChangerLearnsMissedDecisions(t *testing.T) {
	c := newCluster(t, 4, nil)
	c.Filter = func(e coretest.Envelope) []coretest.Envelope {
		if e.To == 3 {
			if _, vc := e.Msg.(*msg.ViewChange); !vc {
				return nil // replica 3 hears nothing of view 0's progress
			}
		}
		return []coretest.Envelope{e}
	}
	c.nodes[3].Suspect()
	c.drain(3)
	for num := uint64(1); num <= 3; num++ {
		c.nodes[0].Request(req(1, num))
		c.Tick(1)
	}
	if v, changing := c.nodes[0].View(); v != 0 || changing {
		t.Fatalf("replica 0 left view 0 (v%d changing=%v): the test needs replica 3 alone in its view change", v, changing)
	}
	want := c.nodes[0].LastDecided()
	c.Filter = nil
	c.Tick(30)
	c.checkAgreement()
	if v, changing := c.nodes[3].View(); !changing || v != 1 {
		t.Fatalf("replica 3 at v%d changing=%v; want still alone in its change to view 1", v, changing)
	}
	if got := c.nodes[3].LastDecided(); got != want || want == 0 {
		t.Fatalf("replica 3 alone in a view change decided up to %d, the others %d", got, want)
	}
}

// A backup its primary equivocated to (it accepted another body than the
// one the others decided) learns the decided body from a quorum of commits
// instead of staying behind on the one it was given.
func TestEquivocatedBackupLearnsTheDecidedBody(t *testing.T) {
	c := newCluster(t, 4, nil)
	c.Filter = func(e coretest.Envelope) []coretest.Envelope {
		if pp, ok := e.Msg.(*msg.PrePrepare); ok && e.To == 3 && pp.Seq == 1 {
			alt := *pp
			alt.Batch = msg.Batch{Requests: []msg.Request{req(9, 1)}}
			alt.Digest = alt.Batch.Digest()
			return []coretest.Envelope{{From: e.From, To: e.To, Msg: &alt}}
		}
		return []coretest.Envelope{e}
	}
	c.nodes[0].Request(req(1, 1))
	c.Tick(1)
	c.Filter = nil
	c.Tick(20)
	c.checkAgreement()
	if got := c.nodes[3].LastDecided(); got != 1 {
		t.Fatalf("equivocated backup decided up to %d, want 1", got)
	}
}

// An idle primary pads to the next checkpoint once, so the cluster goes
// quiet at a stable checkpoint; then it is silent.
func TestIdlePrimaryPadsToCheckpoint(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.CheckpointInterval, cfg.Window, cfg.PadToCheckpoint = 4, 16, true })
	c.nodes[0].Request(req(1, 1))
	c.Tick(40)
	for i, nd := range c.nodes {
		if nd.LastDecided() != 4 || nd.LowWatermark() != 4 {
			t.Fatalf("replica %d: decided %d, stable %d; want both 4", i, nd.LastDecided(), nd.LowWatermark())
		}
	}
	sent := 0
	c.Filter = func(e coretest.Envelope) []coretest.Envelope { sent++; return []coretest.Envelope{e} }
	c.Tick(100)
	if sent != 0 {
		t.Fatalf("idle cluster at a stable checkpoint sent %d messages in 100 ticks", sent)
	}
}

// ProposeQueued cuts a partial batch at once while fewer than
// PipelineDepth proposals are undecided, and leaves the queue alone when
// the pipeline is full.
func TestProposeQueuedRespectsThePipeline(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.PipelineDepth = 2 })
	p := c.nodes[0]
	for num := uint64(1); num <= 3; num++ {
		p.Request(req(1, num))
		p.ProposeQueued() // no tick, no delivery: each proposal stays undecided
	}
	if got := p.NextProposal() - 1; got != 2 {
		t.Fatalf("proposed %d batches with a pipeline of 2, want 2", got)
	}
	c.Settle() // the first two decide
	p.ProposeQueued()
	if got := p.NextProposal() - 1; got != 3 {
		t.Fatalf("after the pipeline drained: %d batches proposed, want 3", got)
	}
}

// A primary that leaves an idle instance off a checkpoint is suspected:
// bringing it there is its duty, because a replica it kept in the dark
// can catch up only from a stable checkpoint (twin primary, seed 9 of the
// simulator's liveness sweep: two correct replicas at 99, one at 82, none
// at a checkpoint, forever). The backups move to the next view, whose
// primary pads.
func TestPrimaryThatNeverPadsIsReplaced(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) {
		cfg.CheckpointInterval, cfg.Window, cfg.PadToCheckpoint = 4, 16, true
		if cfg.ID == 0 {
			cfg.PadToCheckpoint = false // the primary of view 0 shirks
		}
	})
	c.nodes[0].Request(req(1, 1))
	c.Tick(300)
	c.checkAgreement()
	for i, nd := range c.nodes {
		if view, _ := nd.View(); nd.LastDecided() != 4 || nd.LowWatermark() != 4 || view != 1 {
			t.Fatalf("replica %d: view %d, decided %d, stable %d; want view 1, both 4", i, view, nd.LastDecided(), nd.LowWatermark())
		}
	}
}

// f+1 matching checkpoints above what a replica decided are enough to
// fetch and verify that state (one of them is correct), when no quorum of
// them ever forms; they do not move the low watermark, but once installed
// our own checkpoint completes the quorum. f of them are not enough.
func TestWeakCheckpointStartsTransfer(t *testing.T) {
	for _, vouchers := range []int{1, 2} { // n = 4: f = 1
		cfg := Config{ID: 1, N: 4, Primary: roundRobin(4), Signer: coretest.Signer{ID: 1}, CheckpointInterval: 4, Window: 16}
		nd, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		state := msg.Digest{7}
		for from := 2; from < 2+vouchers; from++ {
			c := &msg.Checkpoint{Seq: 8, State: state, From: msg.ReplicaID(from)}
			c.Sig = coretest.Signer{ID: msg.ReplicaID(from)}.Sign(msg.SignedBytes(c))
			nd.Step(msg.ReplicaID(from), c)
		}
		var st *StateTransfer
		for i := 0; i < 200 && st == nil; i++ {
			nd.Tick()
			for nd.HasReady() {
				if rd := nd.Ready(); rd.StateTransfer != nil {
					st = rd.StateTransfer
				}
			}
		}
		if vouchers == 1 {
			if st != nil {
				t.Fatalf("one checkpoint (f) started a transfer to %d", st.Seq)
			}
			continue
		}
		if st == nil || st.Seq != 8 || st.State != state || len(st.Proof) != 2 {
			t.Fatalf("two checkpoints (f+1): transfer %+v, want to 8 with both as proof", st)
		}
		if nd.LowWatermark() != 0 {
			t.Fatalf("a weak certificate moved the low watermark to %d", nd.LowWatermark())
		}
		nd.StateTransferred(8, nil)
		nd.Checkpoint(8, state)
		if nd.LastDecided() != 8 || nd.LowWatermark() != 8 {
			t.Fatalf("after the transfer and our checkpoint: decided %d, stable %d; want 8, 8", nd.LastDecided(), nd.LowWatermark())
		}
	}
}

// A request proposed at a sequence number the instance then jumps over by
// state transfer (RCC's skipped rounds are such a range: the paradigm
// layer checkpoints them without the instance deciding there) is no longer
// waiting in any proposal: the primary proposes it again when its client
// retries, and a backup times it again. Swarm seed 8008 (rcc, in-place):
// the primary had proposed two clients' requests in rounds its instance
// then sat out, kept them as proposed for good and dropped every retry as
// a duplicate; the backups, having seen them proposed, never timed them.
func TestProposalsJumpedOverAreProposableAgain(t *testing.T) {
	stable := func(nd *Node, seq uint64, from ...msg.ReplicaID) {
		for _, id := range from {
			c := &msg.Checkpoint{Seq: seq, State: msg.Digest{9}, From: id}
			c.Sig = coretest.Signer{ID: id}.Sign(msg.SignedBytes(c))
			nd.Step(id, c)
		}
	}
	// proposes reports the sequence numbers of our pre-prepares that carry r.
	proposes := func(nd *Node, r msg.Request) (seqs []uint64) {
		for nd.HasReady() {
			for _, o := range nd.Ready().Messages {
				if pp, ok := o.Msg.(*msg.PrePrepare); ok && pp.From == nd.cfg.ID {
					for _, x := range pp.Batch.Requests {
						if x.Key() == r.Key() {
							seqs = append(seqs, pp.Seq)
						}
					}
				}
			}
		}
		return seqs
	}
	cfg := func(id msg.ReplicaID) Config {
		return Config{ID: id, N: 4, Primary: roundRobin(4), Signer: coretest.Signer{ID: id}, CheckpointInterval: 4, Window: 16}
	}
	r := req(5, 1)

	t.Run("primary", func(t *testing.T) {
		nd, err := New(cfg(0))
		if err != nil {
			t.Fatal(err)
		}
		nd.Request(r)
		nd.Tick()
		if got := proposes(nd, r); !slices.Equal(got, []uint64{1}) {
			t.Fatalf("first proposal at %v; want [1]", got)
		}
		stable(nd, 8, 1, 2, 3) // the others checkpointed 8 without deciding our seq 1 (a skipped range)
		nd.HasReady()
		nd.Ready()
		nd.StateTransferred(8, nil) // r did not execute
		nd.Request(r)               // its client retries
		nd.Tick()
		if got := proposes(nd, r); len(got) != 1 || got[0] <= 8 {
			t.Fatalf("after jumping to 8 the retried request went into %v; want one new proposal above 8 (dropped: %v)", got, nd.Stats().Dropped)
		}
	})
	t.Run("backup", func(t *testing.T) {
		nd, err := New(cfg(1))
		if err != nil {
			t.Fatal(err)
		}
		nd.Request(r)
		pp := &msg.PrePrepare{Seq: 1, Batch: msg.Batch{Requests: []msg.Request{r}}, From: 0}
		pp.Digest = pp.Batch.Digest()
		pp.Sig = coretest.Signer{ID: 0}.Sign(msg.SignedBytes(pp))
		nd.Step(0, pp)
		stable(nd, 8, 0, 2, 3)
		nd.StateTransferred(8, nil)
		for range 3 * nd.cfg.RequestTimeout {
			nd.Tick()
		}
		if _, changing := nd.View(); !changing {
			t.Fatalf("the backup waited %d ticks for a request whose proposal was jumped over and suspected nobody", 3*nd.cfg.RequestTimeout)
		}
	})
}
