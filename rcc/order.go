package rcc

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"math/bits"
)

// This file implements the execution order of Figure 3 / Section 3.1 of the
// paper. Let S be the round's non-empty batches ordered by instance id and
// k = |S|. Every replica executes them in the order f_S(Hash(S) mod k!), where
//
//	f_S(i) = S                          if |S| = 1
//	f_S(i) = f_{S \ S[q]}(r) ⊕ S[q]     if |S| > 1
//
// with q = i div (|S|-1)!, r = i mod (|S|-1)! and ⊕ appending at the end.
//
// Unrolling the recursion shows that the quotients q_k, q_{k-1}, ..., q_2
// taken at the successive levels are exactly the digits of i in the
// factorial number system, i = Σ_{n=2..k} q_n·(n-1)! with 0 ≤ q_n < n, and
// that the element picked at level n lands at position n-1 of the result.
// The digits can be read off from the least significant end by dividing by
// the small radices 2, 3, ..., k in turn (q_n = i mod n, i = i div n), so no
// division by a big factorial is ever needed. Dividing by radices 2..k also
// reduces i modulo k! for free: what is left in i afterwards is i div k!,
// and the digits describe i mod k!. That is what makes ExecutionOrder cheap
// and allocation-free apart from its result.

// MaxOrderSize is the largest number of batches per round that Permutation
// and ExecutionOrder accept. It bounds the stack scratch space used by the
// ordering code; 1024 comfortably exceeds any realistic number of concurrent
// consensus instances.
const MaxOrderSize = 1024

// maxIndexLimbs is the number of 64-bit limbs needed to hold any valid index
// i < MaxOrderSize!. log2(1024!) ≈ 8769.0, so 1024! has 8770 bits, which fits
// in 138 limbs (8832 bits). TestMaxIndexLimbs checks this.
const maxIndexLimbs = 138

var (
	// ErrOrderSize reports a number of batches outside [1, MaxOrderSize].
	ErrOrderSize = errors.New("rcc: order size out of range")
	// ErrOrderIndex reports a permutation index outside [0, k!).
	ErrOrderIndex = errors.New("rcc: permutation index out of range")
	// ErrSeedEntries reports seed entries that are not strictly increasing
	// by instance id.
	ErrSeedEntries = errors.New("rcc: seed entries not strictly increasing by instance")
)

// roundSeedTag domain-separates RoundSeed hashes from every other SHA-256
// use in Braid (batch digests, block hashes, ...), so a value computed for
// one purpose can never be replayed as an ordering seed. It has a fixed
// length and comes first, so it needs no length prefix. Bump the version if
// the encoding below ever changes: all replicas must agree on it.
const roundSeedTag = "braid/rcc/execution-order-seed/v1"

// SeedEntry identifies one decided, non-empty batch of a round: the consensus
// instance that decided it and the digest of the batch.
type SeedEntry struct {
	Instance uint32
	Digest   [32]byte
}

// RoundSeed derives the ordering seed — Hash(S) in the paper — for the given
// round from the round's non-empty decided batches.
//
// The encoding is SHA-256 over, in order: roundSeedTag; round as a uint64;
// len(entries) as a uint64; then for each entry its Instance as a uint32 and
// its 32-byte Digest. All integers are fixed-width big-endian, so the encoding
// is injective and every replica hashes the same bytes.
//
// entries must be exactly the round's non-empty batches, sorted by strictly
// increasing Instance — the order S of the paper, which is also the order
// whose indices ExecutionOrder returns. RoundSeed neither sorts nor checks
// this (a different order simply yields a different seed); callers that build
// entries from untrusted or unordered data must call ValidateSeedEntries
// first.
//
// This is deliberately the one place where the seed is derived: to swap in a
// stronger source of randomness (e.g. a threshold-signature beacon computed
// over the decided round, which no single replica can predict before the
// round is decided) only this function has to change.
//
// Known limit of the plain hash: the seed is a public function of the round's
// contents. A faulty primary that proposes last in a round sees the other
// instances' batches before choosing its own, and can grind its own batch
// (e.g. reorder or pad transactions) until the hash places its batch at an
// execution position it likes. It cannot fix its position without changing
// its batch, and every attempt costs a hash, but grinding over k positions is
// cheap. Only an unpredictable source such as the beacon above removes this.
func RoundSeed(round uint64, entries []SeedEntry) [32]byte {
	h := sha256.New()
	var buf [36]byte
	h.Write([]byte(roundSeedTag))
	binary.BigEndian.PutUint64(buf[0:8], round)
	binary.BigEndian.PutUint64(buf[8:16], uint64(len(entries)))
	h.Write(buf[:16])
	for _, e := range entries {
		binary.BigEndian.PutUint32(buf[0:4], e.Instance)
		copy(buf[4:36], e.Digest[:])
		h.Write(buf[:36])
	}
	var seed [32]byte
	h.Sum(seed[:0])
	return seed
}

