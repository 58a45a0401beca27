package storage

import (
	"testing"
	"time"

	"github.com/braid-bft/braid/ledger"
	"github.com/braid-bft/braid/ledger/ledgertest"
	"github.com/braid-bft/braid/msg"
	bolt "go.etcd.io/bbolt"
)

// The ledger and the write-ahead log only grow at their end (the log is cut
// at its front): their pages must be packed, not left half empty the way
// bbolt leaves pages split by in-order appends at its default fill of 50%.
func TestAppendOnlyBucketsArePacked(t *testing.T) {
	s, err := Open(t.TempDir(), Options{Fsync: GroupCommit{Interval: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	reqs := []msg.Request{ledgertest.Request(1, 1, make([]byte, 100))} // a light-load block
	var prev msg.Digest
	for h := uint64(1); h <= 6000; h++ {
		b := &ledger.Block{Height: h, Round: h, Prev: prev, Requests: reqs}
		rec := make([]byte, 120) // a prepare-sized record
		if err := s.Apply(&Batch{Blocks: []*ledger.Block{b}, Records: [][]byte{rec}}); err != nil {
			t.Fatal(err)
		}
		prev = b.Hash()
		if h%8 == 0 { // one commit per few rounds, as under load
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	j := s.eng.(*journaled)
	if err := j.fold(); err != nil { // what the journal holds goes into bbolt
		t.Fatal(err)
	}
	db := j.bolt.db
	err = db.View(func(tx *bolt.Tx) error {
		for _, b := range []bucket{bBlocks, bWAL} {
			st := tx.Bucket([]byte(bucketNames[b])).Stats()
			used := float64(st.LeafInuse) / float64(st.LeafAlloc)
			t.Logf("%s: %d keys in %d leaf pages, %.0f%% used", b, st.KeyN, st.LeafPageN, 100*used)
			if used < 0.8 {
				t.Errorf("%s: leaf pages %.0f%% used; want at least 80%%", b, 100*used)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
