package app

import (
	"sync"
	"sync/atomic"
)

// A process that runs many replicas of one application — the simulator runs
// up to 128 in one process — has every replica expand the same elements:
// each executed write is a Remove and an Add, SHAKE256 to 2 KiB each, and at
// n = 32 that was 28% of the simulator's CPU time (`braid bench --sim --n 32
// --m 22`, pprof). Expansion is a pure function of (tag, element), so a
// shared memo changes no digest, only who pays for it. Production replicas
// run one application each and leave it off.
type expansionCache struct {
	mu       sync.Mutex
	cur, old map[string]*[LtHashBytes]byte
	limit    int // entries per generation
}

var sharedExpansions atomic.Pointer[expansionCache]

// ShareExpansions makes every LtHash in the process share expanded
// elements, keeping at most 2·entries of them (2 KiB each): the current
// generation and the one before, so an element expanded by one replica is
// still there when the others execute the same write. entries ≤ 0 turns
// sharing off. Safe to call at any time, from any goroutine.
func ShareExpansions(entries int) {
	if entries <= 0 {
		sharedExpansions.Store(nil)
		return
	}
	if c := sharedExpansions.Load(); c != nil && c.limit == entries {
		return
	}
	sharedExpansions.Store(&expansionCache{cur: make(map[string]*[LtHashBytes]byte), limit: entries})
}

func (c *expansionCache) get(key []byte) *[LtHashBytes]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.cur[string(key)]; ok {
		return v
	}
	if v, ok := c.old[string(key)]; ok {
		c.putLocked(key, v)
		return v
	}
	return nil
}

func (c *expansionCache) put(key []byte, v *[LtHashBytes]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(key, v)
}

func (c *expansionCache) putLocked(key []byte, v *[LtHashBytes]byte) {
	if len(c.cur) >= c.limit {
		c.old, c.cur = c.cur, make(map[string]*[LtHashBytes]byte, c.limit)
	}
	c.cur[string(key)] = v
}
