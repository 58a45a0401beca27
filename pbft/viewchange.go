package pbft

import (
	"slices"

	"github.com/braid-bft/braid/msg"
)

// startViewChange abandons the current view for `to`: stop taking part in
// the normal case, tell everyone what we proved prepared, and wait for the
// new primary's NewView — giving up on it after a timeout that doubles with
// every consecutive attempt, so that eventually a view lasts long enough.
func (n *Node) startViewChange(to uint64, why string) {
	if to <= n.view && n.changing {
		return
	}
	if to < n.view {
		return
	}
	n.view = to
	n.changing = true
	n.why = why
	n.forgetSigned()
	n.stats.ViewChanges++
	vc := &msg.ViewChange{
		Instance: n.cfg.Instance, NewView: to, StableSeq: n.low, Resume: n.cfg.ResumeHint(),
		CheckpointProof: slices.Clone(n.stableProof), From: n.cfg.ID,
	}
	for _, seq := range sortedSeqs(n.prepared) {
		if seq > n.low {
			vc.Prepared = append(vc.Prepared, *n.prepared[seq])
		}
	}
	n.sign(vc)
	n.ownVC = vc
	n.vcs[n.cfg.ID] = vc
	n.persist(vc)
	n.broadcast(vc)
	timeout := int64(n.cfg.ViewChangeTimeout) << min(n.vcAttempts, 10)
	n.vcAttempts++
	n.vcDeadline = n.tick + timeout
	n.lastBeacon = n.tick
	n.maybeSendNewView()
}

func (n *Node) onViewChange(vc *msg.ViewChange) {
	if vc.NewView < n.view || (vc.NewView == n.view && !n.changing) {
		// The sender is behind: if we lead the view it asks for, we can
		// bring it in by resending our NewView.
		// It draws on the sender's answer budget, like a Status beacon.
		if vc.NewView == n.view && n.newView != nil && n.newView.From == n.cfg.ID {
			n.answer(n.budget(vc.From), vc.From, n.newView)
		}
		n.drop("stale-view-change")
		return
	}
	if reason := n.checkViewChange(vc); reason != "" {
		n.drop(reason)
		return
	}
	if have := n.vcs[vc.From]; have != nil && have.NewView >= vc.NewView {
		n.drop("duplicate")
		return
	}
	n.vcs[vc.From] = vc
	// f+1 replicas want a later view: at least one correct replica timed
	// out, so join the smallest view such that f+1 want at least that.
	var ahead []uint64
	for _, v := range n.vcs {
		if v.NewView > n.view || (v.NewView == n.view && !n.changing) {
			ahead = append(ahead, v.NewView)
		}
	}
	if len(ahead) >= n.f+1 {
		slices.Sort(ahead)
		target := ahead[len(ahead)-n.f-1]
		if target > n.view || !n.changing {
			n.startViewChange(target, "joined-f+1")
		}
	}
	n.maybeSendNewView()
}

// checkViewChange validates a view change's certificates: the checkpoint
// proof and every prepared proof. Signatures were checked by the shell.
func (n *Node) checkViewChange(vc *msg.ViewChange) string {
	if vc.Instance != n.cfg.Instance || int(vc.From) >= n.cfg.N {
		return "bad-view-change"
	}
	if vc.StableSeq%n.cfg.CheckpointInterval != 0 {
		return "bad-view-change-checkpoint"
	}
	if vc.StableSeq == 0 {
		if len(vc.CheckpointProof) != 0 {
			return "bad-view-change-checkpoint"
		}
	} else if !n.validCheckpointProof(vc.StableSeq, vc.CheckpointProof) {
		return "bad-view-change-checkpoint"
	}
	if uint64(len(vc.Prepared)) > n.cfg.Window {
		return "bad-view-change-prepared"
	}
	seen := make(map[uint64]struct{}, len(vc.Prepared))
	for i := range vc.Prepared {
		p := &vc.Prepared[i]
		seq := p.PrePrepare.Seq
		if _, dup := seen[seq]; dup {
			return "bad-view-change-prepared"
		}
		seen[seq] = struct{}{}
		if seq <= vc.StableSeq || seq > vc.StableSeq+n.cfg.Window || p.PrePrepare.View >= vc.NewView {
			return "bad-view-change-prepared"
		}
		if !n.validPreparedProof(p) {
			return "bad-view-change-prepared"
		}
	}
	return ""
}

func (n *Node) validCheckpointProof(seq uint64, proof []msg.Checkpoint) bool {
	if len(proof) < n.q || len(proof) > n.cfg.N {
		return false
	}
	senders := make(map[msg.ReplicaID]struct{}, len(proof))
	for i := range proof {
		c := &proof[i]
		if c.Instance != n.cfg.Instance || c.Seq != seq || c.State != proof[0].State || int(c.From) >= n.cfg.N {
			return false
		}
		if _, dup := senders[c.From]; dup {
			return false
		}
		senders[c.From] = struct{}{}
	}
	return true
}

