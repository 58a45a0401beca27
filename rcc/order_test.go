package rcc

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"
)

// rccSeed seeds every math/rand source in these tests. It is fixed so that
// the tests are deterministic; each test logs it, and a failure can be
// explored with other values via -rcc.seed.
var rccSeed = flag.Uint64("rcc.seed", 0x5eed_b4a1d, "seed for math/rand sources in rcc tests")

func newRand(t testing.TB) *rand.Rand {
	t.Helper()
	t.Logf("math/rand seed: %d (rerun with -rcc.seed=%d)", *rccSeed, *rccSeed)
	return rand.New(rand.NewPCG(*rccSeed, 0x0bd3))
}

// refFactorial computes n! independently of the code under test.
func refFactorial(n int) *big.Int {
	f := big.NewInt(1)
	for j := 2; j <= n; j++ {
		f.Mul(f, big.NewInt(int64(j)))
	}
	return f
}

// refPermutation is f_S(i) transcribed literally from Section 3.1:
//
//	f_S(i) = S                          if |S| = 1
//	f_S(i) = f_{S \ S[q]}(r) ⊕ S[q]     if |S| > 1
//
// with q = i div (|S|-1)! and r = i mod (|S|-1)!.
func refPermutation(s []int, i *big.Int) []int {
	if len(s) == 1 {
		return []int{s[0]}
	}
	q, r := new(big.Int).DivMod(i, refFactorial(len(s)-1), new(big.Int))
	qi := int(q.Int64())
	rest := append(append([]int{}, s[:qi]...), s[qi+1:]...)
	return append(refPermutation(rest, r), s[qi])
}

func identity(k int) []int {
	s := make([]int, k)
	for j := range s {
		s[j] = j
	}
	return s
}

func reversed(k int) []int {
	s := identity(k)
	slices.Reverse(s)
	return s
}

func isPermutation(p []int, k int) bool {
	if len(p) != k {
		return false
	}
	seen := make([]bool, k)
	for _, v := range p {
		if v < 0 || v >= k || seen[v] {
			return false
		}
		seen[v] = true
	}
	return true
}

// randIndex returns a uniformly random integer in [0, n).
func randIndex(rng *rand.Rand, n *big.Int) *big.Int {
	buf := make([]byte, (n.BitLen()+7)/8+8) // 64 extra bits: negligible bias
	for j := range buf {
		buf[j] = byte(rng.Uint32())
	}
	v := new(big.Int).SetBytes(buf)
	return v.Mod(v, n)
}

func randSeed(rng *rand.Rand) [32]byte {
	var s [32]byte
	for j := 0; j < 32; j += 8 {
		binary.LittleEndian.PutUint64(s[j:], rng.Uint64())
	}
	return s
}

func TestMaxIndexLimbs(t *testing.T) {
	bl := refFactorial(MaxOrderSize).BitLen()
	if bl > 64*maxIndexLimbs {
		t.Fatalf("%d! has %d bits, more than %d limbs hold", MaxOrderSize, bl, maxIndexLimbs)
	}
	if bl <= 64*(maxIndexLimbs-1) {
		t.Errorf("%d! has %d bits; maxIndexLimbs = %d is larger than needed", MaxOrderSize, bl, maxIndexLimbs)
	}
}

// TestPermutationBijectionSmall checks Lemma 3.3 exhaustively for k = 1..7:
// every i in [0, k!) yields a valid permutation, all k! results are
// distinct, and each equals the literal reference implementation.
func TestPermutationBijectionSmall(t *testing.T) {
	for k := 1; k <= 7; k++ {
		fact := refFactorial(k).Int64()
		seen := make(map[string]bool, fact)
		s := identity(k)
		for i := range fact {
			bi := big.NewInt(i)
			p, err := Permutation(k, bi)
			if err != nil {
				t.Fatalf("Permutation(%d, %d): %v", k, i, err)
			}
			if !isPermutation(p, k) {
				t.Fatalf("Permutation(%d, %d) = %v is not a permutation", k, i, p)
			}
			if want := refPermutation(s, bi); !slices.Equal(p, want) {
				t.Fatalf("Permutation(%d, %d) = %v, reference gives %v", k, i, p, want)
			}
			key := fmt.Sprint(p)
			if seen[key] {
				t.Fatalf("Permutation(%d, %d) = %v repeats an earlier result", k, i, p)
			}
			seen[key] = true
		}
		if int64(len(seen)) != fact {
			t.Fatalf("k = %d: %d distinct permutations, want %d", k, len(seen), fact)
		}
	}
}

