package pbft

import (
	"fmt"
	"testing"

	"github.com/braid-bft/braid/internal/coretest"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/quorum"
)

// Tests for docs/adversary.md: what f Byzantine backups can send a
// correct replica, and why it changes nothing. The cores never check
// signatures (the shell does), so every message here is what a Byzantine
// replica could sign with its own key.

// f lying checkpoints, however often repeated, neither make a checkpoint
// stable nor vouch for a state transfer: a stable checkpoint needs a
// quorum of matching signatures, a transfer without one needs f+1. q
// matching ones from distinct replicas do make it stable.
func TestLyingCheckpointsAreNotStable(t *testing.T) {
	for _, n := range []int{4, 7} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			f := quorum.Faults(n)
			c := newCluster(t, n, nil)
			nd := c.nodes[0]
			k := nd.cfg.CheckpointInterval
			lie := msg.Digest{0xba, 0xd}
			for rep := 0; rep < 5; rep++ {
				for seq := k; seq <= 3*k; seq += k {
					for b := n - f; b < n; b++ {
						ck := &msg.Checkpoint{Seq: seq, State: lie, From: msg.ReplicaID(b)}
						ck.Sig = coretest.Signer{ID: ck.From}.Sign(msg.SignedBytes(ck))
						nd.Step(ck.From, ck)
					}
				}
			}
			for range 200 { // long past the quiet period a weak transfer waits for
				nd.Tick()
				if nd.HasReady() {
					if st := nd.Ready().StateTransfer; st != nil {
						t.Fatalf("%d lying checkpoints started a state transfer to seq %d", f, st.Seq)
					}
				}
			}
			if nd.LowWatermark() != 0 || nd.Stats().StableCheckpoints != 0 || nd.Stats().WeakTransfers != 0 {
				t.Fatalf("after %d lying checkpoints: low watermark %d, %d stable, %d weak transfers; want none",
					f, nd.LowWatermark(), nd.Stats().StableCheckpoints, nd.Stats().WeakTransfers)
			}
			// The positive control: a quorum of distinct signers is enough
			// (at a seq the liars did not sign: a second, different
			// checkpoint from a signer is dropped as conflicting).
			truth := msg.Digest{0x90, 0x0d}
			for b := 1; b <= quorum.Size(n); b++ {
				ck := &msg.Checkpoint{Seq: 4 * k, State: truth, From: msg.ReplicaID(b)}
				nd.Step(ck.From, ck)
			}
			if nd.LowWatermark() != 4*k {
				t.Fatalf("%d matching checkpoints for seq %d: low watermark %d, want %d", quorum.Size(n), 4*k, nd.LowWatermark(), 4*k)
			}
		})
	}
}

// f Byzantine replicas that ask for a new view every tick, climbing, cannot
// move the correct replicas out of view 0 (a replica joins a view change
// only when f+1 ask for a later view, so at least one correct replica timed
// out), and the cluster keeps deciding meanwhile.
func TestViewChangeStormFromFReplicasChangesNothing(t *testing.T) {
	const n = 7
	f := quorum.Faults(n)
	c := newCluster(t, n, nil)
	byz := map[msg.ReplicaID]bool{}
	for b := n - f; b < n; b++ {
		byz[msg.ReplicaID(b)] = true
		c.Down[msg.ReplicaID(b)] = true // their own honest traffic is not needed
	}
	var want []msg.RequestKey
	for v := uint64(1); v <= 60; v++ {
		for b := range byz {
			vc := &msg.ViewChange{NewView: v, From: b}
			vc.Sig = coretest.Signer{ID: b}.Sign(msg.SignedBytes(vc))
			for i := range c.nodes {
				if !byz[msg.ReplicaID(i)] {
					c.nodes[i].Step(b, vc)
					c.drain(i)
				}
			}
		}
		r := req(1, v)
		want = append(want, r.Key())
		c.nodes[0].Request(r)
		c.Tick(1)
	}
	c.Tick(5)
	c.checkAgreement()
	for i := range c.nodes {
		if byz[msg.ReplicaID(i)] {
			continue
		}
		if v, ch := c.nodes[i].View(); v != 0 || ch {
			t.Fatalf("replica %d in view %d (changing %v) after a storm of view changes from %d replicas", i, v, ch, f)
		}
		hasAll(t, c.decided[i], want)
	}
}

