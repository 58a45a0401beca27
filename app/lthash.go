package app

import (
	"crypto/sha256"
	"crypto/sha3"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
)

const (
	// LtHashLanes is the number of 16-bit lanes in an LtHash state.
	LtHashLanes = 1024
	// LtHashBytes is the size of an element hash: one uint16 per lane.
	LtHashBytes = 2 * LtHashLanes
)

// LtHash is an incremental, homomorphic multiset hash ("LtHash16", Bellare &
// Micciancio 1997; parameters from Lewi, Kim, Maykov & Weis, "Securing Update
// Propagation with Homomorphic Hashing", 2019). It lets an application keep a
// digest of its whole state up to date in O(size of the change) per op:
// changing a record is Remove(old record) + Add(new record), and the digest
// depends only on the multiset of records present, not on the order in which
// they were inserted or removed. That is what lets replicas that took
// different paths to the same state (e.g. one restored a snapshot, one
// executed the log) compare a 32-byte checkpoint digest.
//
// Construction: the state is a vector of LtHashLanes uint16 lanes. An
// element e is hashed to SHAKE256(tag || e) expanded to LtHashBytes bytes,
// read as little-endian uint16s; Add adds it lane-wise mod 2^16 and Remove
// subtracts it. Sum is SHA-256 of the lanes (little-endian), a compact
// commitment to the full 2 KiB vector. The tag is a constant per-application
// domain separator; because it is fixed for the lifetime of an LtHash, the
// tag || e concatenation is unambiguous. Applications must encode elements
// unambiguously themselves (length-prefix variable fields).
//
// Why not XOR or a single modular sum: an XOR multiset hash is linear over
// GF(2), so given ~n+1 element hashes an attacker finds, by Gaussian
// elimination, a subset whose XOR equals any target — forging a state with
// the same digest is polynomial-time. A sum modulo a single word-sized
// modulus (AdHash with small modulus) falls to Wagner's generalized-birthday
// (k-tree) attack in roughly 2^(b/(1+lg k)) work. A vector of many small
// lanes is a lattice problem instead (finding a short combination that sums
// to zero in all 1024 lanes at once), for which the best known attacks are
// far out of reach at these parameters (~200-bit security per Lewi et al.).
//
// Caveat inherent to any mod-2^16 multiset hash: adding the same element
// 65536 times is the identity. Braid's applications hash records keyed by a
// unique key, so no element is ever present more than once.
//
// An LtHash is not safe for concurrent mutation; Sum may run concurrently
// with other Sum calls.
type LtHash struct {
	tag   []byte
	lanes [LtHashLanes]uint16
	xof   *sha3.SHAKE       // reused across elements to avoid allocation
	buf   [LtHashBytes]byte // scratch for the expanded element hash
	key   []byte            // scratch: tag || element, with ShareExpansions
}

// NewLtHash returns the hash of the empty multiset under domain tag.
func NewLtHash(tag string) *LtHash {
	return &LtHash{tag: []byte(tag), xof: sha3.NewSHAKE256()}
}

// expand returns SHAKE256(tag || parts[0] || parts[1] ...), in h.buf or,
// with ShareExpansions, from the shared memo (never to be written). The
// element is the concatenation of parts; accepting parts lets callers hash
// a record without first assembling it into a temporary buffer.
func (h *LtHash) expand(parts [][]byte) *[LtHashBytes]byte {
	c := sharedExpansions.Load()
	if c != nil {
		h.key = append(h.key[:0], h.tag...)
		for _, p := range parts {
			h.key = append(h.key, p...)
		}
		if v := c.get(h.key); v != nil {
			return v
		}
	}
	h.xof.Reset()
	h.xof.Write(h.tag)
	for _, p := range parts {
		h.xof.Write(p)
	}
	h.xof.Read(h.buf[:])
	if c != nil {
		v := h.buf
		c.put(h.key, &v)
	}
	return &h.buf
}

// Add adds one element (the concatenation of parts) to the multiset.
func (h *LtHash) Add(parts ...[]byte) {
	e := h.expand(parts)
	for i := range h.lanes {
		h.lanes[i] += binary.LittleEndian.Uint16(e[2*i:])
	}
}

