package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sync"
	"sync/atomic"
	"time"

	"github.com/braid-bft/braid/ledger"
)

// FsyncPolicy says when writes become durable: PerBatch or GroupCommit.
type FsyncPolicy interface{ isFsyncPolicy() }

// PerBatch commits and fsyncs every write call before it returns.
type PerBatch struct{}

// GroupCommit buffers writes and commits them together at most Interval
// after the first unsynced one; Sync forces a commit.
type GroupCommit struct{ Interval time.Duration }

func (PerBatch) isFsyncPolicy()    {}
func (GroupCommit) isFsyncPolicy() {}

// Options configures a store. The zero value means PerBatch.
type Options struct {
	Fsync FsyncPolicy
}

// MaxValueBytes bounds one stored record, snapshot or metadata value.
const MaxValueBytes = 1 << 30

var (
	// ErrNotFound is returned (wrapped) for a missing block, snapshot or key.
	ErrNotFound = errors.New("not found")
	// ErrCorrupt is wrapped by every error about damaged stored data.
	ErrCorrupt = errors.New("corrupt")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("storage: closed")
)

// Interface is what a replica needs from its storage; *Store (on disk) and
// *Memory (for simulations) implement it. Every method is safe for
// concurrent use.
type Interface interface {
	ledger.Source

	// AppendRecords appends WAL records in order, numbering them with
	// consecutive sequence numbers (the first record ever gets 1).
	AppendRecords(recs [][]byte) error
	// Records returns every retained record in sequence order.
	Records() ([][]byte, error)
	// RecordBounds returns the lowest retained sequence number and the one
	// the next appended record gets (first == next when none is retained).
	RecordBounds() (first, next uint64, err error)
	// TruncateRecordsBefore drops records with sequence numbers below seq.
	// Sequence numbers are never reused.
	TruncateRecordsBefore(seq uint64) error

	// PutBlock appends the block at Height()+1. Re-putting an identical
	// stored block is a no-op (replay after a crash); a different one is an
	// error: executed blocks are never overwritten.
	PutBlock(b *ledger.Block) error
	// PutCertificate stores c with block c.Round, which must be stored and
	// hash to c.BlockHash. Signatures are not checked here (ledger.Verify).
	PutCertificate(c *ledger.Certificate) error

	// PutSnapshot stores the application snapshot taken after round,
	// durable when it returns and independent of commits (it may run
	// alongside them; see snapshots.go).
	PutSnapshot(round uint64, data []byte) error
	// LatestSnapshot returns the snapshot with the highest round, checksum
	// verified; ErrNotFound if there is none.
	LatestSnapshot() (round uint64, data []byte, err error)
	// SnapshotChunk returns chunk index (from 0) of the snapshot of round cut
	// into chunkSize pieces, and the number of chunks (≥ 1). Chunks are not
	// checksummed one by one: the receiver checks the restored state against
	// the stable checkpoint's state digest.
	SnapshotChunk(round uint64, index int, chunkSize int) (chunk []byte, total int, err error)
	// TruncateSnapshotsBefore drops snapshots of rounds below round.
	TruncateSnapshotsBefore(round uint64) error

	// Apply writes a Batch atomically: all of it survives a crash or none.
	Apply(b *Batch) error

	// PutMeta stores a small named value; GetMeta returns it or ErrNotFound.
	PutMeta(key string, val []byte) error
	GetMeta(key string) ([]byte, error)

	// Sync makes every write so far durable (a no-op under PerBatch).
	Sync() error
	// Stats reports counters (commits) for benchmarks and metrics.
	Stats() Stats
	Close() error
}

// Stats are cumulative counters.
type Stats struct {
	// Commits counts commits (Sync calls that wrote something).
	Commits uint64
	// Fsyncs counts fdatasyncs on disk: one per commit into the journal,
	// two per fold into bbolt (data pages, then the meta page). Zero in
	// memory.
	Fsyncs uint64
}

var (
	_ Interface = (*Store)(nil)
	_ Interface = (*Memory)(nil)
)

// Store is the durable state of one replica. Open creates it on disk,
// NewMemory in memory.
type Store struct {
	eng       engine
	snaps     snapStore
	interval  time.Duration // 0: PerBatch
	autoFlush bool          // commit pending writes on a timer (disk only)

	commitMu sync.Mutex // serialises commits; taken before mu

	mu       sync.Mutex
	pending  *layer // writes not yet handed to the engine
	flushing *layer // writes being committed right now
	timer    *time.Timer
	height   uint64 // highest block, pending included
	nextSeq  uint64 // next WAL sequence number, pending included
	firstSeq uint64 // lowest WAL sequence number held (nextSeq when none), pending included
	err      error  // sticky: a failed commit or Close

	commits atomic.Uint64
}

