package storage

import (
	"bytes"
	"sort"
	"sync"
)

// Memory is a Store kept in memory, for simulations and tests. What Sync (or
// a PerBatch write) committed survives Crash; what was still pending under
// GroupCommit does not.
type Memory struct {
	*Store
	eng *memEngine
}

// NewMemory returns an empty in-memory store. Under GroupCommit it never
// commits on its own (the simulator owns time): writes stay pending until
// Sync.
func NewMemory(opts Options) (*Memory, error) {
	eng := &memEngine{}
	s, err := newStore(eng, &memSnaps{}, opts, false)
	if err != nil {
		return nil, err
	}
	return &Memory{Store: s, eng: eng}, nil
}

// Crash models a power loss followed by a restart: every write not yet
// committed is lost, the rest is kept, and the store is usable again (even
// after Close).
func (m *Memory) Crash() {
	s := m.Store
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending, s.flushing, s.err = newLayer(), nil, nil
	if err := s.load(); err != nil {
		s.err = err
	}
}

type memEngine struct {
	mu sync.RWMutex
	m  [numBuckets]map[string][]byte
}

func (e *memEngine) apply(l *layer) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for b := bucket(0); b < numBuckets; b++ {
		if f := l.floors[b]; f != nil {
			for k := range e.m[b] {
				if k < string(f) {
					delete(e.m[b], k)
				}
			}
		}
		for k, v := range l.vals[b] {
			if e.m[b] == nil {
				e.m[b] = make(map[string][]byte)
			}
			if v == nil { // a point delete
				delete(e.m[b], k)
				continue
			}
			e.m[b][k] = v // layers are never modified once committed
		}
	}
	return nil
}

func (e *memEngine) view(b bucket, key []byte, fn func(v []byte) error) (bool, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	v, ok := e.m[b][string(key)]
	if !ok {
		return false, nil
	}
	return true, fn(v)
}

func (e *memEngine) forEachKey(b bucket, fn func(k []byte) error) error {
	e.mu.RLock()
	keys := make([]string, 0, len(e.m[b]))
	for k := range e.m[b] {
		keys = append(keys, k)
	}
	e.mu.RUnlock()
	sort.Strings(keys)
	for _, k := range keys {
		if err := fn([]byte(k)); err != nil {
			return err
		}
	}
	return nil
}

func (e *memEngine) last(b bucket) ([]byte, bool, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	var best []byte
	for k := range e.m[b] {
		if best == nil || bytes.Compare([]byte(k), best) > 0 {
			best = []byte(k)
		}
	}
	return best, best != nil, nil
}

func (e *memEngine) close() error { return nil }
