package transport

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	lo, hi := 50*time.Millisecond, 2*time.Second
	rng := rand.New(rand.NewPCG(1, 2))
	for attempt := 0; attempt < 40; attempt++ {
		ceil := min(lo<<min(attempt, 30), hi)
		for range 100 {
			d := backoff(attempt, lo, hi, rng)
			if d < ceil/2 || d > ceil {
				t.Fatalf("attempt %d: %v outside [%v, %v]", attempt, d, ceil/2, ceil)
			}
		}
	}
	// Seeded jitter is reproducible.
	a, b := rand.New(rand.NewPCG(7, 7)), rand.New(rand.NewPCG(7, 7))
	for i := range 10 {
		if x, y := backoff(i, lo, hi, a), backoff(i, lo, hi, b); x != y {
			t.Fatalf("same seed, different delays: %v vs %v", x, y)
		}
	}
}
