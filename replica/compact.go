package replica

import (
	"encoding/binary"
	"fmt"

	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/pbft"
	"github.com/braid-bft/braid/storage"
)

// compact bounds the data directory after a stable checkpoint at round:
// the write-ahead log keeps only the records some instance still needs to
// restore (pbft.Retained, against each instance's own low watermark and
// view), snapshots below the checkpoint go, and so do the paradigm states
// kept for serving older transfers. The kept records are re-appended and
// everything before them truncated in one atomic write, so a crash leaves
// either the old log or the compacted one, never a mix. Restart then reads
// only what lies above the last stable checkpoint.
// compactedMeta names the round of the last compaction, so a restarted
// replica deletes exactly the paradigm states it has not deleted yet.
const compactedMeta = "compacted-at"

func (r *Replica) compact(round uint64) {
	if round <= r.compactedAt {
		return
	}
	raw, err := r.store.Records()
	if err != nil {
		r.fail("read records for compaction", err)
		return
	}
	_, next, err := r.store.RecordBounds()
	if err != nil {
		r.fail("read record bounds for compaction", err)
		return
	}
	lows := make([]uint64, r.cfg.M)
	views := make([]uint64, r.cfg.M)
	for i := range lows {
		p := r.node.Instance(i)
		lows[i] = p.LowWatermark()
		views[i], _ = p.View()
	}
	var kept [][]byte
	for i, p := range raw {
		m, err := msg.Unmarshal(p)
		if err != nil {
			r.fail("compaction", fmt.Errorf("record %d of the retained log: %w", i, err))
			return
		}
		inst := int(msg.InstanceOf(m))
		if inst >= len(lows) || pbft.Retained(m, lows[inst], views[inst]) {
			kept = append(kept, p)
		}
	}
	w := &storage.Batch{Records: kept, TruncateRecordsBefore: next, TruncateSnapshotsBefore: round,
		Meta: []storage.Meta{{Key: compactedMeta, Val: binary.BigEndian.AppendUint64(nil, round)}}}
	// Peers behind us fetch up to their target checkpoint, which may be one
	// interval older than ours; older paradigm states serve nobody.
	k := uint64(r.cfg.CheckpointInterval)
	// The last compaction kept the states of its round and the one before.
	for old := max(k, r.compactedAt-min(r.compactedAt, k)); old+k < round; old += k {
		w.DeleteMeta = append(w.DeleteMeta, paradigmKey(old))
	}
	if err := r.store.Apply(w); err != nil {
		r.fail("compact the log", err)
		return
	}
	r.log.Debug("compacted the log", "stable", round, "records", len(raw), "kept", len(kept))
	r.compactedAt = round
}
