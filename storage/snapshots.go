package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/braid-bft/braid/internal/atomicfile"
)

// Snapshots live beside the database, one file each, not inside it. A
// snapshot is the whole application state — tens of megabytes under load —
// and in bbolt it cost a copy under the store's lock, a transaction that
// every consensus record had to wait behind (70–350 ms for 50 MiB on the
// benchmark VM), and as much free space again inside the file once the
// previous snapshot was dropped. As a file it is written, fsynced and
// renamed into place by whoever calls PutSnapshot (a worker, off the
// replica's loop) while commits go on, and deleting it gives the space back.
//
// File: snapshots/<round, 20 digits>.snap holding snapMagic, the round, the
// payload length, a CRC-32C of the payload, then the payload. A file is
// complete once renamed into place, so a crash leaves either the previous
// set or the new one; a stray temporary file is ignored and removed.

const (
	snapDir       = "snapshots"
	snapExt       = ".snap"
	snapMagic     = "BRSN"
	snapHeaderLen = len(snapMagic) + 8 + 8 + 4
)

// snapStore keeps snapshots by round. Every method is safe for concurrent
// use, and put is durable when it returns.
type snapStore interface {
	put(round uint64, data []byte) error
	latest() (round uint64, data []byte, err error) // ErrNotFound if none
	get(round uint64) ([]byte, error)               // ErrNotFound if absent
	truncateBefore(round uint64) error
}

func encodeSnapFile(round uint64, data []byte) []byte {
	b := make([]byte, 0, snapHeaderLen+len(data))
	b = append(b, snapMagic...)
	b = binary.BigEndian.AppendUint64(b, round)
	b = binary.BigEndian.AppendUint64(b, uint64(len(data)))
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(data, castagnoli))
	return append(b, data...)
}

// decodeSnapFile checks a snapshot file's framing and checksum.
func decodeSnapFile(round uint64, b []byte) ([]byte, error) {
	if len(b) < snapHeaderLen || string(b[:len(snapMagic)]) != snapMagic {
		return nil, fmt.Errorf("snapshot %d: %w: bad header", round, ErrCorrupt)
	}
	h := b[len(snapMagic):]
	if r := binary.BigEndian.Uint64(h); r != round {
		return nil, fmt.Errorf("snapshot %d: %w: file holds round %d", round, ErrCorrupt, r)
	}
	n, sum, p := binary.BigEndian.Uint64(h[8:]), binary.BigEndian.Uint32(h[16:]), b[snapHeaderLen:]
	if n != uint64(len(p)) {
		return nil, fmt.Errorf("snapshot %d: %w: %d payload bytes, header says %d", round, ErrCorrupt, len(p), n)
	}
	if crc32.Checksum(p, castagnoli) != sum {
		return nil, fmt.Errorf("snapshot %d: %w: checksum mismatch", round, ErrCorrupt)
	}
	return p, nil
}

// fileSnaps keeps snapshots as files in dir.
type fileSnaps struct {
	dir string
	mu  sync.Mutex // serialises renames and deletions with listings
}

func openFileSnaps(dir string) (*fileSnaps, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	f := &fileSnaps{dir: dir}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	for _, e := range entries { // a crash mid-write leaves a temporary file
		if strings.HasSuffix(e.Name(), ".tmp") {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return nil, fmt.Errorf("storage: remove stale %s: %w", e.Name(), err)
			}
		}
	}
	return f, nil
}

func (f *fileSnaps) name(round uint64) string {
	return filepath.Join(f.dir, fmt.Sprintf("%020d%s", round, snapExt))
}

func (f *fileSnaps) put(round uint64, data []byte) error {
	final := f.name(round)
	tmp, err := os.CreateTemp(f.dir, filepath.Base(final)+".*.tmp")
	if err != nil {
		return fmt.Errorf("storage: snapshot %d: %w", round, err)
	}
	_, err = tmp.Write(encodeSnapFile(round, data))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("storage: snapshot %d: %w", round, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := os.Rename(tmp.Name(), final); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("storage: snapshot %d: %w", round, err)
	}
	return syncDir(f.dir)
}

// syncDir makes a rename or removal in dir durable.
func syncDir(dir string) error {
	if err := atomicfile.SyncDir(dir); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	return nil
}

// rounds lists the stored snapshots' rounds, ascending. The caller holds mu.
func (f *fileSnaps) rounds() ([]uint64, error) {
	entries, err := os.ReadDir(f.dir)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	var out []uint64
	for _, e := range entries {
		base, ok := strings.CutSuffix(e.Name(), snapExt)
		if !ok || len(base) != 20 {
			continue
		}
		r, err := strconv.ParseUint(base, 10, 64)
		if err != nil {
			continue
		}
		out = append(out, r)
	}
	slices.Sort(out)
	return out, nil
}

func (f *fileSnaps) get(round uint64) ([]byte, error) {
	path := f.name(round)
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("storage: snapshot %d: %w", round, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	if fi.Size() > int64(snapHeaderLen+MaxValueBytes) {
		return nil, fmt.Errorf("storage: snapshot %d: %w: %d-byte file", round, ErrCorrupt, fi.Size())
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("storage: snapshot %d: %w", round, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	p, err := decodeSnapFile(round, b)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	return p, nil
}

func (f *fileSnaps) latest() (uint64, []byte, error) {
	f.mu.Lock()
	rounds, err := f.rounds()
	f.mu.Unlock()
	if err != nil {
		return 0, nil, err
	}
	if len(rounds) == 0 {
		return 0, nil, fmt.Errorf("storage: no snapshot: %w", ErrNotFound)
	}
	r := rounds[len(rounds)-1]
	p, err := f.get(r)
	return r, p, err
}

func (f *fileSnaps) truncateBefore(round uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	rounds, err := f.rounds()
	if err != nil {
		return err
	}
	removed := false
	for _, r := range rounds {
		if r >= round {
			break
		}
		if err := os.Remove(f.name(r)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("storage: %w", err)
		}
		removed = true
	}
	if removed {
		return syncDir(f.dir)
	}
	return nil
}

// memSnaps keeps snapshots in memory, durable from put on (a simulated
// crash keeps them).
type memSnaps struct {
	mu    sync.Mutex
	snaps map[uint64][]byte
}

func (m *memSnaps) put(round uint64, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.snaps == nil {
		m.snaps = map[uint64][]byte{}
	}
	m.snaps[round] = slices.Clone(data)
	return nil
}

func (m *memSnaps) get(round uint64) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.snaps[round]
	if !ok {
		return nil, fmt.Errorf("storage: snapshot %d: %w", round, ErrNotFound)
	}
	return slices.Clone(p), nil
}

func (m *memSnaps) latest() (uint64, []byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var best uint64
	found := false
	for r := range m.snaps {
		if !found || r > best {
			best, found = r, true
		}
	}
	if !found {
		return 0, nil, fmt.Errorf("storage: no snapshot: %w", ErrNotFound)
	}
	return best, slices.Clone(m.snaps[best]), nil
}

func (m *memSnaps) truncateBefore(round uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for r := range m.snaps {
		if r < round {
			delete(m.snaps, r)
		}
	}
	return nil
}
