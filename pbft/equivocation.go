package pbft

import (
	"strconv"

	"github.com/braid-bft/braid/msg"
)

// SignedKey names the slot a signed protocol message occupies for its
// signer: two messages with the same key and different signed bytes are an
// equivocation by that signer. The key is kind, instance, signer, view and
// sequence number for pre-prepares, prepares and commits (e.g.
// "prepare/i0/r3/v2/s17": instance 0, replica 3, view 2, seq 17); kind,
// instance, signer and seq for checkpoints ("checkpoint/i0/r3/s16"); kind,
// instance, signer and view for view changes (their new view) and new views
// ("view-change/i0/r3/v5", "new-view/i0/r1/v5"). ok is false for messages that are not signed
// protocol messages (client requests, Status, replies, state transfer).
//
// A correct replica never sends two messages with the same key and different
// msg.SignedBytes, across restarts too; the simulator's checker and the
// networked replica's tests hold it to that.
func SignedKey(m msg.Message) (key string, ok bool) {
	var kind string
	var inst uint32
	var from msg.ReplicaID
	var view, seq uint64
	hasView, hasSeq := true, true
	switch m := m.(type) {
	case *msg.PrePrepare:
		kind, inst, from, view, seq = "pre-prepare", m.Instance, m.From, m.View, m.Seq
	case *msg.Prepare:
		kind, inst, from, view, seq = "prepare", m.Instance, m.From, m.View, m.Seq
	case *msg.Commit:
		kind, inst, from, view, seq = "commit", m.Instance, m.From, m.View, m.Seq
	case *msg.Checkpoint:
		kind, inst, from, seq, hasView = "checkpoint", m.Instance, m.From, m.Seq, false
	case *msg.ViewChange:
		kind, inst, from, view, hasSeq = "view-change", m.Instance, m.From, m.NewView, false
	case *msg.NewView:
		kind, inst, from, view, hasSeq = "new-view", m.Instance, m.From, m.View, false
	default:
		return "", false
	}
	// Built by hand, not with fmt: the simulator keys every message.
	b := make([]byte, 0, 48)
	b = append(b, kind...)
	b = strconv.AppendUint(append(b, "/i"...), uint64(inst), 10)
	b = strconv.AppendUint(append(b, "/r"...), uint64(from), 10)
	if hasView {
		b = strconv.AppendUint(append(b, "/v"...), view, 10)
	}
	if hasSeq {
		b = strconv.AppendUint(append(b, "/s"...), seq, 10)
	}
	return string(b), true
}

// SignedMessages returns m and every signed protocol message nested in it
// (a view change's checkpoint proof and prepared proofs, a new view's view
// changes and pre-prepares), outermost first. Each element has a SignedKey.
// Nested elements point into m; callers must not modify them.
func SignedMessages(m msg.Message) []msg.Message {
	if _, ok := SignedKey(m); !ok {
		return nil
	}
	out := []msg.Message{m}
	switch m := m.(type) {
	case *msg.ViewChange:
		out = appendViewChangeParts(out, m)
	case *msg.NewView:
		for i := range m.ViewChanges {
			out = append(out, &m.ViewChanges[i])
			out = appendViewChangeParts(out, &m.ViewChanges[i])
		}
		for i := range m.PrePrepares {
			out = append(out, &m.PrePrepares[i])
		}
	}
	return out
}

func appendViewChangeParts(out []msg.Message, vc *msg.ViewChange) []msg.Message {
	for i := range vc.CheckpointProof {
		out = append(out, &vc.CheckpointProof[i])
	}
	for i := range vc.Prepared {
		p := &vc.Prepared[i]
		out = append(out, &p.PrePrepare)
		for j := range p.Prepares {
			out = append(out, &p.Prepares[j])
		}
	}
	return out
}

// voteKey names one of our own normal-case signatures in an instance.
type voteKey struct {
	kind      msg.Kind // KindPrePrepare, KindPrepare or KindCommit
	view, seq uint64
}

// bind records that we signed (or, restoring, had signed) digest for
// (kind, view, seq), and reports false if we already signed another digest
// there: the caller must then not sign. These records are binding
// commitments: they are rebuilt by Restore from every own record, whatever
// the primary rule answers after the restart, so that a restarted replica
// never contradicts what it said before the crash even when it cannot
// re-install the slot the signature belonged to.
func (n *Node) bind(kind msg.Kind, view, seq uint64, digest msg.Digest) bool {
	k := voteKey{kind, view, seq}
	if have, ok := n.signed[k]; ok {
		return have == digest
	}
	n.signed[k] = digest
	return true
}

// forgetSigned drops commitments we can never be asked to sign against
// again: earlier views (the view only grows and we vote only in the current
// one) and sequence numbers at or below the stable checkpoint.
func (n *Node) forgetSigned() {
	for k := range n.signed {
		if k.view < n.view || k.seq <= n.low {
			delete(n.signed, k)
		}
	}
}

// skipOwnProposals moves nextSeq past every pre-prepare we signed in the
// current view, installed in a slot or not.
func (n *Node) skipOwnProposals() {
	for k := range n.signed {
		if k.kind == msg.KindPrePrepare && k.view == n.view && k.seq >= n.nextSeq {
			n.nextSeq = k.seq + 1
		}
	}
}
