package storage

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/braid-bft/braid/ledger"
	"github.com/braid-bft/braid/ledger/ledgertest"
)

// policy is a named fsync configuration to run a test or benchmark under.
type policy struct {
	name string
	opts Options
}

// kinds of store every behavioural test runs against.
var policies = []policy{
	{"PerBatch", Options{Fsync: PerBatch{}}},
	{"GroupCommit", Options{Fsync: GroupCommit{Interval: time.Hour}}}, // commits only on Sync/Close
}

func forEachStore(t *testing.T, fn func(t *testing.T, s Interface)) {
	for _, p := range policies {
		t.Run("disk/"+p.name, func(t *testing.T) {
			s, err := Open(t.TempDir(), p.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			fn(t, s)
		})
		t.Run("memory/"+p.name, func(t *testing.T) {
			s, err := NewMemory(p.opts)
			if err != nil {
				t.Fatal(err)
			}
			fn(t, s)
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// mustOpen opens the disk store in dir with default options, failing the
// test if it cannot. The caller closes it.
func mustOpen(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, Options{})
	must(t, err)
	return s
}

func putChain(t *testing.T, s Interface, c *ledgertest.Chain) {
	t.Helper()
	for _, b := range c.Blocks {
		must(t, s.PutBlock(b))
		if cert := c.Certs[b.Height]; cert != nil {
			must(t, s.PutCertificate(cert))
		}
	}
}

func TestRoundTrips(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Interface) {
		for pass := 0; pass < 2; pass++ { // before and after Sync
			if pass == 1 {
				must(t, s.Sync())
			}
			if pass == 0 {
				must(t, s.AppendRecords([][]byte{[]byte("a"), {}, []byte("ccc")}))
				must(t, s.AppendRecords([][]byte{[]byte("d")}))
			}
			recs, err := s.Records()
			must(t, err)
			if want := [][]byte{[]byte("a"), nil, []byte("ccc"), []byte("d")}; !eqRecs(recs, want) {
				t.Fatalf("records %q, want %q", recs, want)
			}

			c := ledgertest.NewChain(9, 4, 3)
			if pass == 0 {
				putChain(t, s, c)
			}
			h, err := s.Height()
			must(t, err)
			if h != 9 {
				t.Fatalf("height %d", h)
			}
			for _, b := range c.Blocks {
				got, err := s.Block(b.Height)
				must(t, err)
				if !reflect.DeepEqual(got, b) {
					t.Fatalf("block %d differs", b.Height)
				}
				cert, err := s.Certificate(b.Height)
				must(t, err)
				if !reflect.DeepEqual(cert, c.Certs[b.Height]) {
					t.Fatalf("certificate %d: %+v", b.Height, cert)
				}
			}
			if _, err := ledger.Verify(s, ledgertest.Verifier{}, 4, ledger.VerifyOptions{}); err != nil {
				t.Fatal(err)
			}

			if pass == 0 {
				must(t, s.PutSnapshot(3, []byte("old")))
				must(t, s.PutSnapshot(6, []byte("snapshot-six")))
				must(t, s.PutMeta("view", []byte{7}))
				must(t, s.PutMeta("empty", nil))
			}
			r, data, err := s.LatestSnapshot()
			must(t, err)
			if r != 6 || string(data) != "snapshot-six" {
				t.Fatalf("latest snapshot %d %q", r, data)
			}
			v, err := s.GetMeta("view")
			must(t, err)
			if !bytes.Equal(v, []byte{7}) {
				t.Fatalf("meta %v", v)
			}
			if v, err := s.GetMeta("empty"); err != nil || len(v) != 0 {
				t.Fatalf("empty meta %v %v", v, err)
			}
			if _, err := s.GetMeta("absent"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("absent meta: %v", err)
			}
		}
	})
}

func eqRecs(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func TestSnapshotChunks(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Interface) {
		data := make([]byte, 1000)
		for i := range data {
			data[i] = byte(i * 7)
		}
		must(t, s.PutSnapshot(10, data))
		must(t, s.PutSnapshot(20, nil))
		for _, size := range []int{1, 7, 100, 999, 1000, 4096} {
			var got []byte
			for i, total := 0, 1; i < total; i++ {
				chunk, n, err := s.SnapshotChunk(10, i, size)
				must(t, err)
				if n != (1000+size-1)/size {
					t.Fatalf("size %d: total %d", size, n)
				}
				total = n
				got = append(got, chunk...)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("size %d: reassembled snapshot differs", size)
			}
		}
		if chunk, n, err := s.SnapshotChunk(20, 0, 10); err != nil || n != 1 || len(chunk) != 0 {
			t.Fatalf("empty snapshot: %v %d %v", chunk, n, err)
		}
		for _, tc := range []struct {
			round       uint64
			index, size int
		}{{10, 10, 100}, {10, -1, 100}, {10, 0, 0}, {11, 0, 10}} {
			if _, _, err := s.SnapshotChunk(tc.round, tc.index, tc.size); err == nil {
				t.Errorf("chunk %+v accepted", tc)
			}
		}
		if _, _, err := s.SnapshotChunk(11, 0, 10); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing snapshot: %v", err)
		}
		must(t, s.TruncateSnapshotsBefore(20))
		if _, _, err := s.SnapshotChunk(10, 0, 10); !errors.Is(err, ErrNotFound) {
			t.Errorf("truncated snapshot: %v", err)
		}
		must(t, s.TruncateSnapshotsBefore(21))
		if _, _, err := s.LatestSnapshot(); !errors.Is(err, ErrNotFound) {
			t.Errorf("no snapshot: %v", err)
		}
	})
}

