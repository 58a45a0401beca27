package storage

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// FileName is the database file inside the directory given to Open.
const FileName = "braid.db"

// Open opens (creating if needed) the store in dir. Only one process may
// have it open; a second Open fails after a second instead of waiting.
func Open(dir string, opts Options) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	path := filepath.Join(dir, FileName)
	var db *bolt.DB
	err := guarded(func() (err error) {
		db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", path, err)
	}
	e := &boltEngine{db: db}
	err = e.update(func(tx *bolt.Tx) error {
		for _, name := range bucketNames {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return fmt.Errorf("bucket %s: %w", name, err)
			}
		}
		return nil
	})
	if err == nil {
		var snaps *fileSnaps
		if snaps, err = openFileSnaps(filepath.Join(dir, snapDir)); err == nil {
			var j *journaled
			if j, err = openJournal(dir, e); err == nil {
				var s *Store
				if s, err = newStore(j, snaps, opts, true); err == nil {
					return s, nil
				}
				j.file.Close()
			}
		}
	}
	db.Close()
	return nil, fmt.Errorf("storage: open %s: %w", path, err)
}

type boltEngine struct{ db *bolt.DB }

// guarded runs fn, turning a bbolt panic (it panics on some structurally
// corrupt pages) and a fault on the memory-mapped file (a corrupt page can
// point past the mapping) into an error.
func guarded(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: database file: %v", ErrCorrupt, r)
		}
	}()
	return fn()
}

func (e *boltEngine) update(fn func(tx *bolt.Tx) error) error {
	return guarded(func() error { return e.db.Update(fn) })
}

func (e *boltEngine) viewTx(fn func(tx *bolt.Tx) error) error {
	return guarded(func() error { return e.db.View(fn) })
}

func bkt(tx *bolt.Tx, b bucket) (*bolt.Bucket, error) {
	if x := tx.Bucket([]byte(bucketNames[b])); x != nil {
		return x, nil
	}
	return nil, fmt.Errorf("%w: bucket %s missing", ErrCorrupt, b)
}

func (e *boltEngine) apply(l *layer) error {
	return e.update(func(tx *bolt.Tx) error {
		for b := bucket(0); b < numBuckets; b++ {
			if l.floors[b] == nil && len(l.vals[b]) == 0 {
				continue
			}
			x, err := bkt(tx, b)
			if err != nil {
				return err
			}
			if b != bMeta && b != bSys {
				// Keyed by an increasing number and written at the end:
				// a page split by an append is never written again, so
				// leave it full (bbolt's default half-fill doubles the file).
				x.FillPercent = 1.0
			}
			if f := l.floors[b]; f != nil {
				var dead [][]byte
				c := x.Cursor()
				for k, _ := c.First(); k != nil && bytes.Compare(k, f) < 0; k, _ = c.Next() {
					dead = append(dead, append([]byte(nil), k...))
				}
				for _, k := range dead {
					if err := x.Delete(k); err != nil {
						return fmt.Errorf("%s %s: %w", b, keyString(b, k), err)
					}
				}
			}
			// Sorted, so appends (blocks, WAL records) fill pages in
			// order instead of splitting them at random.
			keys := make([]string, 0, len(l.vals[b]))
			for k := range l.vals[b] {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				if l.vals[b][k] == nil { // a point delete
					if err := x.Delete([]byte(k)); err != nil {
						return fmt.Errorf("%s %s: %w", b, keyString(b, []byte(k)), err)
					}
					continue
				}
				if err := x.Put([]byte(k), l.vals[b][k]); err != nil {
					return fmt.Errorf("%s %s: %w", b, keyString(b, []byte(k)), err)
				}
			}
		}
		return nil
	})
}

func (e *boltEngine) view(b bucket, key []byte, fn func(v []byte) error) (found bool, err error) {
	err = e.viewTx(func(tx *bolt.Tx) error {
		x, err := bkt(tx, b)
		if err != nil {
			return err
		}
		v := x.Get(key)
		if v == nil {
			return nil
		}
		if len(v) > sealBytes+MaxValueBytes {
			return fmt.Errorf("%s %s: %w: value claims %d bytes", b, keyString(b, key), ErrCorrupt, len(v))
		}
		found = true
		return fn(v)
	})
	return found, err
}

func (e *boltEngine) forEachKey(b bucket, fn func(k []byte) error) error {
	return e.viewTx(func(tx *bolt.Tx) error {
		x, err := bkt(tx, b)
		if err != nil {
			return err
		}
		c := x.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if err := fn(k); err != nil {
				return err
			}
		}
		return nil
	})
}

func (e *boltEngine) last(b bucket) (key []byte, ok bool, err error) {
	err = e.viewTx(func(tx *bolt.Tx) error {
		x, err := bkt(tx, b)
		if err != nil {
			return err
		}
		if k, _ := x.Cursor().Last(); k != nil {
			if b != bMeta && b != bSys && len(k) != 8 {
				return fmt.Errorf("%w: %s key %x is not 8 bytes", ErrCorrupt, b, k)
			}
			key, ok = append([]byte(nil), k...), true
		}
		return nil
	})
	return key, ok, err
}

func (e *boltEngine) close() error { return e.db.Close() }
