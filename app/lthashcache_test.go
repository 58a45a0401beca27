package app

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/braid-bft/braid/internal/testseed"
)

// Sharing expansions changes no digest: the same random adds and removes,
// on several hashes at once as the simulator's replicas do, give the lanes
// an unshared hash gives, and the memo stays within its two generations.
func TestSharedExpansionsChangeNoDigest(t *testing.T) {
	seed := testseed.New(t)
	rnd := rand.New(rand.NewPCG(seed, 0))
	const limit = 64
	plain := NewLtHash("test")
	ShareExpansions(limit)
	defer ShareExpansions(0)
	shared := []*LtHash{NewLtHash("test"), NewLtHash("test"), NewLtHash("test")}
	for op := 0; op < 2000; op++ {
		k := []byte(fmt.Sprintf("key-%d", rnd.IntN(300)))
		v := []byte(fmt.Sprintf("value-%d", rnd.IntN(5)))
		remove := rnd.IntN(3) == 0
		if remove {
			plain.Remove(k, v)
		} else {
			plain.Add(k, v)
		}
		for _, h := range shared {
			if remove {
				h.Remove(k, v)
			} else {
				h.Add(k, v)
			}
		}
	}
	for i, h := range shared {
		if !h.Equal(plain) {
			t.Fatalf("seed %d: shared hash %d differs from the unshared one", seed, i)
		}
	}
	c := sharedExpansions.Load()
	if got := len(c.cur) + len(c.old); got > 2*limit || got == 0 {
		t.Fatalf("seed %d: the memo holds %d expansions, want 1..%d", seed, got, 2*limit)
	}
	// The tag is part of the key: another domain's element is not reused.
	shared[0].Add([]byte("key-1"), []byte("value-1"))
	other := NewLtHash("other")
	other.Add([]byte("key-1"), []byte("value-1"))
	ShareExpansions(0)
	want := NewLtHash("other")
	want.Add([]byte("key-1"), []byte("value-1"))
	if !other.Equal(want) {
		t.Fatalf("an expansion was shared across tags")
	}
}