func TestPutBlockRules(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Interface) {
		c := ledgertest.NewChain(5, 4, 0)
		if err := s.PutBlock(c.Blocks[1]); err == nil {
			t.Fatal("block 2 accepted before block 1")
		}
		if err := s.PutCertificate(ledgertest.Certify(c.Blocks[0], ledgertest.Signers(3))); !errors.Is(err, ErrNotFound) {
			t.Fatalf("certificate for a missing block: %v", err)
		}
		putChain(t, s, c)
		must(t, s.PutBlock(c.Blocks[2])) // identical replay
		other := *c.Blocks[2]
		other.StateDigest[0] ^= 1
		if err := s.PutBlock(&other); err == nil {
			t.Fatal("block 3 overwritten")
		}
		if err := s.PutBlock(&ledger.Block{}); err == nil {
			t.Fatal("block 0 accepted")
		}
		cert := ledgertest.Certify(&other, ledgertest.Signers(3))
		if err := s.PutCertificate(cert); err == nil {
			t.Fatal("certificate for another block 3 accepted")
		}
	})
}

func TestTruncateRecordsBefore(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Interface) {
		var recs [][]byte
		for i := 1; i <= 10; i++ {
			recs = append(recs, []byte{byte(i)})
		}
		must(t, s.AppendRecords(recs[:6]))
		must(t, s.Sync())
		must(t, s.AppendRecords(recs[6:])) // pending under GroupCommit
		must(t, s.TruncateRecordsBefore(4))
		checkRecs(t, s, 4, 11, recs[3:])
		must(t, s.Sync())
		checkRecs(t, s, 4, 11, recs[3:])
		must(t, s.TruncateRecordsBefore(11))
		checkRecs(t, s, 11, 11, nil)
		must(t, s.AppendRecords([][]byte{{42}}))
		checkRecs(t, s, 11, 12, [][]byte{{42}})
		// Truncating past the end moves the numbering forward.
		must(t, s.TruncateRecordsBefore(100))
		must(t, s.AppendRecords([][]byte{{43}}))
		checkRecs(t, s, 100, 101, [][]byte{{43}})
	})
}

func checkRecs(t *testing.T, s Interface, first, next uint64, want [][]byte) {
	t.Helper()
	got, err := s.Records()
	must(t, err)
	if !eqRecs(got, want) {
		t.Fatalf("records %v, want %v", got, want)
	}
	f, n, err := s.RecordBounds()
	must(t, err)
	if f != first || n != next {
		t.Fatalf("bounds [%d, %d), want [%d, %d)", f, n, first, next)
	}
}

