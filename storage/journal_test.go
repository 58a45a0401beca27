package storage

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/braid-bft/braid/internal/testseed"
	"github.com/braid-bft/braid/ledger"
	"github.com/braid-bft/braid/ledger/ledgertest"
)

// crashStore leaves s as a killed process would: every fdatasynced write on
// disk, nothing folded or closed cleanly.
func crashStore(s *Store) {
	j := s.eng.(*journaled)
	j.file.Close()
	j.bolt.close()
}

// A commit is durable once it is in the journal: it reaches bbolt only at a
// fold, and a crash before the fold loses nothing.
func TestJournalCommitSurvivesCrashBeforeFold(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir)
	j := s.eng.(*journaled)
	opened := j.folds // opening starts a cycle with one
	c := ledgertest.NewChain(30, 4, 10)
	putChain(t, s, c)
	must(t, s.AppendRecords([][]byte{[]byte("prepare"), []byte("commit")}))
	must(t, s.PutMeta("view", []byte{7}))
	if j.folds != opened {
		t.Fatalf("%d folds after a few small commits; want none (the journal holds them)", j.folds-opened)
	}
	if found, _ := j.bolt.view(bBlocks, u64key(30), func([]byte) error { return nil }); found {
		t.Fatal("block 30 already in bbolt: the test would not exercise the journal")
	}
	crashStore(s)

	s = mustOpen(t, dir)
	defer s.Close()
	if h, _ := s.Height(); h != 30 {
		t.Fatalf("height %d after the crash; want 30", h)
	}
	if _, err := ledger.Verify(s, ledgertest.Verifier{}, 4, ledger.VerifyOptions{}); err != nil {
		t.Fatalf("ledger after the crash: %v", err)
	}
	checkRecs(t, s, 1, 3, [][]byte{[]byte("prepare"), []byte("commit")})
	if v, err := s.GetMeta("view"); err != nil || !bytes.Equal(v, []byte{7}) {
		t.Fatalf("meta view = %v, %v; want [7]", v, err)
	}
}

// journalOffsets returns where each record of the journal in dir starts,
// for the cycle salted with salt whose first record is first.
func journalOffsets(t *testing.T, dir string, salt, first uint64) (data []byte, offs []int) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, JournalFileName))
	must(t, err)
	recs, err := scanJournal(bytes.NewReader(data), int64(len(data)), salt, first)
	must(t, err)
	off := 0
	for _, r := range recs {
		offs = append(offs, off)
		off += journalHeader + len(r.payload)
	}
	return data, offs
}

// The last record's fdatasync may not have finished when the process died:
// a torn last record is dropped (it was never acknowledged) and everything
// before it kept. A damaged record followed by an intact one is damaged
// acknowledged data: Open refuses.
func TestJournalTornTailAndDamage(t *testing.T) {
	var salt uint64
	write := func(t *testing.T) string {
		dir := t.TempDir()
		s := mustOpen(t, dir)
		for i := 1; i <= 5; i++ {
			must(t, s.AppendRecords([][]byte{fmt.Appendf(nil, "rec-%d", i)}))
		}
		salt = s.eng.(*journaled).salt
		crashStore(s)
		return dir
	}
	want := func(n int) [][]byte {
		var out [][]byte
		for i := 1; i <= n; i++ {
			out = append(out, fmt.Appendf(nil, "rec-%d", i))
		}
		return out
	}
	torn := map[string]func(data []byte, last int){
		"torn-payload": func(data []byte, last int) { data[last+journalHeader+2] ^= 0xff },
		"torn-header":  func(data []byte, last int) { clear(data[last+8 : last+journalHeader]) }, // half a header reached the disk
	}
	for name, tear := range torn {
		t.Run(name, func(t *testing.T) {
			dir := write(t)
			data, offs := journalOffsets(t, dir, salt, 1)
			if len(offs) != 5 {
				t.Fatalf("%d records in the journal; want 5", len(offs))
			}
			tear(data, offs[4])
			must(t, os.WriteFile(filepath.Join(dir, JournalFileName), data, 0o600))
			s := mustOpen(t, dir)
			defer s.Close()
			checkRecs(t, s, 1, 5, want(4))
		})
	}
	t.Run("damaged-middle", func(t *testing.T) {
		dir := write(t)
		data, offs := journalOffsets(t, dir, salt, 1)
		data[offs[2]+journalHeader+1] ^= 0x01
		must(t, os.WriteFile(filepath.Join(dir, JournalFileName), data, 0o600))
		if s, err := Open(dir, Options{}); !errors.Is(err, ErrCorrupt) {
			if s != nil {
				s.Close()
			}
			t.Fatalf("Open with record 3 of 5 damaged: %v; want ErrCorrupt", err)
		}
	})
}

