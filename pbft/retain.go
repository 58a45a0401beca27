package pbft

import "github.com/braid-bft/braid/msg"

// Retained reports whether a write-ahead record (something this instance
// asked to persist) is still needed by Restore once the instance's stable
// checkpoint is low and its view is view. Shells compact their log with it:
// they keep the retained records, in their order, and drop the rest.
//
// What a stable checkpoint makes obsolete: every normal-case message at or
// below it (no correct replica signs for a sequence number below its low
// watermark, and the proof of the checkpoint replaces them) and the view
// change traffic of earlier views (we never sign for an earlier view again;
// the current view's NewView, or our own ViewChange for the view we are
// moving to, carries what later views need). The checkpoint's proof itself
// (q signed checkpoints at low) is kept so Restore re-establishes low.
func Retained(m msg.Message, low, view uint64) bool {
	switch m := m.(type) {
	case *msg.PrePrepare:
		return m.Seq > low
	case *msg.Prepare:
		return m.Seq > low
	case *msg.Commit:
		return m.Seq > low
	case *msg.Checkpoint:
		return m.Seq >= low
	case *msg.ViewChange:
		return m.NewView >= view
	case *msg.NewView:
		return m.View >= view
	}
	return true // unknown to this rule: keep
}