// ValidateSeedEntries returns an error wrapping ErrSeedEntries unless the
// entries' instance ids are strictly increasing, i.e. the entries are sorted
// by instance and no instance appears twice. This is the precondition of
// RoundSeed.
func ValidateSeedEntries(entries []SeedEntry) error {
	for j := 1; j < len(entries); j++ {
		if entries[j].Instance <= entries[j-1].Instance {
			return fmt.Errorf("%w: entry %d has instance %d after instance %d",
				ErrSeedEntries, j, entries[j].Instance, entries[j-1].Instance)
		}
	}
	return nil
}

// Permutation returns f_S(i) for S = [0, 1, ..., k-1]: element j of the result
// is the index into S of the batch to execute j-th. It returns an error
// wrapping ErrOrderSize if k is outside [1, MaxOrderSize], and one wrapping
// ErrOrderIndex if i is nil or outside [0, k!). Permutation is a bijection
// from [0, k!) onto the permutations of S (Lemma 3.3). It does not modify i.
func Permutation(k int, i *big.Int) ([]int, error) {
	if k < 1 || k > MaxOrderSize {
		return nil, fmt.Errorf("%w: k = %d, want 1 <= k <= %d", ErrOrderSize, k, MaxOrderSize)
	}
	if i == nil || i.Sign() < 0 {
		return nil, fmt.Errorf("%w: index %v is negative or nil", ErrOrderIndex, i)
	}
	out := make([]int, k)
	var ok bool
	if i.IsUint64() {
		// Fast path: every index below 2^64, in particular every index for
		// k <= 20 (20! < 2^64 < 21!).
		ok = factorialDigitsUint64(out, i.Uint64())
	} else {
		if i.BitLen() > 64*maxIndexLimbs {
			// i >= 2^(64*maxIndexLimbs) > MaxOrderSize! >= k!.
			return nil, fmt.Errorf("%w: index has %d bits, k = %d", ErrOrderIndex, i.BitLen(), k)
		}
		var buf [maxIndexLimbs]uint64
		limbs := limbsFromBig(buf[:], i)
		ok = factorialDigitsLimbs(out, limbs)
	}
	if !ok {
		// Something was left over after dividing by 2..k: i >= k!.
		return nil, fmt.Errorf("%w: index >= factorial(%d)", ErrOrderIndex, k)
	}
	digitsToPermutation(out)
	return out, nil
}

// ExecutionOrder returns the order in which to execute a round's k non-empty
// batches: f_S(seed mod k!), with seed read as a 256-bit big-endian unsigned
// integer and S = [0, ..., k-1] standing for the batches sorted by instance
// id (the order given to RoundSeed). Element j of the result is the index
// into S of the batch to execute j-th.
//
// k = 0 yields an empty, non-nil slice. k < 0 or k > MaxOrderSize yields nil,
// which callers must treat as an error; the function never panics.
//
// The modulo bias of reducing a 256-bit hash mod k! is below k!/2^256, which
// is negligible for small k. For k >= 58, k! > 2^256 and the reduction is the
// identity: only 2^256 of the k! orders are reachable, which is irrelevant
// for unpredictability.
func ExecutionOrder(seed [32]byte, k int) []int {
	if k < 0 || k > MaxOrderSize {
		return nil
	}
	out := make([]int, k)
	if k == 0 {
		return out
	}
	var limbs [4]uint64
	for j := range limbs {
		limbs[3-j] = binary.BigEndian.Uint64(seed[8*j:])
	}
	// The quotient left over (seed div k!) is discarded: that is the
	// reduction mod k!.
	factorialDigitsLimbs(out, limbs[:])
	digitsToPermutation(out)
	return out
}

// factorialDigitsUint64 writes the factorial-base digits of i into out:
// out[n-1] = q_n for n = 2..len(out), and out[0] = 0. It reports whether
// i < len(out)!, i.e. whether nothing is left after dividing by 2..len(out).
func factorialDigitsUint64(out []int, i uint64) bool {
	k := len(out)
	if k > 0 {
		out[0] = 0
	}
	for n := 2; n <= k; n++ {
		q := i / uint64(n)
		out[n-1] = int(i - q*uint64(n)) // i mod n, without a second division
		i = q
	}
	return i == 0
}

