package storage

import (
	"fmt"
	"testing"
	"time"

	"github.com/braid-bft/braid/ledger"
	"github.com/braid-bft/braid/ledger/ledgertest"
	"github.com/braid-bft/braid/msg"
)

var benchPolicies = []policy{
	{"PerBatch", Options{Fsync: PerBatch{}}},
	{"GroupCommit2ms", Options{Fsync: GroupCommit{Interval: 2 * time.Millisecond}}},
}

// benchDisk runs bench on a fresh disk store under each of benchPolicies.
// bench prepares its input, resets the timer and does b.N operations; the
// timed part then ends with a Sync, so that every operation is durable and
// its commits and fdatasyncs are counted, reported per unit.
func benchDisk(b *testing.B, unit string, bench func(b *testing.B, s *Store)) {
	for _, p := range benchPolicies {
		b.Run(p.name, func(b *testing.B) {
			s, err := Open(b.TempDir(), p.opts)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			bench(b, s)
			if err := s.Sync(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			reportCommits(b, s, unit)
		})
	}
}

// reportCommits reports commits and fdatasyncs (one per journal commit, two
// per fold into bbolt) per operation.
func reportCommits(b *testing.B, s *Store, unit string) {
	st := s.Stats()
	b.ReportMetric(float64(st.Commits)/float64(b.N), "commits/"+unit)
	b.ReportMetric(float64(st.Fsyncs)/float64(b.N), "fsyncs/"+unit)
}

// BenchmarkPutBlock stores blocks of 16 signed 128-byte requests (~3.6 KB),
// one per executed round, ending with a Sync so every block is durable.
func BenchmarkPutBlock(b *testing.B) {
	benchDisk(b, "block", func(b *testing.B, s *Store) {
		reqs := make([]msg.Request, 16)
		for i := range reqs {
			reqs[i] = ledgertest.Request(msg.ClientID(i+1), 1, make([]byte, 128))
		}
		b.ResetTimer()
		putBlocks(b, s, reqs)
	})
}

// BenchmarkAppendRecords appends batches of 4 WAL records of 256 bytes.
func BenchmarkAppendRecords(b *testing.B) {
	benchDisk(b, "op", func(b *testing.B, s *Store) {
		recs := make([][]byte, 4)
		for i := range recs {
			recs[i] = []byte(fmt.Sprintf("%0256d", i))
		}
		b.SetBytes(4 * 256)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := s.AppendRecords(recs); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPutBlockMemory is the simulator's in-memory store, for scale.
func BenchmarkPutBlockMemory(b *testing.B) {
	s, err := NewMemory(Options{})
	if err != nil {
		b.Fatal(err)
	}
	reqs := []msg.Request{ledgertest.Request(1, 1, make([]byte, 128))}
	putBlocks(b, s, reqs)
}

// putBlocks stores b.N blocks, one per round from round 1, each holding reqs
// and chained to the one before by its hash.
func putBlocks(b *testing.B, s Interface, reqs []msg.Request) {
	var prev msg.Digest
	for i := 0; i < b.N; i++ {
		blk := &ledger.Block{Height: uint64(i + 1), Round: uint64(i + 1), Prev: prev, Requests: reqs}
		if err := s.PutBlock(blk); err != nil {
			b.Fatal(err)
		}
		prev = blk.Hash()
	}
}
