package auth

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/braid-bft/braid/internal/testseed"
)

// honestItems returns n validly signed items from distinct keys derived
// deterministically from seed.
func honestItems(t testing.TB, n int, seed uint64) []BatchItem {
	rng := rand.New(rand.NewPCG(seed, 99))
	items := make([]BatchItem, n)
	for i := range items {
		pub, priv, err := GenerateKey(chachaReader{rng})
		if err != nil {
			t.Fatal(err)
		}
		msg := make([]byte, 1+rng.IntN(64))
		for j := range msg {
			msg[j] = byte(rng.Uint32())
		}
		items[i] = BatchItem{Key: pub, Context: testCtx, Msg: msg, Sig: Sign(priv, testCtx, msg)}
	}
	return items
}

// chachaReader adapts a math/rand source to io.Reader for deterministic
// key generation in tests.
type chachaReader struct{ r *rand.Rand }

func (c chachaReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(c.r.Uint32())
	}
	return len(p), nil
}

func singleResults(items []BatchItem) []bool {
	out := make([]bool, len(items))
	for i, it := range items {
		out[i] = Verify(it.Key, it.Context, it.Msg, it.Sig)
	}
	return out
}

func checkAgree(t *testing.T, items []BatchItem, got []bool) {
	t.Helper()
	want := singleResults(items)
	if len(got) != len(want) {
		t.Fatalf("got %d results for %d items", len(got), len(items))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("item %d: batch says %v, Verify says %v (key %x sig %x)", i, got[i], want[i], []byte(items[i].Key), items[i].Sig)
		}
	}
}

// corrupt returns a randomly damaged copy of it.
func corrupt(rng *rand.Rand, it BatchItem) BatchItem {
	if len(it.Sig) == 0 || len(it.Key) == 0 {
		it.Msg = append(bytes.Clone(it.Msg), 'y')
		return it
	}
	switch rng.IntN(7) {
	case 0:
		it.Sig = flip(it.Sig, rng.IntN(8*len(it.Sig)))
	case 1:
		it.Key = PublicKey(flip(it.Key, rng.IntN(8*len(it.Key))))
	case 2:
		it.Msg = append(bytes.Clone(it.Msg), 'x')
	case 3:
		it.Context = "braid/other/v1"
	case 4:
		it.Sig = it.Sig[:rng.IntN(len(it.Sig))]
	case 5:
		it.Sig = addL(it.Sig)
	case 6:
		it.Key = it.Key[:rng.IntN(len(it.Key))]
	}
	return it
}

// TestRandomizedAgreement builds random batches mixing valid, corrupted
// and edge-case items and checks VerifyBatch equals per-item Verify. The
// seed is logged; rerun with BRAID_TEST_SEED=N to reproduce.
func TestRandomizedAgreement(t *testing.T) {
	seed := testseed.New(t)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	honest := honestItems(t, 64, seed)
	edges := edgeCases(t)
	rounds := 200
	if testing.Short() || raceEnabled {
		rounds = 50
	}
	for round := 0; round < rounds; round++ {
		n := 1 + rng.IntN(80)
		// Vary the density of bad items: clean, sparse and dense batches.
		pBad := []float64{0, 0.02, 0.1, 0.5, 1}[rng.IntN(5)]
		pEdge := []float64{0, 0.1, 0.3}[rng.IntN(3)]
		items := make([]BatchItem, n)
		for i := range items {
			switch r := rng.Float64(); {
			case r < pEdge:
				items[i] = edges[rng.IntN(len(edges))].item
			default:
				items[i] = honest[rng.IntN(len(honest))]
			}
			if rng.Float64() < pBad {
				items[i] = corrupt(rng, items[i])
			}
		}
		got, st := VerifyBatchStats(items)
		checkAgree(t, items, got)
		if st.SingleChecks > uint64(n) {
			t.Fatalf("round %d: %d single checks for %d items", round, st.SingleChecks, n)
		}
	}
}

func TestVerifyBatchEmpty(t *testing.T) {
	got := VerifyBatch(nil)
	if got == nil || len(got) != 0 {
		t.Fatalf("VerifyBatch(nil) = %#v, want empty non-nil", got)
	}
}

// TestVerifyBatchFallback places invalid items at every position and in
// various densities, checking results and that fallback work stays
// bounded.
func TestVerifyBatchFallback(t *testing.T) {
	for _, n := range []int{2, 3, 5, 16, 64, 100} {
		base := honestItems(t, n, uint64(n))
		for _, bad := range [][]int{{0}, {n - 1}, {n / 2}, {0, n - 1}, seq(n)} {
			items := append([]BatchItem{}, base...)
			for _, i := range bad {
				items[i].Sig = flip(items[i].Sig, 3)
			}
			got, st := VerifyBatchStats(items)
			checkAgree(t, items, got)
			if st.Fallbacks != 1 || st.Invalid != uint64(len(dedup(bad))) {
				t.Errorf("n=%d bad=%v: stats %+v", n, bad, st)
			}
			if st.SingleChecks > uint64(n) {
				t.Errorf("n=%d bad=%v: %d single checks", n, bad, st.SingleChecks)
			}
			if len(bad) == 1 && n >= 64 && st.SingleChecks > leafSize {
				t.Errorf("n=%d one bad item: %d single checks, bisection should isolate it", n, st.SingleChecks)
			}
		}
	}
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func dedup(s []int) map[int]bool {
	m := map[int]bool{}
	for _, v := range s {
		m[v] = true
	}
	return m
}

// TestMalformedSkipsBatch checks that structurally invalid items are
// rejected without making the batch equation fail.
func TestMalformedSkipsBatch(t *testing.T) {
	items := honestItems(t, 8, 3)
	items[2].Sig = items[2].Sig[:10]
	items[5].Sig = addL(items[5].Sig)
	items[6].Context = ""
	got, st := VerifyBatchStats(items)
	checkAgree(t, items, got)
	if st.Fallbacks != 0 || st.Invalid != 3 {
		t.Errorf("stats %+v, want no fallback and 3 invalid", st)
	}
}

func TestInvalidBySigner(t *testing.T) {
	items := honestItems(t, 4, 5)
	items = append(items, items[1], items[1])
	items[4].Sig = flip(items[4].Sig, 1)
	items[5].Msg = []byte("forged")
	items[3].Sig = nil
	counts := InvalidBySigner(items, VerifyBatch(items))
	want := map[string]int{
		MarshalPublicKey(items[1].Key): 2,
		MarshalPublicKey(items[3].Key): 1,
	}
	if len(counts) != len(want) {
		t.Fatalf("counts %v, want %v", counts, want)
	}
	for k, v := range want {
		if counts[k] != v {
			t.Errorf("counts[%s] = %d, want %d", k, counts[k], v)
		}
	}
}