func TestReopenKeepsData(t *testing.T) {
	for _, p := range policies {
		t.Run(p.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, p.opts)
			must(t, err)
			c := ledgertest.NewChain(7, 4, 7)
			putChain(t, s, c)
			must(t, s.AppendRecords([][]byte{{1}, {2}, {3}}))
			must(t, s.TruncateRecordsBefore(3))
			must(t, s.PutSnapshot(7, []byte("snap")))
			must(t, s.PutMeta("k", []byte("v")))
			must(t, s.Close())
			if err := s.PutMeta("k", nil); !errors.Is(err, ErrClosed) {
				t.Fatalf("write after close: %v", err)
			}

			s, err = Open(dir, p.opts)
			must(t, err)
			defer s.Close()
			rep, err := ledger.Verify(s, ledgertest.Verifier{}, 4, ledger.VerifyOptions{})
			must(t, err)
			if rep.Height != 7 || rep.Certified != 7 {
				t.Fatalf("report %+v", rep)
			}
			checkRecs(t, s, 3, 4, [][]byte{{3}})
			if r, d, err := s.LatestSnapshot(); err != nil || r != 7 || string(d) != "snap" {
				t.Fatalf("snapshot %d %q %v", r, d, err)
			}
			if v, err := s.GetMeta("k"); err != nil || string(v) != "v" {
				t.Fatalf("meta %q %v", v, err)
			}
			// The WAL numbering survives even when every record was truncated.
			must(t, s.TruncateRecordsBefore(4))
			must(t, s.Close())
			s, err = Open(dir, p.opts)
			must(t, err)
			checkRecs(t, s, 4, 4, nil)
		})
	}
}