// Records of an earlier cycle (already folded) are neither replayed nor
// taken for damage: bit rot in one does not stop the store from opening,
// and an old record that carries the next sequence number is not mistaken
// for one of the current cycle (each cycle salts its checksums).
func TestJournalIgnoresEarlierCycles(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir)
	for i := 1; i <= 5; i++ {
		must(t, s.AppendRecords([][]byte{fmt.Appendf(nil, "rec-%d", i)}))
	}
	old := s.eng.(*journaled).salt
	must(t, s.Close()) // folds records 1..5 and starts a new cycle
	data, offs := journalOffsets(t, dir, old, 1)
	data[offs[1]+journalHeader+1] ^= 0x01 // bit rot in folded record 2
	must(t, os.WriteFile(filepath.Join(dir, JournalFileName), data, 0o600))

	s = mustOpen(t, dir)
	checkRecs(t, s, 1, 6, [][]byte{[]byte("rec-1"), []byte("rec-2"), []byte("rec-3"), []byte("rec-4"), []byte("rec-5")})
	must(t, s.AppendRecords([][]byte{[]byte("rec-6")})) // record 6 of the new cycle, at offset 0
	crashStore(s)

	// Make the old record lying just past record 6 a well-formed record 7
	// of the old cycle, with a write nobody made.
	data, err := os.ReadFile(filepath.Join(dir, JournalFileName))
	must(t, err)
	l := newLayer()
	l.put(bMeta, []byte("forged"), seal([]byte("yes")))
	rec6 := journalHeader + len(encodeLayer(func() *layer {
		x := newLayer()
		x.put(bWAL, u64key(6), seal([]byte("rec-6")))
		return x
	}()))
	copy(data[rec6:], appendJournalRecord(nil, old, 7, encodeLayer(l)))
	must(t, os.WriteFile(filepath.Join(dir, JournalFileName), data, 0o600))

	s = mustOpen(t, dir)
	defer s.Close()
	checkRecs(t, s, 1, 7, [][]byte{[]byte("rec-1"), []byte("rec-2"), []byte("rec-3"), []byte("rec-4"), []byte("rec-5"), []byte("rec-6")})
	if v, err := s.GetMeta("forged"); err == nil {
		t.Fatalf("a record of an earlier cycle was replayed: meta forged = %q", v)
	}
}

// Past the end of the file the journal folds into bbolt and starts over at
// offset 0; the old records beyond the new ones must not come back.
func TestJournalWrapsAfterFold(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir)
	rec := make([]byte, 256<<10)
	var want [][]byte
	for i := 0; len(want)*len(rec) < 2*journalBytes+journalBytes/2; i++ {
		r := bytes.Clone(rec)
		r[0], r[1] = byte(i), byte(i>>8)
		want = append(want, r)
		must(t, s.AppendRecords([][]byte{r}))
	}
	if f := s.eng.(*journaled).folds; f < 2 {
		t.Fatalf("%d folds after writing 2.5 journals' worth; want ≥ 2", f)
	}
	// Truncate so that the survivors straddle the wrap point.
	cut := uint64(len(want) - 3)
	must(t, s.TruncateRecordsBefore(cut))
	crashStore(s)
	s = mustOpen(t, dir)
	defer s.Close()
	checkRecs(t, s, cut, uint64(len(want))+1, want[cut-1:])
}

