package app

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/braid-bft/braid/internal/testseed"
)

func elems(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = []byte(fmt.Sprintf("element-%d", i))
	}
	return out
}

func TestLtHashEmpty(t *testing.T) {
	h := NewLtHash("t")
	want := sha256.Sum256(make([]byte, LtHashBytes))
	if h.Sum() != want {
		t.Fatalf("empty sum = %x, want sha256 of zero lanes %x", h.Sum(), want)
	}
}

func TestLtHashAddCommutes(t *testing.T) {
	seed := testseed.New(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	es := elems(50)
	ref := NewLtHash("t")
	for _, e := range es {
		ref.Add(e)
	}
	for trial := range 20 {
		perm := rng.Perm(len(es))
		h := NewLtHash("t")
		for _, i := range perm {
			h.Add(es[i])
		}
		if !h.Equal(ref) || h.Sum() != ref.Sum() {
			t.Fatalf("trial %d: order-dependent hash", trial)
		}
	}
}

func TestLtHashRemoveUndoesAdd(t *testing.T) {
	seed := testseed.New(t)
	rng := rand.New(rand.NewPCG(seed, 2))
	es := elems(40)
	base := NewLtHash("t")
	for _, e := range es[:20] {
		base.Add(e)
	}
	h := NewLtHash("t")
	for _, e := range es[:20] {
		h.Add(e)
	}
	// Add the other 20 in random order, remove them in another random order.
	for _, i := range rng.Perm(20) {
		h.Add(es[20+i])
	}
	if h.Equal(base) {
		t.Fatal("adding elements did not change the hash")
	}
	for _, i := range rng.Perm(20) {
		h.Remove(es[20+i])
	}
	if !h.Equal(base) || h.Sum() != base.Sum() {
		t.Fatal("remove did not undo add")
	}
	// Interleaved: remove before add also cancels (signed multiset).
	h.Remove(es[39])
	h.Add(es[39])
	if !h.Equal(base) {
		t.Fatal("remove-then-add did not cancel")
	}
	// Removing everything returns to the empty hash.
	for _, i := range rng.Perm(20) {
		h.Remove(es[i])
	}
	if h.Sum() != NewLtHash("t").Sum() {
		t.Fatal("removing all elements did not return to empty")
	}
}

func TestLtHashDistinguishes(t *testing.T) {
	tests := []struct {
		name string
		a, b func(h *LtHash)
	}{
		{"different element", func(h *LtHash) { h.Add([]byte("x")) }, func(h *LtHash) { h.Add([]byte("y")) }},
		{"multiplicity", func(h *LtHash) { h.Add([]byte("x")) }, func(h *LtHash) { h.Add([]byte("x")); h.Add([]byte("x")) }},
		{"empty vs one", func(h *LtHash) {}, func(h *LtHash) { h.Add(nil) }},
		{"split elements", func(h *LtHash) { h.Add([]byte("ab")) }, func(h *LtHash) { h.Add([]byte("a")); h.Add([]byte("b")) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := NewLtHash("t"), NewLtHash("t")
			tc.a(a)
			tc.b(b)
			if a.Sum() == b.Sum() {
				t.Fatal("different multisets hash equal")
			}
		})
	}
}

func TestLtHashPartsAreConcatenated(t *testing.T) {
	a, b := NewLtHash("t"), NewLtHash("t")
	a.Add([]byte("ab"), []byte("c"))
	b.Add([]byte("a"), []byte("bc"))
	if !a.Equal(b) {
		t.Fatal("element must be the concatenation of its parts")
	}
}

func TestLtHashTagSeparatesDomains(t *testing.T) {
	a, b := NewLtHash("kv"), NewLtHash("bank")
	a.Add([]byte("x"))
	b.Add([]byte("x"))
	if a.Equal(b) {
		t.Fatal("tags do not separate domains")
	}
}

func TestLtHashReset(t *testing.T) {
	h := NewLtHash("t")
	h.Add([]byte("x"))
	h.Reset()
	if h.Sum() != NewLtHash("t").Sum() {
		t.Fatal("Reset did not return to empty")
	}
}

func BenchmarkLtHashAdd(b *testing.B) {
	b.ReportAllocs()
	h := NewLtHash("t")
	e := []byte("some key and some value of moderate size........")
	for b.Loop() {
		h.Add(e)
	}
}

// The parallel sum is the sequential one, whatever the element count's
// split across cores (below, at and above the chunk size).
func TestLtHashOfMatchesSequential(t *testing.T) {
	for _, n := range []int{0, 1, 4095, 4096, 9000, 20001} {
		seq := NewLtHash("braid/test")
		elem := func(i int) []byte { return binary.BigEndian.AppendUint64([]byte("element"), uint64(i)) }
		for i := range n {
			seq.Add(elem(i))
		}
		par := LtHashOf("braid/test", n, func(h *LtHash, i int) { h.Add(elem(i)) })
		if !par.Equal(seq) || par.Sum() != seq.Sum() {
			t.Fatalf("n=%d: parallel sum differs from the sequential one", n)
		}
	}
}
