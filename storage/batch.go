package storage

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/braid-bft/braid/ledger"
)

// Batch is a set of writes that becomes durable all together or not at all:
// a crash never leaves a block without the paradigm state and reply cache
// of the same round. Fields left zero write nothing. Within a batch,
// truncations apply first, then records, blocks (in height order),
// certificates, meta deletions and meta writes. Snapshots are not part of
// batches: they are files of their own (see PutSnapshot).
type Batch struct {
	Records      [][]byte
	Blocks       []*ledger.Block
	Certificates []*ledger.Certificate
	Meta         []Meta
	// DeleteMeta names meta values to remove (absent ones are ignored).
	DeleteMeta []string
	// TruncateRecordsBefore, when non-zero, drops WAL records with lower
	// sequence numbers (as TruncateRecordsBefore does).
	TruncateRecordsBefore uint64
}

// Meta is a small named value.
type Meta struct {
	Key string
	Val []byte
}

// Apply writes b atomically: every part is validated before anything
// changes, and all of it lands in one transaction (under PerBatch before
// Apply returns; under GroupCommit with the next commit, never split across
// two). On error nothing is written.
func (s *Store) Apply(b *Batch) error {
	blocks := make([][]byte, len(b.Blocks))
	for i, blk := range b.Blocks {
		if blocks[i] = blk.Encode(); len(blocks[i]) > ledger.MaxBlockBytes {
			return fmt.Errorf("storage: block %d: %d bytes exceeds limit %d", blk.Height, len(blocks[i]), ledger.MaxBlockBytes)
		}
	}
	certs := make([][]byte, len(b.Certificates))
	for i, c := range b.Certificates {
		if certs[i] = c.Encode(); len(certs[i]) > ledger.MaxCertificateBytes {
			return fmt.Errorf("storage: certificate %d: %d bytes exceeds limit %d", c.Round, len(certs[i]), ledger.MaxCertificateBytes)
		}
	}
	for i, r := range b.Records {
		if len(r) > MaxValueBytes {
			return fmt.Errorf("storage: record %d: %d bytes exceeds limit %d", i, len(r), MaxValueBytes)
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
		fresh := map[uint64]*ledger.Block{} // blocks this batch adds, by height
		for i, blk := range b.Blocks {
			switch {
			case blk.Height == 0:
				return errors.New("storage: block height 0 (heights start at 1)")
			case blk.Height <= height:
				if _, ok := fresh[blk.Height]; ok {
					return fmt.Errorf("storage: block %d twice in one batch", blk.Height)
				}
				old, err := s.getLocked(bBlocks, u64key(blk.Height))
				if err != nil {
					return fmt.Errorf("storage: block %d: %w", blk.Height, err)
				}
				if !bytes.Equal(old, blocks[i]) {
					return fmt.Errorf("storage: block %d already stored with different contents", blk.Height)
				}
				continue // replay after a crash: already there
			case blk.Height != height+1:
				return fmt.Errorf("storage: block %d does not follow stored height %d", blk.Height, height)
			}
			height = blk.Height
			fresh[blk.Height] = blk
		}
		for _, c := range b.Certificates {
			covered, ok := fresh[c.Round]
			if !ok {
				var err error
				if covered, err = s.blockLocked(c.Round); err != nil {
					return fmt.Errorf("storage: certificate %d: %w", c.Round, err)
				}
			}
			if covered.Hash() != c.BlockHash {
				return fmt.Errorf("storage: certificate %d does not cover the stored block %d", c.Round, c.Round)
			}
		}
		// Then write.
		if b.TruncateRecordsBefore != 0 {
			l.deleteBelow(bWAL, u64key(b.TruncateRecordsBefore))
			s.nextSeq = max(s.nextSeq, b.TruncateRecordsBefore)
			s.firstSeq = max(s.firstSeq, b.TruncateRecordsBefore)
			l.put(bSys, []byte(sysWALFloor), seal(u64key(s.nextSeq)))
		}
		for _, r := range b.Records {
			l.put(bWAL, u64key(s.nextSeq), seal(r))
			s.nextSeq++
		}
		for i, blk := range b.Blocks {
			if fresh[blk.Height] == blk {
				l.put(bBlocks, u64key(blk.Height), seal(blocks[i]))
			}
		}
		s.height = height
		for i, c := range b.Certificates {
			l.put(bCerts, u64key(c.Round), seal(certs[i]))
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