// A layer larger than the journal goes to bbolt directly, after what the
// journal holds.
func TestJournalOversizedCommit(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{Fsync: GroupCommit{Interval: time.Hour}})
	must(t, err)
	must(t, s.AppendRecords([][]byte{[]byte("small")}))
	must(t, s.Sync())
	var big [][]byte
	for i := 0; i < 20; i++ {
		big = append(big, bytes.Repeat([]byte{byte(i)}, 1<<20))
	}
	must(t, s.AppendRecords(big))
	must(t, s.Sync())
	must(t, s.AppendRecords([][]byte{[]byte("after")}))
	must(t, s.Sync())
	crashStore(s)
	s = mustOpen(t, dir)
	defer s.Close()
	checkRecs(t, s, 1, 23, append(append([][]byte{[]byte("small")}, big...), []byte("after")))
}

// Deleting the journal of a store that has used it would silently lose the
// writes made since its last fold: Open refuses.
func TestJournalMissingIsAnError(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir)
	must(t, s.AppendRecords([][]byte{[]byte("x")}))
	must(t, s.Close()) // folds
	must(t, os.Remove(filepath.Join(dir, JournalFileName)))
	if s, err := Open(dir, Options{}); !errors.Is(err, ErrCorrupt) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open without the journal: %v; want ErrCorrupt", err)
	}
}