func newStore(eng engine, snaps snapStore, opts Options, autoFlush bool) (*Store, error) {
	s := &Store{eng: eng, snaps: snaps, pending: newLayer()}
	switch p := opts.Fsync.(type) {
	case nil, PerBatch:
	case GroupCommit:
		if p.Interval <= 0 {
			return nil, fmt.Errorf("storage: GroupCommit.Interval %v must be positive", p.Interval)
		}
		s.interval, s.autoFlush = p.Interval, autoFlush
	default:
		return nil, fmt.Errorf("storage: unknown fsync policy %T", p)
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

// load derives the in-memory counters from what the engine holds. The
// caller holds s.mu (or owns s exclusively).
func (s *Store) load() error {
	k, ok, err := s.eng.last(bBlocks)
	if err != nil {
		return err
	}
	s.height = 0
	if ok {
		s.height = binary.BigEndian.Uint64(k)
	}
	k, ok, err = s.eng.last(bWAL)
	if err != nil {
		return err
	}
	s.nextSeq = 1
	if ok {
		s.nextSeq = binary.BigEndian.Uint64(k) + 1
	}
	floor, err := s.getLocked(bSys, []byte(sysWALFloor))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if err == nil {
		if len(floor) != 8 {
			return fmt.Errorf("storage: sys wal-floor: %w: %d bytes, want 8", ErrCorrupt, len(floor))
		}
		s.nextSeq = max(s.nextSeq, binary.BigEndian.Uint64(floor))
	}
	// The lowest record, found once here and then kept up to date by every
	// truncation, so that reading the log (each compaction does) walks its
	// sequence numbers instead of collecting and sorting every key.
	s.firstSeq = s.nextSeq
	err = s.eng.forEachKey(bWAL, func(k []byte) error {
		if len(k) != 8 {
			return fmt.Errorf("storage: wal key %x: %w: not 8 bytes", k, ErrCorrupt)
		}
		s.firstSeq = min(s.firstSeq, binary.BigEndian.Uint64(k))
		return nil
	})
	return err
}

const sysWALFloor = "wal-floor"

// ---- writes ----

// write applies fn to the pending layer under the lock, then commits per the
// fsync policy. fn validates before it changes anything.
func (s *Store) write(fn func(l *layer) error) error {
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return err
	}
	if err := fn(s.pending); err != nil {
		s.mu.Unlock()
		return err
	}
	if s.interval == 0 || s.pending.bytes >= maxPendingBytes {
		// PerBatch, or backpressure: a writer outrunning the disk under
		// GroupCommit pays for a commit rather than growing memory.
		s.mu.Unlock()
		return s.Sync()
	}
	if s.autoFlush && s.timer == nil {
		s.timer = time.AfterFunc(s.interval, s.timerFlush)
	}
	s.mu.Unlock()
	return nil
}

func (s *Store) timerFlush() {
	s.mu.Lock()
	s.timer = nil
	s.mu.Unlock()
	_ = s.Sync() // a failure is sticky and reported by the next call
}

// Sync commits every pending write in one transaction.
func (s *Store) Sync() error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	if s.err != nil || s.pending.empty() {
		err := s.err
		s.mu.Unlock()
		return err
	}
	l := s.pending
	s.pending, s.flushing = newLayer(), l
	s.mu.Unlock()

	err := s.eng.apply(l)
	s.commits.Add(1)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushing = nil
	if err != nil && s.err == nil {
		s.err = fmt.Errorf("storage: commit failed, store unusable: %w", err)
	}
	return s.err
}

// Stats returns cumulative counters.
func (s *Store) Stats() Stats {
	st := Stats{Commits: s.commits.Load()}
	if j, ok := s.eng.(*journaled); ok {
		st.Fsyncs = j.syncs.Load()
	}
	return st
}

// Close commits pending writes and closes the engine.
func (s *Store) Close() error {
	syncErr := s.Sync()
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if errors.Is(s.err, ErrClosed) {
		return nil
	}
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.err = ErrClosed
	if err := s.eng.close(); err != nil {
		return fmt.Errorf("storage: close: %w", err)
	}
	if syncErr != nil && !errors.Is(syncErr, ErrClosed) {
		return syncErr
	}
	return nil
}