// TestPermutationMatchesReferenceLarge compares Permutation with the
// reference for random indices at sizes beyond uint64 range (21! > 2^64).
func TestPermutationMatchesReferenceLarge(t *testing.T) {
	rng := newRand(t)
	for _, k := range []int{8, 20, 21, 30, 57, 58, 128} {
		fact := refFactorial(k)
		s := identity(k)
		for range 100 {
			i := randIndex(rng, fact)
			p, err := Permutation(k, i)
			if err != nil {
				t.Fatalf("Permutation(%d, %v): %v", k, i, err)
			}
			if want := refPermutation(s, i); !slices.Equal(p, want) {
				t.Fatalf("Permutation(%d, %v) = %v, reference gives %v", k, i, p, want)
			}
		}
	}
}

// TestPermutationEndpoints pins f_S at both ends of its domain. With i = 0
// every quotient q is 0, so S[0] is placed last, then S[1] before it, and so
// on: f_S(0) is S reversed. With i = k!-1 every quotient is |S|-1 (because
// (k!-1) div (k-1)! = k-1 and the remainder is (k-1)!-1), so the last
// remaining element is always placed last: f_S(k!-1) = S.
func TestPermutationEndpoints(t *testing.T) {
	// Worked by hand from the formula for k = 3, S = [0 1 2]:
	//   f(0) = f_{[1 2]}(0) ⊕ 0 = (f_{[2]}(0) ⊕ 1) ⊕ 0 = [2 1 0]
	//   f(5) = f_{[0 1]}(1) ⊕ 2 = (f_{[0]}(0) ⊕ 1) ⊕ 2 = [0 1 2]
	for _, c := range []struct {
		i    int64
		want []int
	}{
		{0, []int{2, 1, 0}}, {1, []int{1, 2, 0}}, {2, []int{2, 0, 1}},
		{3, []int{0, 2, 1}}, {4, []int{1, 0, 2}}, {5, []int{0, 1, 2}},
	} {
		p, err := Permutation(3, big.NewInt(c.i))
		if err != nil || !slices.Equal(p, c.want) {
			t.Errorf("Permutation(3, %d) = %v, %v; want %v", c.i, p, err, c.want)
		}
	}
	for _, k := range []int{1, 2, 5, 20, 21, 64, 65, 128, MaxOrderSize} {
		p, err := Permutation(k, new(big.Int))
		if err != nil || !slices.Equal(p, reversed(k)) {
			t.Errorf("Permutation(%d, 0) = %v, %v; want S reversed", k, p, err)
		}
		last := new(big.Int).Sub(refFactorial(k), big.NewInt(1))
		p, err = Permutation(k, last)
		if err != nil || !slices.Equal(p, identity(k)) {
			t.Errorf("Permutation(%d, %d!-1) = %v, %v; want identity", k, k, p, err)
		}
		if k <= 128 {
			if want := refPermutation(identity(k), last); !slices.Equal(p, want) {
				t.Errorf("Permutation(%d, %d!-1) disagrees with reference", k, k)
			}
		}
	}
}