// Random batches with random crashes, against the in-memory store fed the
// same operations: after every reopen the disk store holds exactly what was
// acknowledged.
func TestJournalMatchesModelAcrossCrashes(t *testing.T) {
	seed := testseed.New(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	dir := t.TempDir()
	s := mustOpen(t, dir)
	model, err := NewMemory(Options{})
	must(t, err)
	chain := ledgertest.NewChain(400, 4, 10)
	height := uint64(0)
	folds := uint64(0)
	both := func(f func(st Interface) error) {
		t.Helper()
		must(t, f(s))
		must(t, f(model))
	}
	for step := 0; step < 600; step++ {
		switch r := rng.IntN(10); {
		case r < 4:
			n := 1 + rng.IntN(4)
			recs := make([][]byte, n)
			for i := range recs {
				size := rng.IntN(3000)
				if rng.IntN(5) == 0 {
					size = 256 << 10 // enough of these wrap the journal a few times
				}
				recs[i] = make([]byte, size)
				for k := range recs[i] {
					recs[i][k] = byte(rng.Uint32())
				}
			}
			both(func(st Interface) error { return st.AppendRecords(recs) })
		case r < 6 && height < 400:
			height++
			b := chain.Blocks[height-1]
			both(func(st Interface) error { return st.PutBlock(b) })
		case r < 7:
			_, next, err := model.RecordBounds()
			must(t, err)
			cut := 1 + rng.Uint64N(next)
			both(func(st Interface) error { return st.TruncateRecordsBefore(cut) })
		case r < 8:
			k, v := fmt.Sprintf("m%d", rng.IntN(5)), []byte{byte(step)}
			both(func(st Interface) error { return st.PutMeta(k, v) })
		default:
			folds += s.eng.(*journaled).folds
			if rng.IntN(3) == 0 {
				must(t, s.Close())
			} else {
				crashStore(s)
			}
			s = mustOpen(t, dir)
			compareStores(t, step, s, model)
		}
	}
	compareStores(t, -1, s, model)
	folds += s.eng.(*journaled).folds
	must(t, s.Close())
	if folds < 2 {
		t.Fatalf("%d folds in the whole run; want ≥ 2 (wraps not exercised)", folds)
	}
}

func compareStores(t *testing.T, step int, got, want Interface) {
	t.Helper()
	gr, err := got.Records()
	must(t, err)
	wr, err := want.Records()
	must(t, err)
	if !eqRecs(gr, wr) {
		t.Fatalf("step %d: %d records on disk, %d in the model (or different bytes)", step, len(gr), len(wr))
	}
	gf, gn, _ := got.RecordBounds()
	wf, wn, _ := want.RecordBounds()
	if gf != wf || gn != wn {
		t.Fatalf("step %d: record bounds %d..%d on disk, %d..%d in the model", step, gf, gn, wf, wn)
	}
	gh, _ := got.Height()
	wh, _ := want.Height()
	if gh != wh {
		t.Fatalf("step %d: height %d on disk, %d in the model", step, gh, wh)
	}
	for h := uint64(1); h <= gh; h++ {
		gb, err := got.Block(h)
		must(t, err)
		wb, _ := want.Block(h)
		if gb.Hash() != wb.Hash() {
			t.Fatalf("step %d: block %d differs", step, h)
		}
	}
	for i := 0; i < 5; i++ {
		k := fmt.Sprintf("m%d", i)
		gv, gerr := got.GetMeta(k)
		wv, werr := want.GetMeta(k)
		if !bytes.Equal(gv, wv) || (gerr == nil) != (werr == nil) {
			t.Fatalf("step %d: meta %s = %v, %v on disk; %v, %v in the model", step, k, gv, gerr, wv, werr)
		}
	}
}

// A layer comes back from its encoding as it went in.
func TestLayerCodecRoundTrip(t *testing.T) {
	l := newLayer()
	l.put(bWAL, u64key(3), seal([]byte("three")))
	l.deleteBelow(bWAL, u64key(2))
	l.put(bMeta, []byte("gone"), nil)
	l.put(bMeta, []byte("here"), seal(nil))
	l.put(bBlocks, u64key(9), seal(bytes.Repeat([]byte{1}, 500)))
	got, err := decodeLayer(encodeLayer(l))
	must(t, err)
	if !reflect.DeepEqual(got.floors, l.floors) || !reflect.DeepEqual(got.vals, l.vals) {
		t.Fatalf("decoded layer differs:\n got %+v\nwant %+v", got, l)
	}
}

// The journal is read back from disk: no input may panic or allocate past
// the file, and what decodes re-encodes to the same bytes.
func FuzzJournal(f *testing.F) {
	l := newLayer()
	l.put(bWAL, u64key(1), seal([]byte("r")))
	l.deleteBelow(bBlocks, u64key(4))
	l.put(bMeta, []byte("k"), nil)
	p := encodeLayer(l)
	f.Add(appendJournalRecord(appendJournalRecord(nil, 0, 1, p), 0, 2, p))
	f.Add(p)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, _ := scanJournal(bytes.NewReader(data), int64(len(data)), 0, 1)
		for _, r := range recs {
			if l, err := decodeLayer(r.payload); err == nil && !bytes.Equal(encodeLayer(l), r.payload) {
				t.Fatalf("record %d decodes but does not re-encode to its bytes", r.seq)
			}
		}
		if l, err := decodeLayer(data); err == nil && !bytes.Equal(encodeLayer(l), data) {
			t.Fatal("payload decodes but does not re-encode to its bytes")
		}
	})
}

// A layer whose payload bytes fit the journal but whose encoding (lengths,
// flags, the record header) does not must still go to bbolt, not be written
// past the end of the file, where recovery would not read it back.
func TestJournalOversizedEncoding(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{Fsync: GroupCommit{Interval: time.Hour}})
	must(t, err)
	// Each 1-byte record counts 8 (key) + 5 (sealed value) bytes towards
	// the layer, and encodes in 22.
	n := (journalBytes - 4096) / 13
	recs := make([][]byte, n)
	for i := range recs {
		recs[i] = []byte{byte(i)}
	}
	must(t, s.AppendRecords(recs))
	must(t, s.Sync())
	crashStore(s)
	s = mustOpen(t, dir)
	defer s.Close()
	if _, next, err := s.RecordBounds(); err != nil || next != uint64(n)+1 {
		t.Fatalf("after the crash the log ends before %d (%v); want %d", next, err, n+1)
	}
}