// Messages replayed from an earlier view — every pre-prepare, prepare,
// commit and checkpoint the cluster sent before its primary crashed — change
// nothing at a replica that has moved to a later view: old views are never
// voted in again, duplicates are dropped.
func TestReplayedMessagesChangeNothing(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.MaxBatch = 2 })
	var seen []coretest.Envelope
	c.Filter = func(e coretest.Envelope) []coretest.Envelope {
		seen = append(seen, e)
		return []coretest.Envelope{e}
	}
	// Commits of the last two proposals never arrive, so their slots are
	// still open (prepared) when the primary crashes.
	c.Drop = func(e coretest.Envelope) bool {
		cm, ok := e.Msg.(*msg.Commit)
		return ok && cm.Seq > 5
	}
	for i := uint64(1); i <= 14; i++ {
		c.nodes[0].Request(req(i, 1))
	}
	c.Tick(2)
	c.Drop = nil
	c.Down[0] = true
	for i := 1; i < 4; i++ {
		c.nodes[i].Suspect()
	}
	c.Tick(100)
	c.checkAgreement()
	nd := c.nodes[2]
	if v, ch := nd.View(); v == 0 || ch {
		t.Fatalf("replica 2 in view %d (changing %v), want a later view", v, ch)
	}
	old := 0
	for _, e := range seen {
		if v, ok := viewOf(e.Msg); ok && v == 0 {
			old++
		}
	}
	if old == 0 {
		t.Fatal("no view-0 messages recorded to replay")
	}
	before, decided := fingerprint(nd), len(c.decided[2])
	for rep := 0; rep < 3; rep++ {
		for _, e := range seen {
			if e.To == 2 || e.From != 2 {
				nd.Step(e.From, e.Msg)
				c.drain(2)
			}
		}
	}
	c.Queue = nil // answers to replayed Status beacons: not part of the check
	if after := fingerprint(nd); after != before || len(c.decided[2]) != decided {
		t.Fatalf("replaying %d messages (%d of view 0) changed replica 2:\nbefore %s (%d decided)\nafter  %s (%d decided)",
			len(seen), old, before, decided, after, len(c.decided[2]))
	}
}

// viewOf is the view a normal-case message belongs to.
func viewOf(m msg.Message) (uint64, bool) {
	switch x := m.(type) {
	case *msg.PrePrepare:
		return x.View, true
	case *msg.Prepare:
		return x.View, true
	case *msg.Commit:
		return x.View, true
	}
	return 0, false
}

// Votes count only for the digest a replica accepted: prepares and commits
// for another body, even from every other replica, neither prepare nor
// commit the slot; votes for the accepted body do.
func TestWrongDigestVotesDoNotCount(t *testing.T) {
	c := newCluster(t, 4, nil)
	nd := c.nodes[1]
	pp := &msg.PrePrepare{View: 0, Seq: 1, From: 0, Batch: msg.Batch{Requests: []msg.Request{req(1, 1)}}}
	pp.Digest = pp.Batch.Digest()
	ob := msg.Batch{Requests: []msg.Request{req(2, 1)}}
	other := ob.Digest()
	nd.Step(0, pp)
	for _, from := range []msg.ReplicaID{2, 3} {
		nd.Step(from, &msg.Prepare{View: 0, Seq: 1, Digest: other, From: from})
	}
	for _, from := range []msg.ReplicaID{0, 2, 3} {
		nd.Step(from, &msg.Commit{View: 0, Seq: 1, Digest: other, From: from})
	}
	if s := nd.slots[1]; s == nil || s.prepared || s.committed || nd.LastDecided() != 0 {
		t.Fatalf("votes for another digest prepared or decided slot 1 (prepared %v, decided %d)", s != nil && s.prepared, nd.LastDecided())
	}
	// A prepared slot: commits for another body do not commit it.
	pp2 := &msg.PrePrepare{View: 0, Seq: 2, From: 0, Batch: msg.Batch{Requests: []msg.Request{req(3, 1)}}}
	pp2.Digest = pp2.Batch.Digest()
	nd.Step(0, pp2)
	for _, from := range []msg.ReplicaID{2, 3} {
		nd.Step(from, &msg.Prepare{View: 0, Seq: 2, Digest: pp2.Digest, From: from})
	}
	for _, from := range []msg.ReplicaID{0, 2, 3} {
		nd.Step(from, &msg.Commit{View: 0, Seq: 2, Digest: other, From: from})
	}
	if s := nd.slots[2]; s == nil || !s.prepared || s.committed {
		t.Fatalf("slot 2: prepared %v committed %v; want prepared by matching prepares, not committed by commits for another digest",
			s != nil && s.prepared, s != nil && s.committed)
	}
	// The positive control: votes for the accepted body prepare and commit
	// (a fresh slot: a second vote from the same sender is dropped).
	pp3 := &msg.PrePrepare{View: 0, Seq: 3, From: 0, Batch: msg.Batch{Requests: []msg.Request{req(4, 1)}}}
	pp3.Digest = pp3.Batch.Digest()
	nd.Step(0, pp3)
	for _, from := range []msg.ReplicaID{2, 3} {
		nd.Step(from, &msg.Prepare{View: 0, Seq: 3, Digest: pp3.Digest, From: from})
	}
	for _, from := range []msg.ReplicaID{0, 2, 3} {
		nd.Step(from, &msg.Commit{View: 0, Seq: 3, Digest: pp3.Digest, From: from})
	}
	if s := nd.slots[3]; s == nil || !s.prepared || !s.committed {
		t.Fatal("votes for the accepted digest did not prepare and commit slot 3")
	}
}
