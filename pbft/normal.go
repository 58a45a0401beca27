package pbft

// The normal case: pre-prepare, prepare, commit, and delivery in
// sequence order.

import (
	"github.com/braid-bft/braid/msg"
)

func (n *Node) onPrePrepare(pp *msg.PrePrepare) {
	if reason := n.checkNormal(pp.View, pp.Seq); reason != "" {
		n.learnPrePrepare(pp)
		n.drop(reason)
		return
	}
	// Replaying, the primary rule is not consulted: a recorded pre-prepare
	// passed it when first accepted, and the rule may answer differently
	// after a restart (the paradigm layer's state may be older or newer).
	if pp.From != n.cfg.Primary(n.view) && !n.replaying {
		n.drop("pre-prepare-not-from-primary")
		return
	}
	if pp.Null || pp.Failure {
		n.drop("null-outside-new-view")
		return
	}
	if pp.Seq <= n.planEnd {
		n.drop("seq-fixed-by-new-view")
		return
	}
	if reason := n.checkBatch(pp); reason != "" {
		n.drop(reason)
		return
	}
	if s := n.slots[pp.Seq]; s != nil && s.pp != nil {
		if s.pp.Digest == pp.Digest {
			n.drop("duplicate")
		} else {
			// Our primary equivocated. If the others decided this body (a
			// quorum of commits for it), we learn it from them (tryLearn)
			// instead of staying behind on the one we were given.
			n.learnPrePrepare(pp)
			n.drop("equivocation")
		}
		return
	}
	n.acceptPrePrepare(pp)
}

// checkNormal is the view and window test every normal-case message passes.
func (n *Node) checkNormal(view, seq uint64) string {
	switch {
	case n.changing:
		return "view-changing"
	case view < n.view:
		return "old-view"
	case view > n.view:
		return "future-view"
	case !n.inWindow(seq):
		return "out-of-window"
	}
	return ""
}

// checkBatch validates a pre-prepare's batch: size, digest, no request twice.
func (n *Node) checkBatch(pp *msg.PrePrepare) string {
	if pp.Null {
		want := msg.NullDigest
		if pp.Failure {
			if pp.FailureView > pp.View {
				return "bad-null"
			}
			want = msg.FailureDigest(pp.FailureView)
		} else if pp.FailureView != 0 {
			return "bad-null"
		}
		if len(pp.Batch.Requests) != 0 || pp.Digest != want {
			return "bad-null"
		}
		return ""
	}
	if pp.Failure {
		return "bad-null"
	}
	if len(pp.Batch.Requests) > n.cfg.MaxBatch {
		return "oversized-batch"
	}
	if pp.Batch.Digest() != pp.Digest {
		return "bad-digest"
	}
	if len(pp.Batch.Requests) > 1 {
		seen := make(map[msg.RequestKey]struct{}, len(pp.Batch.Requests))
		for i := range pp.Batch.Requests {
			k := pp.Batch.Requests[i].Key()
			if _, dup := seen[k]; dup {
				return "duplicate-in-batch"
			}
			seen[k] = struct{}{}
		}
	}
	return ""
}

func (n *Node) acceptPrePrepare(pp *msg.PrePrepare) {
	// Our signatures bind: no pre-prepare other than ours where we proposed,
	// and none other than the one we prepared where we prepared.
	mine := msg.KindPrepare
	if pp.From == n.cfg.ID {
		mine = msg.KindPrePrepare
	}
	if !n.bind(mine, n.view, pp.Seq, pp.Digest) {
		n.drop("conflicts-own-vote")
		return
	}
	if pp.From == n.cfg.ID && pp.Seq >= n.nextSeq {
		n.nextSeq = pp.Seq + 1 // our own proposal, handed back after we lost it
	}
	s := n.slot(pp.Seq)
	s.view = n.view
	s.pp = pp
	s.acceptedAt = n.tick
	n.noteActivity(pp.Seq)
	n.proposedWatched(pp.Batch.Requests)
	n.persist(pp)
	if pp.From != n.cfg.ID {
		p := &msg.Prepare{Instance: n.cfg.Instance, View: n.view, Seq: pp.Seq, Digest: pp.Digest, From: n.cfg.ID}
		if own := s.prepares[n.cfg.ID]; own != nil && own.Digest == pp.Digest {
			p = own // replaying: keep the prepare we already sent
		} else {
			n.sign(p)
		}
		s.prepares[n.cfg.ID] = p
		n.persist(p)
		n.broadcast(p)
	}
	n.checkPrepared(pp.Seq, s)
}