// validPreparedProof: the pre-prepare came from its view's primary, its
// digest matches its batch, and q-1 distinct backups prepared exactly it.
func (n *Node) validPreparedProof(p *msg.PreparedProof) bool {
	pp := &p.PrePrepare
	if pp.Instance != n.cfg.Instance {
		return false
	}
	// The proposer is the view's leader (re-proposals in its NewView) or its
	// primary. When the primary is not known here yet, the q-1 ≥ 2f
	// prepares carry the proof: at least f ≥ 1 of them are from correct
	// backups, which prepare only what the legitimate proposer sent.
	// Replaying our records, the rule is not consulted (see onPrePrepare).
	if primary := n.cfg.Primary(pp.View); pp.From != n.cfg.Leader(pp.View) && pp.From != primary &&
		(primary != msg.NoReplica || n.f == 0) && !n.replaying {
		return false
	}
	if n.checkBatch(pp) != "" {
		return false
	}
	if len(p.Prepares) < n.q-1 || len(p.Prepares) > n.cfg.N {
		return false
	}
	senders := make(map[msg.ReplicaID]struct{}, len(p.Prepares))
	for i := range p.Prepares {
		q := &p.Prepares[i]
		if q.Instance != pp.Instance || q.View != pp.View || q.Seq != pp.Seq || q.Digest != pp.Digest ||
			q.From == pp.From || int(q.From) >= n.cfg.N {
			return false
		}
		if _, dup := senders[q.From]; dup {
			return false
		}
		senders[q.From] = struct{}{}
	}
	return true
}

// newViewPlan is what a set of view changes implies for the new view: the
// checkpoint to start from and, for every sequence number above it up to
// the highest one anybody proved prepared, the batch to re-propose — the
// prepared one of the highest view, or a no-op where there is none.
type newViewPlan struct {
	minS, maxS uint64
	end        uint64          // maxS plus the appended skip no-ops
	checkpoint *msg.ViewChange // a view change carrying the minS proof
	entries    []planEntry
}

type planEntry struct {
	seq         uint64
	digest      msg.Digest
	null        bool
	failure     bool
	failureView uint64
	batch       msg.Batch
}

// plan is a pure function of the view changes (in the given order) and of
// the view, so the leader and every backup compute the same plan from the
// same NewView. After the re-proposed range it appends Skip(view) no-ops (as
// many as fit in the window), the first marked as the failure decision.
func (n *Node) plan(view uint64, vcs []msg.ViewChange) newViewPlan {
	var p newViewPlan
	for i := range vcs {
		if p.checkpoint == nil || vcs[i].StableSeq > p.minS {
			p.minS = vcs[i].StableSeq
			p.checkpoint = &vcs[i]
		}
	}
	p.maxS = p.minS
	best := make(map[uint64]*msg.PrePrepare)
	for i := range vcs {
		for j := range vcs[i].Prepared {
			pp := &vcs[i].Prepared[j].PrePrepare
			if pp.Seq <= p.minS {
				continue
			}
			if pp.Seq > p.maxS {
				p.maxS = pp.Seq
			}
			if b := best[pp.Seq]; b == nil || pp.View > b.View {
				best[pp.Seq] = pp
			}
		}
	}
	for seq := p.minS + 1; seq <= p.maxS; seq++ {
		if b := best[seq]; b != nil && !b.Null {
			p.entries = append(p.entries, planEntry{seq: seq, digest: b.Digest, batch: b.Batch})
		} else if b != nil && b.Failure {
			// A failure marker that may have been decided keeps its meaning.
			p.entries = append(p.entries, planEntry{seq: seq, digest: b.Digest, null: true, failure: true, failureView: b.FailureView})
		} else {
			p.entries = append(p.entries, planEntry{seq: seq, digest: msg.NullDigest, null: true})
		}
	}
	p.end = p.maxS
	if skip := n.cfg.Skip(view); skip > 0 {
		// The failure marker goes after everything re-proposed, and no
		// earlier than the (f+1)-th largest resume hint: at least one
		// correct replica vouches that the paradigm layer needs that
		// sequence number, so the marker is not lost in a skipped range.
		// Gaps before it are no-ops; all of it stays inside the window.
		hints := make([]uint64, 0, len(vcs))
		for i := range vcs {
			hints = append(hints, vcs[i].Resume)
		}
		slices.Sort(hints)
		marker := p.maxS + 1
		if len(hints) > n.f {
			marker = max(marker, hints[len(hints)-1-n.f])
		}
		limit := p.minS + n.cfg.Window
		marker = min(marker, limit)
		for seq := p.maxS + 1; seq <= limit && seq < marker+skip; seq++ {
			e := planEntry{seq: seq, digest: msg.NullDigest, null: true}
			if seq == marker {
				e.digest, e.failure, e.failureView = msg.FailureDigest(view), true, view
			}
			p.entries = append(p.entries, e)
			p.end = seq
		}
	}
	return p
}