func u64key(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// The single-purpose writes are one-part batches: Apply validates and
// writes every kind of value, so each rule has one home.

func (s *Store) AppendRecords(recs [][]byte) error { return s.Apply(&Batch{Records: recs}) }

func (s *Store) TruncateRecordsBefore(seq uint64) error {
	return s.Apply(&Batch{TruncateRecordsBefore: seq})
}

func (s *Store) PutBlock(b *ledger.Block) error { return s.Apply(&Batch{Blocks: []*ledger.Block{b}}) }

func (s *Store) PutCertificate(c *ledger.Certificate) error {
	return s.Apply(&Batch{Certificates: []*ledger.Certificate{c}})
}

// PutSnapshot stores the snapshot durably before it returns. It does not
// wait for commits, nor they for it: call it off the replica's loop.
func (s *Store) PutSnapshot(round uint64, data []byte) error {
	if len(data) > MaxValueBytes {
		return fmt.Errorf("storage: snapshot %d: %d bytes exceeds limit %d", round, len(data), MaxValueBytes)
	}
	if err := s.sticky(); err != nil {
		return err
	}
	return s.snaps.put(round, data)
}

func (s *Store) TruncateSnapshotsBefore(round uint64) error { return s.snaps.truncateBefore(round) }

// sticky is the error that made the store unusable (a failed commit, or
// Close), if any.
func (s *Store) sticky() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *Store) PutMeta(key string, val []byte) error {
	return s.Apply(&Batch{Meta: []Meta{{Key: key, Val: val}}})
}

// ---- reads ----

// get reads through pending, flushing and the engine, and checks the value's
// checksum.
func (s *Store) get(b bucket, key []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	return s.getLocked(b, key)
}

func (s *Store) getLocked(b bucket, key []byte) ([]byte, error) {
	var out []byte
	err := s.viewLocked(b, key, func(p []byte) error {
		out = append([]byte(nil), p...)
		return nil
	})
	return out, err
}

// viewLocked calls fn with the checksum-verified payload stored under key;
// the slice is valid only during fn.
func (s *Store) viewLocked(b bucket, key []byte, fn func(p []byte) error) error {
	return s.rawLocked(b, key, func(v []byte) error {
		p, err := unseal(v)
		if err != nil {
			return fmt.Errorf("%s %s: %w", b, keyString(b, key), err)
		}
		return fn(p)
	})
}

// rawLocked calls fn with the sealed value (checksum header included).
func (s *Store) rawLocked(b bucket, key []byte, fn func(v []byte) error) error {
	if v, decided := s.decided(b, key); decided {
		if v == nil {
			return fmt.Errorf("%s %s: %w", b, keyString(b, key), ErrNotFound)
		}
		return fn(v)
	}
	found, err := s.eng.view(b, key, fn)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%s %s: %w", b, keyString(b, key), ErrNotFound)
	}
	return nil
}

// decided reports whether an overlay layer settles key (v nil: deleted).
func (s *Store) decided(b bucket, key []byte) ([]byte, bool) {
	for _, l := range []*layer{s.pending, s.flushing} {
		if l == nil {
			continue
		}
		if v, ok := l.lookup(b, key); ok {
			return v, true
		}
	}
	return nil, false
}

func (s *Store) Height() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.height, s.err
}

func (s *Store) Block(h uint64) (*ledger.Block, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	return s.blockLocked(h)
}

func (s *Store) blockLocked(h uint64) (*ledger.Block, error) {
	b, err := decodeLocked(s, bBlocks, h, ledger.DecodeBlock)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	if b.Height != h {
		return nil, fmt.Errorf("storage: blocks %d: %w: block claims height %d", h, ErrCorrupt, b.Height)
	}
	return b, nil
}

// decodeLocked decodes the checksum-verified value stored at height or round
// h of bucket b. A payload that passes its checksum but does not decode is
// ErrCorrupt, naming where it lies; a missing one is ErrNotFound.
func decodeLocked[T any](s *Store, b bucket, h uint64, decode func([]byte) (T, error)) (T, error) {
	var v T
	err := s.viewLocked(b, u64key(h), func(p []byte) error {
		var err error
		v, err = decode(p)
		if err != nil {
			return fmt.Errorf("%s %d: %w: %w", b, h, ErrCorrupt, err)
		}
		return nil
	})
	return v, err
}

func (s *Store) Certificate(h uint64) (*ledger.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	c, err := decodeLocked(s, bCerts, h, ledger.DecodeCertificate)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	if c.Round != h {
		return nil, fmt.Errorf("storage: certs %d: %w: certificate claims round %d", h, ErrCorrupt, c.Round)
	}
	return c, nil
}

func (s *Store) Records() ([][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	recs := make([][]byte, 0, s.nextSeq-s.firstSeq)
	for seq := s.firstSeq; seq < s.nextSeq; seq++ {
		r, err := s.getLocked(bWAL, u64key(seq))
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("storage: wal: %w: record %d missing between %d and %d", ErrCorrupt, seq, s.firstSeq, s.nextSeq-1)
		}
		if err != nil {
			return nil, fmt.Errorf("storage: records: %w", err)
		}
		recs = append(recs, r)
	}
	return recs, nil
}