func TestPermutationRejectsBadInput(t *testing.T) {
	cases := []struct {
		name string
		k    int
		i    *big.Int
		want error
	}{
		{"k=0", 0, big.NewInt(0), ErrOrderSize},
		{"k<0", -1, big.NewInt(0), ErrOrderSize},
		{"k>max", MaxOrderSize + 1, big.NewInt(0), ErrOrderSize},
		{"nil i", 3, nil, ErrOrderIndex},
		{"negative i", 3, big.NewInt(-1), ErrOrderIndex},
		{"k=1 i=1", 1, big.NewInt(1), ErrOrderIndex},
		{"i=k! small", 5, big.NewInt(120), ErrOrderIndex},
		{"i=20!", 20, refFactorial(20), ErrOrderIndex},
		{"i=21!", 21, refFactorial(21), ErrOrderIndex},
		{"i=128!", 128, refFactorial(128), ErrOrderIndex},
		{"i=2^64 k=20", 20, new(big.Int).Lsh(big.NewInt(1), 64), ErrOrderIndex},
		{"i=1024!", MaxOrderSize, refFactorial(MaxOrderSize), ErrOrderIndex},
		{"huge i", 4, new(big.Int).Lsh(big.NewInt(1), 20000), ErrOrderIndex},
	}
	for _, c := range cases {
		p, err := Permutation(c.k, c.i)
		if !errors.Is(err, c.want) || p != nil {
			t.Errorf("%s: Permutation = %v, %v; want nil, %v", c.name, p, err, c.want)
		}
	}
	// Permutation must not modify its argument.
	i := new(big.Int).Sub(refFactorial(40), big.NewInt(12345))
	before := new(big.Int).Set(i)
	if _, err := Permutation(40, i); err != nil || i.Cmp(before) != 0 {
		t.Errorf("Permutation modified i or failed: %v", err)
	}
}

// TestFastPathMatchesBigPath checks that the uint64 digit extraction and the
// multi-limb one agree, both on the permutation and on the range check.
func TestFastPathMatchesBigPath(t *testing.T) {
	rng := newRand(t)
	check := func(k int, i uint64) {
		t.Helper()
		small, big := make([]int, k), make([]int, k)
		okSmall := factorialDigitsUint64(small, i)
		okBig := factorialDigitsLimbs(big, []uint64{i})
		if okSmall != okBig || !slices.Equal(small, big) {
			t.Fatalf("k=%d i=%d: digits %v (ok=%v) vs %v (ok=%v)", k, i, small, okSmall, big, okBig)
		}
		digitsToPermutation(small)
		digitsToPermutation(big)
		if !slices.Equal(small, big) {
			t.Fatalf("k=%d i=%d: permutation %v vs %v", k, i, small, big)
		}
	}
	for k := 1; k <= 7; k++ {
		for i := range uint64(refFactorial(k).Int64()) + 3 { // includes out-of-range i
			check(k, i)
		}
	}
	for k := 1; k <= 70; k++ {
		for range 200 {
			check(k, rng.Uint64())
			if k <= 20 {
				check(k, rng.Uint64N(refFactorial(k).Uint64()))
			}
		}
		check(k, 0)
		check(k, ^uint64(0))
	}
	// Through the public API: indices that fit in a uint64 take the fast
	// path, so compare with the reference.
	for _, k := range []int{20, 21, 25} {
		for range 50 {
			i := new(big.Int).SetUint64(rng.Uint64())
			if k == 20 {
				i.Mod(i, refFactorial(20))
			}
			p, err := Permutation(k, i)
			if err != nil || !slices.Equal(p, refPermutation(identity(k), i)) {
				t.Fatalf("Permutation(%d, %v) = %v, %v; disagrees with reference", k, i, p, err)
			}
		}
	}
}

func TestLimbsFromBig(t *testing.T) {
	rng := newRand(t)
	var buf [maxIndexLimbs]uint64
	for range 100 {
		i := randIndex(rng, refFactorial(MaxOrderSize))
		limbs := limbsFromBig(buf[:], i)
		back := new(big.Int)
		for j := len(limbs) - 1; j >= 0; j-- {
			back.Lsh(back, 64).Or(back, new(big.Int).SetUint64(limbs[j]))
		}
		if back.Cmp(i) != 0 {
			t.Fatalf("limbsFromBig round trip: got %v want %v", back, i)
		}
	}
}

// TestExecutionOrderIsPermutationModFactorial checks that ExecutionOrder is
// Permutation(k, seed mod k!) and returns valid permutations, for sizes on
// both sides of k = 58 where k! starts to exceed 2^256.
func TestExecutionOrderIsPermutationModFactorial(t *testing.T) {
	rng := newRand(t)
	for _, k := range []int{1, 2, 3, 4, 16, 20, 21, 57, 58, 64, 65, 128, 500, MaxOrderSize} {
		fact := refFactorial(k)
		n := 200
		if k == 128 {
			n = 2000 // "many random seeds" at the headline size
		}
		for range n {
			seed := randSeed(rng)
			got := ExecutionOrder(seed, k)
			if !isPermutation(got, k) {
				t.Fatalf("ExecutionOrder(%x, %d) = %v is not a permutation", seed, k, got)
			}
			i := new(big.Int).SetBytes(seed[:])
			i.Mod(i, fact)
			want, err := Permutation(k, i)
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("ExecutionOrder(%x, %d) = %v, Permutation(seed mod k!) = %v, %v", seed, k, got, want, err)
			}
			if k <= 128 && rng.IntN(10) == 0 {
				if ref := refPermutation(identity(k), i); !slices.Equal(got, ref) {
					t.Fatalf("ExecutionOrder(%x, %d) = %v, reference %v", seed, k, got, ref)
				}
			}
		}
	}
}

