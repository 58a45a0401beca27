package shell

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
// view), and the paradigm states kept for serving older transfers go
// (snapshots are dropped by the snapshot job that supersedes them). The
// kept records are re-appended and everything before them truncated in one
// atomic write, so a crash leaves either the old log or the compacted one,
// never a mix. Restart then reads only what lies above the last stable
// checkpoint.
// compactedMeta names the round of the last compaction, so a restarted
// replica deletes exactly the paradigm states it has not deleted yet.
const compactedMeta = "compacted-at"

func (s *Shell) compact(round uint64) {
	if round <= s.compactedAt {
		return
	}
	first, next, err := s.disk.RecordBounds()
	if err != nil {
		s.fail("read record bounds for compaction", err)
		return
	}
	if next-first != uint64(len(s.wal)) {
		s.fail("compaction", fmt.Errorf("the log holds records %d..%d but %d are mirrored: the mirror is out of step", first, next-1, len(s.wal)))
		return
	}
	lows := make([]uint64, s.node.Config().M)
	views := make([]uint64, s.node.Config().M)
	for i := range lows {
		p := s.node.Instance(i)
		lows[i] = p.LowWatermark()
		views[i], _ = p.View()
	}
	var kept [][]byte
	var keptWAL []walRecord
	for _, r := range s.wal {
		inst := int(msg.InstanceOf(r.m))
		if inst >= len(lows) || pbft.Retained(r.m, lows[inst], views[inst]) {
			kept = append(kept, r.raw)
			keptWAL = append(keptWAL, r)
		}
	}
	w := &storage.Batch{Records: kept, TruncateRecordsBefore: next,
		Meta: []storage.Meta{{Key: compactedMeta, Val: binary.BigEndian.AppendUint64(nil, round)}}}
	// Peers behind us fetch up to their target checkpoint, which may be one
	// interval older than ours; older paradigm states serve nobody.
	k := s.k
	// The last compaction kept the states of its round and the one before.
	for old := max(k, s.compactedAt-min(s.compactedAt, k)); old+k < round; old += k {
		w.DeleteMeta = append(w.DeleteMeta, ParadigmKey(old))
	}
	if err := s.disk.Apply(w); err != nil {
		s.fail("compact the log", err)
		return
	}
	total := len(s.wal)
	s.wal = keptWAL
	s.log.Debug("compacted the log", "stable", round, "records", total, "kept", len(kept))
	s.compactedAt = round
}

// walRecord is one record of the write-ahead log as the shell wrote it: the
// shell mirrors the log in memory (it is bounded by compaction) so that a
// compaction neither reads nor decodes it back.
type walRecord struct {
	m   msg.Message
	raw []byte
}