func (n *Node) maybeSendNewView() {
	if !n.changing || n.cfg.Leader(n.view) != n.cfg.ID {
		return
	}
	var vcs []msg.ViewChange
	for _, id := range sortedIDs(n.vcs) {
		if vc := n.vcs[id]; vc.NewView == n.view {
			vcs = append(vcs, *vc)
		}
	}
	if len(vcs) < n.q {
		return
	}
	vcs = vcs[:n.q]
	p := n.plan(n.view, vcs)
	nv := &msg.NewView{Instance: n.cfg.Instance, View: n.view, ViewChanges: vcs, From: n.cfg.ID}
	for _, e := range p.entries {
		pp := msg.PrePrepare{Instance: n.cfg.Instance, View: n.view, Seq: e.seq, Digest: e.digest, Null: e.null, Failure: e.failure, FailureView: e.failureView, Batch: e.batch, From: n.cfg.ID}
		n.sign(&pp)
		nv.PrePrepares = append(nv.PrePrepares, pp)
	}
	n.sign(nv)
	n.persist(nv)
	n.broadcast(nv)
	n.enterView(nv, p)
}

func (n *Node) onNewView(nv *msg.NewView) {
	if nv.View < n.view || (nv.View == n.view && !n.changing) {
		n.drop("stale-new-view")
		return
	}
	if nv.From != n.cfg.Leader(nv.View) {
		n.drop("new-view-not-from-primary")
		return
	}
	p, reason := n.checkNewView(nv)
	if reason != "" {
		n.drop(reason)
		return
	}
	n.persist(nv)
	n.enterView(nv, p)
}

// checkNewView re-derives the pre-prepares from the carried view changes and
// rejects the NewView unless they are exactly what it proposes.
func (n *Node) checkNewView(nv *msg.NewView) (newViewPlan, string) {
	if len(nv.ViewChanges) < n.q || len(nv.ViewChanges) > n.cfg.N {
		return newViewPlan{}, "bad-new-view-quorum"
	}
	senders := make(map[msg.ReplicaID]struct{}, len(nv.ViewChanges))
	for i := range nv.ViewChanges {
		vc := &nv.ViewChanges[i]
		if vc.NewView != nv.View {
			return newViewPlan{}, "bad-new-view-quorum"
		}
		if _, dup := senders[vc.From]; dup {
			return newViewPlan{}, "bad-new-view-quorum"
		}
		senders[vc.From] = struct{}{}
		if reason := n.checkViewChange(vc); reason != "" {
			return newViewPlan{}, "bad-new-view-" + reason
		}
	}
	p := n.plan(nv.View, nv.ViewChanges)
	if len(p.entries) != len(nv.PrePrepares) {
		return newViewPlan{}, "bad-new-view-pre-prepares"
	}
	for i, e := range p.entries {
		pp := &nv.PrePrepares[i]
		if pp.Instance != n.cfg.Instance || pp.View != nv.View || pp.Seq != e.seq || pp.Digest != e.digest ||
			pp.Null != e.null || pp.Failure != e.failure || pp.FailureView != e.failureView || pp.From != nv.From || n.checkBatch(pp) != "" {
			return newViewPlan{}, "bad-new-view-pre-prepares"
		}
	}
	return p, ""
}

// enterView installs a validated NewView: adopt its checkpoint if it is
// ahead of ours, accept its pre-prepares, and resume the normal case.
func (n *Node) enterView(nv *msg.NewView, p newViewPlan) {
	n.view = nv.View
	n.changing = false
	n.viewTick = n.tick
	n.newView = nv
	n.ownVC = nil
	n.vcAttempts = 0
	n.stats.NewViews++
	for id, vc := range n.vcs {
		if vc.NewView <= n.view {
			delete(n.vcs, id)
		}
	}
	if p.minS > n.low && p.checkpoint != nil {
		n.makeStable(p.minS, p.checkpoint.CheckpointProof[0].State, p.checkpoint.CheckpointProof)
	}
	// Votes of earlier views are void in this one.
	for seq := range n.slots {
		delete(n.slots, seq)
	}
	n.proposed = make(map[msg.RequestKey]struct{})
	for i := range nv.PrePrepares {
		pp := &nv.PrePrepares[i]
		if !n.inWindow(pp.Seq) {
			continue
		}
		for _, r := range pp.Batch.Requests {
			n.proposed[r.Key()] = struct{}{}
		}
		n.acceptPrePrepare(pp)
	}
	n.planEnd = p.end
	n.nextSeq = max(p.end, n.low) + 1
	n.forgetSigned()
	n.skipOwnProposals()
	for _, key := range sortedKeys(n.watching) {
		if w := n.watching[key]; w.req.Number <= n.decided[w.req.Client] {
			delete(n.watching, key)
		}
	}
	if n.cfg.Primary(n.view) != n.cfg.ID && n.queue.len() > 0 {
		// We were the primary of an earlier view: what we had queued is now
		// for the new primary; watch it like any relayed request.
		for _, r := range n.queue.take(n.queue.len()) {
			if _, dup := n.watching[r.Key()]; !dup { // a request moved up to the relayed lane is in both
				n.watch(r)
			}
		}
		n.queue = requestQueue{}
		n.queued = make(map[msg.RequestKey]bool)
	}
	// Watched requests are timed afresh under the new primary (or are
	// ours to propose if we are it).
	n.PrimaryChanged()
}
