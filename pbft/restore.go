package pbft

import (
	"slices"

	"github.com/braid-bft/braid/msg"
)

// Restore rebuilds the instance after a restart from the records it asked
// to persist (in the order it asked) and from lastDecided, the highest
// sequence number whose decision the shell had durably applied, and from
// executed, the highest executed request number per client. It must be
// called on a fresh Node before any other input. Records re-enter through
// the same validation as live messages; outputs they would cause are
// suppressed, because they were already produced before the crash, and
// anything we send afterwards is consistent with them: we rebuild exactly
// the view, pre-prepares, prepares and prepared proofs we had announced.
//
// The primary rule is not consulted while replaying: it may answer
// differently now than when a record was first accepted (under RCC it
// depends on paradigm state, which may be older or newer than the records).
// Every record either passed it then or is our own signature. Our own
// pre-prepares, prepares and commits are moreover binding whether or not
// their slot can be re-installed (see bind): we never sign another message
// for the same (view, sequence number, kind), and propose only after our own
// pre-prepares.
func (n *Node) Restore(records []msg.Message, lastDecided uint64, executed map[msg.ClientID]uint64) {
	n.replaying = true
	n.lastDecided = lastDecided
	n.learnExecuted(executed)
	for _, m := range records {
		sender, _ := msg.Sender(m)
		if msg.InstanceOf(m) != n.cfg.Instance {
			continue
		}
		if sender != n.cfg.ID {
			n.Step(sender, m)
			continue
		}
		switch m := m.(type) {
		case *msg.PrePrepare:
			if !n.rebind(msg.KindPrePrepare, m.View, m.Seq, m.Digest) {
				continue
			}
			if n.checkNormal(m.View, m.Seq) == "" && m.Seq > n.planEnd {
				if s := n.slots[m.Seq]; s == nil || s.pp == nil {
					n.acceptPrePrepare(m)
				}
			}
		case *msg.Prepare:
			if !n.rebind(msg.KindPrepare, m.View, m.Seq, m.Digest) {
				continue
			}
			if n.checkNormal(m.View, m.Seq) == "" {
				s := n.slot(m.Seq)
				if s.prepares[n.cfg.ID] == nil {
					s.prepares[n.cfg.ID] = m
				}
			}
		case *msg.Commit:
			if !n.rebind(msg.KindCommit, m.View, m.Seq, m.Digest) {
				continue
			}
			if n.checkNormal(m.View, m.Seq) == "" {
				s := n.slot(m.Seq)
				if s.ownCommit == nil {
					s.ownCommit = m
					s.commits[n.cfg.ID] = m.Digest
				}
			}
		case *msg.ViewChange:
			if m.NewView >= n.view {
				n.view, n.changing = m.NewView, true
				n.ownVC = m
				n.vcs[n.cfg.ID] = m
			}
		case *msg.NewView:
			if m.View >= n.view {
				if p, reason := n.checkNewView(m); reason == "" {
					n.enterView(m, p)
				}
			}
		case *msg.Checkpoint:
			if m.Seq > n.low {
				if _, ok := n.own[m.Seq]; !ok {
					n.own[m.Seq] = m.State
				}
				if !slices.ContainsFunc(n.ckpts[n.cfg.ID], func(c msg.Checkpoint) bool { return c.Seq == m.Seq }) {
					n.addCheckpoint(m)
				}
			}
		}
	}
	n.replaying = false
	n.forgetSigned()
	if !n.changing {
		n.skipOwnProposals()
	}
	n.ready = Ready{}
	n.pendingReady = false
	if n.changing {
		n.vcDeadline = n.tick + int64(n.cfg.ViewChangeTimeout)
	}
	if n.transferring != 0 {
		n.ready.StateTransfer = &StateTransfer{Seq: n.low, State: n.stableState, Proof: n.stableProof}
		n.pendingReady = true
	}
	if n.nextSeq <= n.low {
		n.nextSeq = n.low + 1
	}
}

// rebind re-records one of our own normal-case signatures from the log as
// binding (see bind), unless a later record superseded it (an earlier view,
// or at or below the stable checkpoint); it reports whether the record
// still counts.
func (n *Node) rebind(kind msg.Kind, view, seq uint64, digest msg.Digest) bool {
	if view < n.view || seq <= n.low {
		return false
	}
	n.bind(kind, view, seq, digest)
	return true
}
