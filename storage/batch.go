package storage

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/braid-bft/braid/ledger"
)

// Batch is a set of writes that becomes durable all together or not at all:
// a crash never leaves a block without the paradigm state and reply cache
// of the same round, or a snapshot without the state it was taken with.
// Fields left zero write nothing. Within a batch, truncations apply first,
// then records, blocks (in height order), certificates, snapshots, meta
// deletions and meta writes.
type Batch struct {
	Records      [][]byte
	Blocks       []*ledger.Block
	Certificates []*ledger.Certificate
	Snapshots    []Snapshot
	Meta         []Meta
	// DeleteMeta names meta values to remove (absent ones are ignored).
	DeleteMeta []string
	// TruncateRecordsBefore, when non-zero, drops WAL records with lower
	// sequence numbers (as TruncateRecordsBefore does).
	TruncateRecordsBefore uint64
	// TruncateSnapshotsBefore, when non-zero, drops snapshots of lower rounds.
	TruncateSnapshotsBefore uint64
}

// Snapshot is an application snapshot taken after Round.
type Snapshot struct {
	Round uint64
	Data  []byte
}

// Meta is a small named value.
type Meta struct {
	Key string
	Val []byte
}

// Empty reports whether the batch writes nothing.
func (b *Batch) Empty() bool {
	return len(b.Records) == 0 && len(b.Blocks) == 0 && len(b.Certificates) == 0 && len(b.Snapshots) == 0 &&
		len(b.Meta) == 0 && len(b.DeleteMeta) == 0 && b.TruncateRecordsBefore == 0 && b.TruncateSnapshotsBefore == 0
}

// Apply writes b atomically: every part is validated before anything
// changes, and all of it lands in one transaction (under PerBatch before
// Apply returns; under GroupCommit with the next commit, never split across
// two). On error nothing is written.
func (s *Store) Apply(b *Batch) error {
	type encoded struct {
		height uint64
		enc    []byte
	}
	var blocks []encoded
	for _, blk := range b.Blocks {
		enc := blk.Encode()
		if len(enc) > ledger.MaxBlockBytes {
			return fmt.Errorf("storage: block %d: %d bytes exceeds limit %d", blk.Height, len(enc), ledger.MaxBlockBytes)
		}
		blocks = append(blocks, encoded{blk.Height, enc})
	}
	var certs []encoded
	for _, c := range b.Certificates {
		enc := c.Encode()
		if len(enc) > ledger.MaxCertificateBytes {
			return fmt.Errorf("storage: certificate %d: %d bytes exceeds limit %d", c.Round, len(enc), ledger.MaxCertificateBytes)
		}
		certs = append(certs, encoded{c.Round, enc})
	}
	for i, r := range b.Records {
		if len(r) > MaxValueBytes {
			return fmt.Errorf("storage: record %d: %d bytes exceeds limit %d", i, len(r), MaxValueBytes)
		}
	}
	for _, sn := range b.Snapshots {
		if len(sn.Data) > MaxValueBytes {
			return fmt.Errorf("storage: snapshot %d: %d bytes exceeds limit %d", sn.Round, len(sn.Data), MaxValueBytes)
		}
	}
	for _, m := range b.Meta {
		if m.Key == "" {
			return errors.New("storage: empty meta key")
		}
		if len(m.Val) > MaxValueBytes {
			return fmt.Errorf("storage: meta %q: %d bytes exceeds limit %d", m.Key, len(m.Val), MaxValueBytes)
		}
	}
	return s.write(func(l *layer) error {
		// Validate against the stored state first: nothing changes unless
		// everything fits.
		height := s.height
		newBlocks := map[uint64][]byte{}
		for _, blk := range blocks {
			switch {
			case blk.height == 0:
				return errors.New("storage: block height 0 (heights start at 1)")
			case blk.height <= height:
				old, err := s.getLocked(bBlocks, u64key(blk.height))
				if err != nil {
					return fmt.Errorf("storage: block %d: %w", blk.height, err)
				}
				if !bytes.Equal(old, blk.enc) {
					return fmt.Errorf("storage: block %d already stored with different contents", blk.height)
				}
				continue
			case blk.height != height+1:
				return fmt.Errorf("storage: block %d does not follow stored height %d", blk.height, height)
			}
			height = blk.height
			newBlocks[blk.height] = blk.enc
		}
		for i, c := range certs {
			enc, ok := newBlocks[c.height]
			var hash [32]byte
			if ok {
				nb, err := ledger.DecodeBlock(enc)
				if err != nil {
					return fmt.Errorf("storage: certificate %d: %w", c.height, err)
				}
				hash = nb.Hash()
			} else {
				blk, err := s.blockLocked(c.height)
				if err != nil {
					return fmt.Errorf("storage: certificate %d: %w", c.height, err)
				}
				hash = blk.Hash()
			}
			if hash != b.Certificates[i].BlockHash {
				return fmt.Errorf("storage: certificate %d does not cover the stored block %d", c.height, c.height)
			}
		}
		// Then write.
		if b.TruncateRecordsBefore != 0 {
			l.deleteBelow(bWAL, u64key(b.TruncateRecordsBefore))
			s.nextSeq = max(s.nextSeq, b.TruncateRecordsBefore)
			l.put(bSys, []byte(sysWALFloor), seal(u64key(s.nextSeq)))
		}
		if b.TruncateSnapshotsBefore != 0 {
			l.deleteBelow(bSnaps, u64key(b.TruncateSnapshotsBefore))
		}
		for _, r := range b.Records {
			l.put(bWAL, u64key(s.nextSeq), seal(r))
			s.nextSeq++
		}
		for _, blk := range blocks {
			if enc, ok := newBlocks[blk.height]; ok {
				l.put(bBlocks, u64key(blk.height), seal(enc))
			}
		}
		s.height = height
		for _, c := range certs {
			l.put(bCerts, u64key(c.height), seal(c.enc))
		}
		for _, sn := range b.Snapshots {
			l.put(bSnaps, u64key(sn.Round), seal(sn.Data))
		}
		for _, k := range b.DeleteMeta {
			l.put(bMeta, []byte(k), nil)
		}
		for _, m := range b.Meta {
			l.put(bMeta, []byte(m.Key), seal(m.Val))
		}
		return nil
	})
}
