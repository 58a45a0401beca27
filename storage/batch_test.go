package storage

import (
	"errors"
	"testing"
	"time"

	"github.com/braid-bft/braid/ledger"
	"github.com/braid-bft/braid/ledger/ledgertest"
)

// A batch lands whole: after a crash either every part of it is there or
// none is, and a batch that fails validation writes nothing.
func TestApplyIsAtomic(t *testing.T) {
	chain := ledgertest.NewChain(4, 4, 2)
	for _, crashBeforeSync := range []bool{false, true} {
		m, err := NewMemory(Options{Fsync: GroupCommit{Interval: time.Hour}})
		must(t, err)
		must(t, m.Apply(&Batch{
			Records: [][]byte{[]byte("r1"), []byte("r2")},
			Blocks:  chain.Blocks[:2],
			Meta:    []Meta{{Key: "paradigm", Val: []byte("p2")}},
		}))
		if !crashBeforeSync {
			must(t, m.Sync())
		}
		m.Crash()
		h, err := m.Height()
		must(t, err)
		recs, err := m.Records()
		must(t, err)
		p, perr := m.GetMeta("paradigm")
		if crashBeforeSync {
			if h != 0 || len(recs) != 0 || !errors.Is(perr, ErrNotFound) {
				t.Fatalf("unsynced batch partly survived a crash: height %d, %d records, meta %q %v", h, len(recs), p, perr)
			}
			continue
		}
		if h != 2 || len(recs) != 2 || string(p) != "p2" {
			t.Fatalf("synced batch: height %d, %d records, meta %q %v; want 2, 2, p2", h, len(recs), p, perr)
		}
	}

	forEachStore(t, func(t *testing.T, s Interface) {
		must(t, s.Apply(&Batch{Blocks: chain.Blocks[:1]}))
		// Block 3 does not follow height 1: the record and meta in the same
		// batch must not be written either.
		err := s.Apply(&Batch{Records: [][]byte{[]byte("x")}, Blocks: chain.Blocks[2:3], Meta: []Meta{{Key: "k", Val: []byte("v")}}})
		if err == nil {
			t.Fatal("a batch with a block that does not follow the height was accepted")
		}
		recs, err := s.Records()
		must(t, err)
		if _, merr := s.GetMeta("k"); len(recs) != 0 || !errors.Is(merr, ErrNotFound) {
			t.Fatalf("failed batch wrote %d records, meta err %v", len(recs), merr)
		}
		// Truncation and records in one batch: the floor moves, new records follow it.
		must(t, s.Apply(&Batch{Records: [][]byte{[]byte("a"), []byte("b"), []byte("c")}}))
		must(t, s.Apply(&Batch{Records: [][]byte{[]byte("d")}, TruncateRecordsBefore: 3}))
		recs, err = s.Records()
		must(t, err)
		if len(recs) != 2 || string(recs[0]) != "c" || string(recs[1]) != "d" {
			t.Fatalf("records after truncate+append = %q, want [c d]", recs)
		}
		// A certificate for a block in the same batch is accepted.
		cert := chain.Certs[2]
		if cert == nil {
			t.Fatal("test chain has no certificate at height 2")
		}
		must(t, s.Apply(&Batch{Blocks: chain.Blocks[1:2], Certificates: []*ledger.Certificate{cert}}))
		if got, err := s.Certificate(2); err != nil || got == nil {
			t.Fatalf("certificate 2 after Apply: %v, %v", got, err)
		}
		// A meta deletion removes the value, also once committed.
		must(t, s.Apply(&Batch{Meta: []Meta{{Key: "gone", Val: []byte("x")}}}))
		must(t, s.Sync())
		must(t, s.Apply(&Batch{DeleteMeta: []string{"gone", "never-there"}}))
		must(t, s.Sync())
		if _, err := s.GetMeta("gone"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("deleted meta still readable: %v", err)
		}
	})
}