func TestExecutionOrderEdgeCases(t *testing.T) {
	var seed [32]byte
	if got := ExecutionOrder(seed, 0); got == nil || len(got) != 0 {
		t.Errorf("ExecutionOrder(_, 0) = %#v, want empty non-nil", got)
	}
	for _, s := range [][32]byte{{}, {0xff}, sha256.Sum256([]byte("x"))} {
		if got := ExecutionOrder(s, 1); !slices.Equal(got, []int{0}) {
			t.Errorf("ExecutionOrder(%x, 1) = %v, want [0]", s, got)
		}
	}
	// Seed 0 is index 0: S reversed.
	if got := ExecutionOrder(seed, 128); !slices.Equal(got, reversed(128)) {
		t.Errorf("ExecutionOrder(0, 128) = %v, want S reversed", got)
	}
	// Seed 23 at k = 4 is index 4!-1: identity. Seed 24 wraps to index 0.
	seed[31] = 23
	if got := ExecutionOrder(seed, 4); !slices.Equal(got, identity(4)) {
		t.Errorf("ExecutionOrder(23, 4) = %v, want identity", got)
	}
	seed[31] = 24
	if got := ExecutionOrder(seed, 4); !slices.Equal(got, reversed(4)) {
		t.Errorf("ExecutionOrder(24, 4) = %v, want reversed", got)
	}
	// All-ones seed (2^256-1) at a size where no reduction happens.
	var ones [32]byte
	for j := range ones {
		ones[j] = 0xff
	}
	if got := ExecutionOrder(ones, 60); !isPermutation(got, 60) {
		t.Errorf("ExecutionOrder(2^256-1, 60) = %v", got)
	}
	for _, k := range []int{-1, MaxOrderSize + 1} {
		if got := ExecutionOrder(seed, k); got != nil {
			t.Errorf("ExecutionOrder(_, %d) = %v, want nil", k, got)
		}
	}
}

func TestRoundSeed(t *testing.T) {
	entries := []SeedEntry{
		{Instance: 0, Digest: sha256.Sum256([]byte("a"))},
		{Instance: 2, Digest: sha256.Sum256([]byte("b"))},
		{Instance: 7, Digest: sha256.Sum256([]byte("c"))},
	}
	base := RoundSeed(9, entries)
	if RoundSeed(9, slices.Clone(entries)) != base {
		t.Fatal("RoundSeed is not deterministic")
	}
	distinct := map[[32]byte]string{base: "base"}
	add := func(name string, s [32]byte) {
		t.Helper()
		if prev, dup := distinct[s]; dup {
			t.Errorf("%s gives the same seed as %s", name, prev)
		}
		distinct[s] = name
	}
	add("round 10", RoundSeed(10, entries))
	add("round 0", RoundSeed(0, entries))
	swapped := slices.Clone(entries)
	swapped[0], swapped[1] = swapped[1], swapped[0]
	add("swapped order", RoundSeed(9, swapped))
	add("fewer entries", RoundSeed(9, entries[:2]))
	add("no entries", RoundSeed(9, nil))
	renumbered := slices.Clone(entries)
	renumbered[1].Instance = 3
	add("other instance id", RoundSeed(9, renumbered))
	changed := slices.Clone(entries)
	changed[2].Digest[31] ^= 1
	add("one digest bit", RoundSeed(9, changed))

	// Pin the encoding: all replicas, across versions, must hash the same
	// bytes.
	h := sha256.New()
	h.Write([]byte("braid/rcc/execution-order-seed/v1"))
	h.Write([]byte{0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 3})
	for _, e := range entries {
		h.Write(binary.BigEndian.AppendUint32(nil, e.Instance))
		h.Write(e.Digest[:])
	}
	if want := [32]byte(h.Sum(nil)); base != want {
		t.Errorf("RoundSeed encoding changed: got %x want %x", base, want)
	}

	if err := ValidateSeedEntries(entries); err != nil {
		t.Errorf("ValidateSeedEntries(sorted) = %v", err)
	}
	if err := ValidateSeedEntries(nil); err != nil {
		t.Errorf("ValidateSeedEntries(nil) = %v", err)
	}
	if err := ValidateSeedEntries(swapped); !errors.Is(err, ErrSeedEntries) {
		t.Errorf("ValidateSeedEntries(swapped) = %v, want ErrSeedEntries", err)
	}
	dup := slices.Clone(entries)
	dup[1].Instance = 0
	if err := ValidateSeedEntries(dup); !errors.Is(err, ErrSeedEntries) {
		t.Errorf("ValidateSeedEntries(duplicate) = %v, want ErrSeedEntries", err)
	}
}