func (s *Store) RecordBounds() (first, next uint64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return 0, 0, s.err
	}
	return s.firstSeq, s.nextSeq, nil
}

func (s *Store) LatestSnapshot() (uint64, []byte, error) {
	if err := s.sticky(); err != nil {
		return 0, nil, err
	}
	return s.snaps.latest()
}

func (s *Store) SnapshotChunk(round uint64, index int, chunkSize int) ([]byte, int, error) {
	if chunkSize <= 0 {
		return nil, 0, fmt.Errorf("storage: snapshot chunk size %d must be positive", chunkSize)
	}
	p, err := s.snaps.get(round)
	if err != nil {
		return nil, 0, err
	}
	total := max(1, (len(p)+chunkSize-1)/chunkSize)
	if index < 0 || index >= total {
		return nil, 0, fmt.Errorf("storage: snapshot %d: chunk %d out of range [0, %d)", round, index, total)
	}
	lo := index * chunkSize
	return append([]byte(nil), p[lo:min(len(p), lo+chunkSize)]...), total, nil
}

func (s *Store) GetMeta(key string) ([]byte, error) {
	v, err := s.get(bMeta, []byte(key))
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	return v, nil
}

// ---- values ----

// sealBytes is the CRC-32C header every stored value carries.
const sealBytes = 4

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func seal(p []byte) []byte {
	v := make([]byte, sealBytes, sealBytes+len(p))
	binary.BigEndian.PutUint32(v, crc32.Checksum(p, castagnoli))
	return append(v, p...)
}

func unseal(v []byte) ([]byte, error) {
	if len(v) < sealBytes {
		return nil, fmt.Errorf("%w: %d-byte value has no checksum header", ErrCorrupt, len(v))
	}
	p := v[sealBytes:]
	if crc32.Checksum(p, castagnoli) != binary.BigEndian.Uint32(v) {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	return p, nil
}

// ---- buckets and the write overlay ----

type bucket uint8

const (
	bWAL bucket = iota
	bBlocks
	bCerts
	bMeta
	bSys
	numBuckets
)

// Data directories written before snapshots became files also hold a
// "snapshots" bucket; nothing reads it (restart replays the blocks instead).
var bucketNames = [numBuckets]string{"wal", "blocks", "certs", "meta", "sys"}

func (b bucket) String() string { return bucketNames[b] }

func keyString(b bucket, k []byte) string {
	if b != bMeta && b != bSys && len(k) == 8 {
		return fmt.Sprint(binary.BigEndian.Uint64(k))
	}
	return fmt.Sprintf("%q", k)
}

// layer is a set of uncommitted writes: per bucket, a floor (every key below
// it deleted) and then point writes on top (nil value: deleted). Committing a
// layer applies the floor first, then the point writes; deleteBelow drops
// point writes below the new floor, so that order is the order they were made.
type layer struct {
	floors [numBuckets][]byte
	vals   [numBuckets]map[string][]byte
	n      int // writes
	bytes  int // bytes put (an overestimate after overwrites)
}

// maxPendingBytes bounds the GroupCommit layer; a write that crosses it
// commits synchronously.
const maxPendingBytes = 64 << 20

func newLayer() *layer { return &layer{} }

func (l *layer) empty() bool { return l.n == 0 }

func (l *layer) put(b bucket, k, v []byte) {
	if l.vals[b] == nil {
		l.vals[b] = make(map[string][]byte)
	}
	l.vals[b][string(k)] = v
	l.n++
	l.bytes += len(k) + len(v)
}

func (l *layer) deleteBelow(b bucket, k []byte) {
	for key := range l.vals[b] {
		if key < string(k) {
			delete(l.vals[b], key)
		}
	}
	if bytes.Compare(k, l.floors[b]) > 0 {
		l.floors[b] = k
	}
	l.n++
}

// lookup says what this layer decides for key: (v, true) written here,
// (nil, true) deleted here, (nil, false) not touched.
func (l *layer) lookup(b bucket, k []byte) ([]byte, bool) {
	if v, ok := l.vals[b][string(k)]; ok {
		return v, true
	}
	if bytes.Compare(k, l.floors[b]) < 0 {
		return nil, true
	}
	return nil, false
}

// engine is the committed state: bbolt on disk, or maps in memory.
type engine interface {
	// apply commits l atomically and durably.
	apply(l *layer) error
	// view calls fn with the value under key, valid only during fn.
	view(b bucket, key []byte, fn func(v []byte) error) (found bool, err error)
	forEachKey(b bucket, fn func(k []byte) error) error
	last(b bucket) (key []byte, ok bool, err error)
	close() error
}
