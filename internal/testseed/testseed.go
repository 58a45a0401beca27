// Package testseed gives randomized tests their seed: a fresh one each run,
// printed so a failure can be replayed, or the one in $BRAID_TEST_SEED when
// replaying. One home, so every randomized test prints and replays alike.
package testseed

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// Env names the variable that fixes the seed.
const Env = "BRAID_TEST_SEED"

// New returns the test's seed and logs it with how to replay it.
func New(t testing.TB) uint64 {
	t.Helper()
	if v := os.Getenv(Env); v != "" {
		seed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("$%s=%q: want an unsigned integer", Env, v)
		}
		t.Logf("seed %d (from $%s)", seed, Env)
		return seed
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d (replay: %s=%d go test -run '^%s$')", seed, Env, seed, t.Name())
	return seed
}