// TestPrimaryCannotChoosePosition shows that a primary's execution position
// is a function of the whole round's contents: the same round always gives
// the same order, changing one batch changes the seed, and as one instance's
// batch digest varies its position is spread evenly over all positions, so
// it cannot pick a position without changing (and re-hashing) its batch.
func TestPrimaryCannotChoosePosition(t *testing.T) {
	rng := newRand(t)
	const k, round, target, trials = 4, 42, 2, 4000
	entries := make([]SeedEntry, k)
	for j := range entries {
		entries[j] = SeedEntry{Instance: uint32(3 * j), Digest: randSeed(rng)}
	}
	order := ExecutionOrder(RoundSeed(round, entries), k)
	for range 3 {
		if again := ExecutionOrder(RoundSeed(round, slices.Clone(entries)), k); !slices.Equal(again, order) {
			t.Fatalf("same round gave orders %v and %v", order, again)
		}
	}

	base := RoundSeed(round, entries)
	var counts [k]int
	for range trials {
		entries[target].Digest = randSeed(rng)
		seed := RoundSeed(round, entries)
		if seed == base {
			t.Fatal("changing one instance's digest did not change the seed")
		}
		counts[slices.Index(ExecutionOrder(seed, k), target)]++
	}
	t.Logf("positions of instance %d over %d digests: %v", entries[target].Instance, trials, counts)
	for pos, c := range counts {
		// Expected 1000 ± 27 (one standard deviation); 600 is > 14 sd away.
		if c < trials*15/100 {
			t.Errorf("position %d reached %d/%d times, want >= 15%%", pos, c, trials)
		}
	}
}

func BenchmarkExecutionOrder(b *testing.B) {
	for _, k := range []int{4, 16, 64, 128} {
		b.Run(fmt.Sprintf("k=%d", k), func(b *testing.B) {
			var seeds [64][32]byte
			for j := range seeds {
				seeds[j] = sha256.Sum256([]byte{byte(j)})
			}
			b.ReportAllocs()
			j := 0
			for b.Loop() {
				ExecutionOrder(seeds[j%len(seeds)], k)
				j++
			}
		})
	}
}

// BenchmarkPermutation measures the public big.Int entry point with
// full-size indices, where the index has many more limbs than a seed.
func BenchmarkPermutation(b *testing.B) {
	for _, k := range []int{16, 128, MaxOrderSize} {
		b.Run(fmt.Sprintf("k=%d", k), func(b *testing.B) {
			i := new(big.Int).Sub(refFactorial(k), big.NewInt(1))
			i.Rsh(i, 1)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Permutation(k, i); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestConcurrentUse runs the ordering code from many goroutines; under
// -race it would flag any shared mutable state.
func TestConcurrentUse(t *testing.T) {
	want := make([][]int, 8)
	for j := range want {
		want[j] = ExecutionOrder(sha256.Sum256([]byte{byte(j)}), 100+j)
	}
	done := make(chan error)
	for g := range 8 {
		go func() {
			for j := range 50 {
				n := (g + j) % len(want)
				if got := ExecutionOrder(sha256.Sum256([]byte{byte(n)}), 100+n); !slices.Equal(got, want[n]) {
					done <- fmt.Errorf("goroutine %d: order %d differs", g, n)
					return
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