// factorialDigitsLimbs is factorialDigitsUint64 for an arbitrary-precision
// value given as little-endian 64-bit limbs, which it overwrites with the
// quotient. Instead of one multi-limb division per radix, it groups
// consecutive radices n, n+1, ..., n+m-1 whose product P fits in a uint64,
// takes one multi-limb division by P, and then splits the uint64 remainder
// into m digits with single-word arithmetic. For k = 128 that is about 14
// multi-limb divisions instead of 127.
func factorialDigitsLimbs(out []int, limbs []uint64) bool {
	k := len(out)
	if k > 0 {
		out[0] = 0
	}
	nl := len(limbs)
	for nl > 0 && limbs[nl-1] == 0 {
		nl--
	}
	n := 2
	for n <= k {
		if nl == 0 {
			// The value is exhausted: all remaining digits are zero.
			clear(out[n-1:])
			return true
		}
		lo := n
		p := uint64(n)
		for n++; n <= k; n++ {
			hi, prod := bits.Mul64(p, uint64(n))
			if hi != 0 {
				break
			}
			p = prod
		}
		// Radices lo..n-1 have product p. Divide limbs[:nl] by p in place.
		var rem uint64
		for j := nl - 1; j >= 0; j-- {
			limbs[j], rem = bits.Div64(rem, limbs[j], p)
		}
		for nl > 0 && limbs[nl-1] == 0 {
			nl--
		}
		for r := lo; r < n; r++ {
			q := rem / uint64(r)
			out[r-1] = int(rem - q*uint64(r))
			rem = q
		}
	}
	return nl == 0
}

// limbsFromBig writes i (non-negative, at most 64*len(buf) bits) into buf as
// little-endian 64-bit limbs and returns the used prefix. It works for both
// 32- and 64-bit big.Word.
func limbsFromBig(buf []uint64, i *big.Int) []uint64 {
	clear(buf)
	words := i.Bits()
	for j, w := range words {
		bit := uint(j) * bits.UintSize
		buf[bit/64] |= uint64(w) << (bit % 64)
	}
	return buf[:(len(words)*bits.UintSize+63)/64]
}

// digitsToPermutation turns the factorial-base digits produced by
// factorialDigits* (out[n-1] = q_n) into f_S(i) for S = [0..k-1], in place.
//
// Walking the recursion from the top, at level n (n = k..2) the remaining
// elements of S, in their original order, are L, and L[q_n] is placed at
// position n-1 and removed from L; the single element left goes to position
// 0. Position n-1 is written only after q_n has been read from it.
//
// The remaining elements are a bitset, so "the q-th remaining element" is a
// rank-select: skip whole words by popcount, then select inside one word
// with broadword arithmetic (selectInWord). This is O(k/64) per element with
// few unpredictable branches and no heap allocation. (A Fenwick tree is
// O(log k) per element but was measured 3-4x slower at k = 128: its
// data-dependent descent mispredicts about every other branch.)
func digitsToPermutation(out []int) {
	k := len(out)
	var set [MaxOrderSize / 64]uint64
	nw := (k + 63) / 64
	for w := range nw - 1 {
		set[w] = ^uint64(0)
	}
	if nw > 0 {
		set[nw-1] = ^uint64(0) >> uint((64-k%64)%64)
	}
	for n := k; n >= 1; n-- {
		rank := out[n-1] // q_n, 0 <= rank < n; out[0] is 0
		w := 0
		for {
			c := bits.OnesCount64(set[w])
			if rank < c {
				break
			}
			rank -= c
			w++
		}
		b := selectInWord(set[w], rank)
		set[w] &^= 1 << uint(b)
		out[n-1] = 64*w + b
	}
}

// selectInWord returns the position of the set bit of x that has exactly r
// set bits below it. It requires r < bits.OnesCount64(x).
//
// It computes all eight byte-prefix popcounts at once, uses them to find the
// byte holding the answer without branching, and finishes inside that byte.
func selectInWord(x uint64, r int) int {
	const (
		ones8 = 0x0101010101010101
		msbs8 = 0x8080808080808080
	)
	s := x - ((x >> 1) & 0x5555555555555555)
	s = (s & 0x3333333333333333) + ((s >> 2) & 0x3333333333333333)
	s = (s + (s >> 4)) & 0x0f0f0f0f0f0f0f0f
	s *= ones8 // byte j of s = popcount of bytes 0..j of x (at most 64)
	// Byte j gets its top bit set iff prefix_j <= r (no borrows cross bytes:
	// 128+r >= 128 > 64 >= prefix_j). Prefixes are non-decreasing, so these
	// are exactly the bytes wholly below the answer.
	below := ((uint64(r)*ones8 | msbs8) - s) & msbs8
	place := uint(bits.OnesCount64(below)) * 8
	r -= int((s << 8 >> place) & 0xff) // set bits in the bytes below
	b := uint8(x >> place)
	for ; r > 0; r-- {
		b &= b - 1
	}
	return int(place) + bits.TrailingZeros8(b)
}