func (n *Node) onPrepare(p *msg.Prepare) {
	if reason := n.checkNormal(p.View, p.Seq); reason != "" {
		n.drop(reason)
		return
	}
	if s := n.slots[p.Seq]; (s != nil && s.pp != nil && p.From == s.pp.From) ||
		((s == nil || s.pp == nil) && p.From == n.cfg.Primary(n.view) && p.From == n.cfg.Leader(n.view) && !n.replaying) {
		n.drop("prepare-from-primary")
		return
	}
	s := n.slot(p.Seq)
	if _, dup := s.prepares[p.From]; dup {
		n.drop("duplicate")
		return
	}
	if p.From == n.cfg.ID && !n.bind(msg.KindPrepare, p.View, p.Seq, p.Digest) {
		// Our own prepare handed back (we lost our disk) contradicting one
		// we know we signed: keep the one we know.
		n.drop("conflicts-own-vote")
		return
	}
	s.prepares[p.From] = p
	s.seenAnyVote = true
	n.noteActivity(p.Seq)
	n.persist(p)
	n.checkPrepared(p.Seq, s)
}

func (n *Node) checkPrepared(seq uint64, s *slot) {
	if s.prepared || s.pp == nil {
		return
	}
	votes := 0
	for from, p := range s.prepares {
		if p.Digest == s.pp.Digest && from != s.pp.From {
			votes++
		}
	}
	if votes < n.q-1 {
		return
	}
	s.prepared = true
	proof := &msg.PreparedProof{PrePrepare: *s.pp}
	for _, id := range sortedIDs(s.prepares) {
		if p := s.prepares[id]; p.Digest == s.pp.Digest && id != s.pp.From {
			proof.Prepares = append(proof.Prepares, *p)
		}
	}
	n.prepared[seq] = proof
	if !n.bind(msg.KindCommit, n.view, seq, s.pp.Digest) {
		n.drop("conflicts-own-vote") // unreachable: the pre-prepare is bound to our vote
		return
	}
	c := &msg.Commit{Instance: n.cfg.Instance, View: n.view, Seq: seq, Digest: s.pp.Digest, From: n.cfg.ID}
	if own := s.ownCommit; own != nil && own.Digest == c.Digest {
		c = own // restored: keep the commit we already sent
	}
	s.ownCommit = c
	s.commits[n.cfg.ID] = c.Digest
	n.persist(c)
	n.broadcast(c)
	n.checkCommitted(seq, s)
}

func (n *Node) onCommit(c *msg.Commit) {
	if reason := n.checkNormal(c.View, c.Seq); reason != "" {
		// Not usable for voting here, but it may teach us a decision.
		n.learnCommit(c)
		n.drop(reason)
		return
	}
	s := n.slot(c.Seq)
	if s.pp != nil && c.Digest != s.pp.Digest {
		// A commit for another body than the one our primary gave us: if a
		// quorum decided that body, we must learn it (see onPrePrepare).
		n.learnCommit(c)
	}
	if _, dup := s.commits[c.From]; dup {
		n.drop("duplicate")
		return
	}
	s.commits[c.From] = c.Digest
	s.seenAnyVote = true
	n.noteActivity(c.Seq)
	n.checkCommitted(c.Seq, s)
}

func (n *Node) checkCommitted(seq uint64, s *slot) {
	if s.committed || !s.prepared {
		return
	}
	votes := 0
	for _, d := range s.commits {
		if d == s.pp.Digest {
			votes++
		}
	}
	if votes < n.q {
		return
	}
	s.committed = true
	n.deliver()
}

// noteActivity records that the next slot to decide is still moving: a new
// pre-prepare or vote for it arrived. A slow cluster is not a stalled one;
// only a next slot that hears nothing for a retransmit period makes the
// replica beacon (liveness.go).
func (n *Node) noteActivity(seq uint64) {
	if seq == n.lastDecided+1 {
		n.nextActiveTick = n.tick
	}
}

// deliver emits decisions strictly in sequence order.
func (n *Node) deliver() {
	if n.transferring != 0 {
		return
	}
	for {
		s := n.slots[n.lastDecided+1]
		if s == nil || !s.committed {
			break
		}
		n.lastDecided++
		n.decidedTick = n.tick
		delete(n.learned, n.lastDecided)
		pp := s.pp
		for i := range pp.Batch.Requests {
			r := &pp.Batch.Requests[i]
			key := r.Key()
			delete(n.proposed, key)
			delete(n.watching, key)
			if _, ok := n.queued[key]; ok {
				delete(n.queued, key)
				n.queue.remove(key)
			}
		}
		n.stats.Decided++
		n.stats.DecidedRequests += uint64(len(pp.Batch.Requests))
		if !n.replaying {
			n.ready.Decided = append(n.ready.Decided, Decision{
				Instance: n.cfg.Instance, Seq: pp.Seq, View: pp.View, Digest: pp.Digest, Null: pp.Null, Failure: pp.Failure, FailureView: pp.FailureView, Batch: pp.Batch,
			})
			n.pendingReady = true
		}
	}
	if n.learned[n.lastDecided+1] != nil {
		n.tryLearn()
	}
	n.maybePropose(false)
}