func TestGroupCommitTimer(t *testing.T) {
	s, err := Open(t.TempDir(), Options{Fsync: GroupCommit{Interval: time.Millisecond}})
	must(t, err)
	defer s.Close()
	must(t, s.AppendRecords([][]byte{{1}}))
	// Wait for the timer's commit (no assertion on how long it takes).
	deadline := time.Now().Add(30 * time.Second)
	for s.Stats().Commits == 0 {
		if time.Now().After(deadline) {
			t.Fatal("group commit timer never committed")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestOptionsValidated(t *testing.T) {
	if _, err := NewMemory(Options{Fsync: GroupCommit{}}); err == nil {
		t.Error("zero interval accepted")
	}
}

func TestMemoryCrash(t *testing.T) {
	for _, p := range policies {
		t.Run(p.name, func(t *testing.T) {
			m, err := NewMemory(p.opts)
			must(t, err)
			c := ledgertest.NewChain(6, 4, 3)
			putChain(t, m, c.Prefix(3))
			must(t, m.AppendRecords([][]byte{{1}, {2}}))
			must(t, m.PutSnapshot(3, []byte("s3")))
			must(t, m.Sync())
			// Unsynced under GroupCommit:
			for _, b := range c.Blocks[3:] {
				must(t, m.PutBlock(b))
			}
			must(t, m.PutCertificate(c.Certs[6]))
			must(t, m.AppendRecords([][]byte{{3}}))
			must(t, m.TruncateRecordsBefore(2))
			must(t, m.PutSnapshot(6, []byte("s6")))
			must(t, m.PutMeta("k", []byte("v")))

			m.Crash()

			_, perBatch := p.opts.Fsync.(PerBatch)
			h, err := m.Height()
			must(t, err)
			_, snap, err := m.LatestSnapshot()
			must(t, err)
			_, metaErr := m.GetMeta("k")
			// A snapshot is durable once PutSnapshot returns, under either policy.
			if string(snap) != "s6" {
				t.Fatalf("lost a snapshot PutSnapshot had returned for: latest %q", snap)
			}
			if perBatch {
				if h != 6 || metaErr != nil {
					t.Fatalf("PerBatch lost writes: height %d snapshot %q meta %v", h, snap, metaErr)
				}
				checkRecs(t, m, 2, 4, [][]byte{{2}, {3}})
			} else {
				if h != 3 || !errors.Is(metaErr, ErrNotFound) {
					t.Fatalf("GroupCommit kept unsynced writes: height %d snapshot %q meta %v", h, snap, metaErr)
				}
				checkRecs(t, m, 1, 3, [][]byte{{1}, {2}})
				// The replica redoes the lost work and carries on.
				for _, b := range c.Blocks[3:] {
					must(t, m.PutBlock(b))
				}
			}
			if _, err := ledger.Verify(m, ledgertest.Verifier{}, 4, ledger.VerifyOptions{}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// corrupt opens the closed store's file with bbolt directly and applies fn.
func corrupt(t *testing.T, dir string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	must(t, err)
	must(t, db.Update(fn))
	must(t, db.Close())
}

func TestCorruptValues(t *testing.T) {
	cases := []struct {
		name   string
		bucket string
		key    []byte
		val    []byte
		check  func(s *Store) error
	}{
		{"block checksum", "blocks", u64key(2), []byte{0, 0, 0, 0, 1, 2, 3}, func(s *Store) error { _, err := s.Block(2); return err }},
		{"block too short", "blocks", u64key(2), []byte{1}, func(s *Store) error { _, err := s.Block(2); return err }},
		{"block undecodable", "blocks", u64key(2), seal([]byte{1, 2, 3}), func(s *Store) error { _, err := s.Block(2); return err }},
		{"block at wrong height", "blocks", u64key(2), seal(ledgertest.NewChain(3, 4, 0).Blocks[2].Encode()), func(s *Store) error { _, err := s.Block(2); return err }},
		{"certificate undecodable", "certs", u64key(3), seal([]byte("nope")), func(s *Store) error { _, err := s.Certificate(3); return err }},
		{"wal record", "wal", u64key(2), []byte("garbage!"), func(s *Store) error { _, err := s.Records(); return err }},
		{"meta", "meta", []byte("k"), []byte{9, 9, 9, 9, 9}, func(s *Store) error { _, err := s.GetMeta("k"); return err }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := mustOpen(t, dir)
			putChain(t, s, ledgertest.NewChain(3, 4, 3))
			must(t, s.AppendRecords([][]byte{{1}, {2}, {3}}))
			must(t, s.PutSnapshot(3, []byte("snapshot")))
			must(t, s.PutMeta("k", []byte("v")))
			must(t, s.Close())
			corrupt(t, dir, func(tx *bolt.Tx) error { return tx.Bucket([]byte(tc.bucket)).Put(tc.key, tc.val) })
			s = mustOpen(t, dir)
			defer s.Close()
			err := tc.check(s)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("want a corruption error, got %v", err)
			}
			t.Log(err)
		})
	}
}

func TestCorruptStructure(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir)
	must(t, s.Close())
	corrupt(t, dir, func(tx *bolt.Tx) error {
		must(t, tx.Bucket([]byte("blocks")).Put([]byte("short"), seal(nil)))
		return tx.DeleteBucket([]byte("certs"))
	})
	// A key of the wrong shape is refused at Open.
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("bad block key: %v", err)
	}
	corrupt(t, dir, func(tx *bolt.Tx) error { return tx.Bucket([]byte("blocks")).Delete([]byte("short")) })
	// A missing bucket is recreated empty (no data there to lose).
	s = mustOpen(t, dir)
	must(t, s.Close())

	// Not a database at all.
	garbage := t.TempDir()
	must(t, os.WriteFile(filepath.Join(garbage, FileName), bytes.Repeat([]byte("braid"), 3000), 0o600))
	if _, err := Open(garbage, Options{}); err == nil {
		t.Fatal("garbage file opened")
	} else {
		t.Log(err)
	}
}

// TestCorruptFileBytes flips single bytes all over a database file; Open and
// every read either work or fail with an error, never panic.
func TestCorruptFileBytes(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir)
	putChain(t, s, ledgertest.NewChain(20, 4, 5))
	must(t, s.AppendRecords([][]byte{{1}, {2}}))
	must(t, s.Close())
	path := filepath.Join(dir, FileName)
	orig, err := os.ReadFile(path)
	must(t, err)
	for off := 0; off < len(orig); off += 97 {
		bad := append([]byte{}, orig...)
		bad[off] ^= 0x5a
		must(t, os.WriteFile(path, bad, 0o600))
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("flip at %d: panic %v", off, r)
				}
			}()
			s, err := Open(dir, Options{})
			if err != nil {
				return
			}
			defer s.Close()
			_, _ = ledger.Verify(s, ledgertest.Verifier{}, 4, ledger.VerifyOptions{})
			_, _ = s.Records()
		}()
	}
}