// Remove removes one element (the concatenation of parts) from the
// multiset. Removing an element that was never added is not an error: the
// hash is of a multiset with signed multiplicities, and a later Add
// restores it.
func (h *LtHash) Remove(parts ...[]byte) {
	e := h.expand(parts)
	for i := range h.lanes {
		h.lanes[i] -= binary.LittleEndian.Uint16(e[2*i:])
	}
}

// LtHashOf is the hash of n elements under tag, where add(h, i) adds the
// i-th to h. Addition commutes, so the elements are hashed in parallel, on
// every core, and the partial sums added: restoring a snapshot recomputes
// its digest from every record, which is most of a replica's restart
// (SHAKE256 to 2 KiB per element; 5 s of the 7 s restart after the
// ten-minute benchmark, single-threaded). add must only read shared data.
func LtHashOf(tag string, n int, add func(h *LtHash, i int)) *LtHash {
	const minChunk = 4096
	workers := min(runtime.GOMAXPROCS(0), max(1, n/minChunk))
	parts := make([]*LtHash, workers)
	var wg sync.WaitGroup
	for w := range workers {
		parts[w] = NewLtHash(tag)
		lo, hi := n*w/workers, n*(w+1)/workers
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				add(parts[w], i)
			}
		})
	}
	wg.Wait()
	sum := parts[0]
	for _, p := range parts[1:] {
		for i := range sum.lanes {
			sum.lanes[i] += p.lanes[i]
		}
	}
	return sum
}

// Clone returns an independent copy of h (its own scratch state, so the
// two may be used on different goroutines).
func (h *LtHash) Clone() *LtHash {
	return &LtHash{tag: h.tag, lanes: h.lanes, xof: sha3.NewSHAKE256()}
}

// Reset returns h to the hash of the empty multiset.
func (h *LtHash) Reset() { h.lanes = [LtHashLanes]uint16{} }

// Equal reports whether h and o have identical lanes (and therefore equal
// sums).
func (h *LtHash) Equal(o *LtHash) bool { return h.lanes == o.lanes }

// Lanes returns the full state, LtHashBytes bytes (little-endian lanes):
// what a replica's own snapshot keeps so that restoring it need not rehash
// every record (see LtHashFromLanes).
func (h *LtHash) Lanes() []byte {
	b := make([]byte, LtHashBytes)
	for i, v := range h.lanes {
		binary.LittleEndian.PutUint16(b[2*i:], v)
	}
	return b
}

// LtHashFromLanes is the hash whose state Lanes returned. Nothing ties the
// lanes to any records: a caller that did not produce them itself must
// check them against the records (by recomputing) before relying on them.
func LtHashFromLanes(tag string, b []byte) (*LtHash, error) {
	if len(b) != LtHashBytes {
		return nil, fmt.Errorf("lthash: %d bytes of lanes, want %d", len(b), LtHashBytes)
	}
	h := NewLtHash(tag)
	for i := range h.lanes {
		h.lanes[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return h, nil
}

// AdoptLanes is the restore half of keeping lanes in a snapshot: the hash
// to install now (from lanes), and a check that rehashes the restored
// records (rehash, which must only read them) and reports whether lanes
// lied. Applications' RestoreWithDigest share it.
func AdoptLanes(tag string, lanes []byte, rehash func() *LtHash) (hash *LtHash, check func() error, err error) {
	hash, err = LtHashFromLanes(tag, lanes)
	if err != nil {
		return nil, nil, err
	}
	want := hash.Clone()
	return hash, func() error {
		if !rehash().Equal(want) {
			return fmt.Errorf("lthash: the snapshot's digest lanes do not match its records")
		}
		return nil
	}, nil
}

// Sum returns SHA-256 of the lanes, each encoded little-endian.
func (h *LtHash) Sum() [32]byte {
	var b [LtHashBytes]byte
	for i, v := range h.lanes {
		binary.LittleEndian.PutUint16(b[2*i:], v)
	}
	return sha256.Sum256(b[:])
}
