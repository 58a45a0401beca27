package sim

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/braid-bft/braid/quorum"
)

// seedsPerCase is how many seeds each (scenario, n) of the PBFT-mode suite
// runs: 2 by default (TestLiveness is the main sweep); BRAID_SIM_SEEDS=500 gives
// the 10,000-seed long mode.
func seedsPerCase(t *testing.T) uint64 {
	if v := os.Getenv("BRAID_SIM_SEEDS"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			t.Fatalf("BRAID_SIM_SEEDS=%q: want a positive integer", v)
		}
		return n
	}
	if testing.Short() {
		return 1
	}
	return 2 // TestLiveness covers every scenario with 20 seeds over m ∈ {1, n−f, n}
}

// baseSeed varies the seeds between CI runs when BRAID_SIM_BASE is set;
// every failure prints the exact seed and the command that replays it.
func baseSeed(t *testing.T) uint64 {
	if v := os.Getenv("BRAID_SIM_BASE"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("BRAID_SIM_BASE=%q: %v", v, err)
		}
		return n
	}
	return 1
}

func TestScenariosHoldInvariants(t *testing.T) {
	seeds, base := seedsPerCase(t), baseSeed(t)
	t.Logf("seeds %d..%d per case (BRAID_SIM_SEEDS, BRAID_SIM_BASE)", base, base+seeds-1)
	for _, sc := range ScenarioNames() {
		for _, n := range []int{4, 7} {
			t.Run(fmt.Sprintf("%s/n=%d", sc, n), func(t *testing.T) {
				t.Parallel()
				var vcs uint64
				for seed := base; seed < base+seeds; seed++ {
					res, err := Run(Options{Scenario: sc, N: n, Seed: seed})
					if err != nil {
						t.Fatal(err)
					}
					if len(res.Violations) > 0 {
						t.Errorf("seed %d: %d violations; replay: go run ./cmd/braid sim --protocol pbft --scenario %s --n %d --seed %d\n%v",
							seed, len(res.Violations), sc, n, seed, res.Violations)
					}
					if res.Completed != res.Submitted {
						t.Errorf("seed %d: %d of %d requests completed", seed, res.Completed, res.Submitted)
					}
					vcs += res.ViewChanges
				}
				switch sc {
				case "silent-primary":
					// The faulty primary must be replaced in every seed. (A
					// crashed primary that restarts from its disk may resume
					// before its backups time out, and need not be.)
					if vcs < seeds {
						t.Errorf("%d view changes over %d seeds: the faulty primary was not always replaced", vcs, seeds)
					}
				case "fault-free":
					if vcs != 0 {
						t.Errorf("%d view changes without faults", vcs)
					}
				}
			})
		}
	}
}

func TestSameSeedSameTrace(t *testing.T) {
	for _, sc := range []string{"lossy", "twin", "crash-primary", "garbage"} {
		a, err := Run(Options{Scenario: sc, N: 4, Seed: 42})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := Run(Options{Scenario: sc, N: 4, Seed: 42})
		c, _ := Run(Options{Scenario: sc, N: 4, Seed: 43})
		if a.TraceHash != b.TraceHash || a.DecidedRequests != b.DecidedRequests || a.VirtualSeconds != b.VirtualSeconds {
			t.Errorf("%s: seed 42 gave two different runs: %s vs %s", sc, a.TraceHash, b.TraceHash)
		}
		if a.TraceHash == c.TraceHash {
			t.Errorf("%s: seeds 42 and 43 gave the same trace %s", sc, a.TraceHash)
		}
	}
}

// TestCheckerCatchesBeyondFaultBound is the negative control: with f+1
// twinned replicas the protocol's assumptions are broken, and the checker
// must notice two correct replicas deciding differently.
func TestCheckerCatchesBeyondFaultBound(t *testing.T) {
	for _, n := range []int{4, 7} {
		caught := 0
		for seed := uint64(1); seed <= 5; seed++ {
			res, err := Run(Options{Scenario: "twin", N: n, Seed: seed, Byzantine: quorum.Vouch(n)})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Violations) > 0 {
				caught++
				if seed == 1 {
					t.Logf("n=%d seed %d: first violation: %s", n, seed, res.Violations[0])
				}
			}
		}
		if caught == 0 {
			t.Errorf("n=%d: f+1 twins in 5 seeds and the checker saw no violation", n)
		}
	}
}

func TestUnknownScenario(t *testing.T) {
	if _, err := Run(Options{Scenario: "nope", N: 4}); err == nil {
		t.Fatal("unknown scenario accepted")
	}
	if _, err := Run(Options{Scenario: "fault-free", N: 3}); err == nil {
		t.Fatal("n=3 accepted")
	}
}

// TestRCCScenarios runs the paradigm layer (m instances) under every attack
// scenario, for n = 10 and m ∈ {1, n−f, n} (m ≤ n−f uses unified
// primary replacement, m = n in-place recovery): agreement, validity,
// client safety and liveness in every seed.
func TestRCCScenarios(t *testing.T) {
	seeds := uint64(1)
	if v := os.Getenv("BRAID_SIM_SEEDS"); v != "" {
		seeds = seedsPerCase(t)
	}
	for _, sc := range ScenarioNames() {
		for _, nm := range [][2]int{{10, 1}, {10, 7}, {10, 10}} { // n ∈ {4, 7}: TestLiveness
			n, m := nm[0], nm[1]
			t.Run(fmt.Sprintf("%s/n=%d/m=%d", sc, n, m), func(t *testing.T) {
				t.Parallel()
				for seed := uint64(1); seed <= seeds; seed++ {
					res, err := Run(Options{Protocol: "rcc", Scenario: sc, N: n, M: m, Seed: seed})
					if err != nil {
						t.Fatal(err)
					}
					if len(res.Violations) > 0 {
						t.Errorf("seed %d: replay: go run ./cmd/braid sim --protocol rcc --m %d --scenario %s --n %d --seed %d\n%v",
							seed, m, sc, n, seed, res.Violations)
					}
					if res.Completed != res.Submitted || res.ExecutedRequests < uint64(res.Submitted) {
						t.Errorf("seed %d: %d of %d operations completed, %d requests executed", seed, res.Completed, res.Submitted, res.ExecutedRequests)
					}
				}
			})
		}
	}
}

// TestLiveness runs every scenario in liveness mode over the production
// runtime, for n ∈ {4, 7} and m ∈ {1, n−f, n}: after the faults end, every
// request completes and every correct replica reaches the same ledger head
// within the bound, with every safety invariant held. 20 seeds per case by
// default (3 with -short); BRAID_SIM_SEEDS=500 is the long mode. The
// recovery scenarios (crash-restart losing unsynced writes, wiped-disk,
// long-partition, disk-full, fsync-error) converge here for m = 1 and m = n.
func TestLiveness(t *testing.T) {
	seeds := uint64(20)
	if v := os.Getenv("BRAID_SIM_SEEDS"); v != "" {
		seeds = seedsPerCase(t)
	} else if testing.Short() {
		seeds = 3
	}
	base := baseSeed(t)
	t.Logf("seeds %d..%d per case (BRAID_SIM_SEEDS, BRAID_SIM_BASE)", base, base+seeds-1)
	for _, sc := range ScenarioNames() {
		for _, n := range []int{4, 7} {
			for _, m := range []int{1, quorum.Correct(n), n} {
				t.Run(fmt.Sprintf("%s/n=%d/m=%d", sc, n, m), func(t *testing.T) {
					t.Parallel()
					for seed := base; seed < base+seeds; seed++ {
						res, err := Run(Options{Protocol: "rcc", Scenario: sc, N: n, M: m, Seed: seed, Liveness: true})
						if err != nil {
							t.Fatal(err)
						}
						for _, v := range res.Violations {
							t.Errorf("seed %d: replay: go run ./cmd/braid sim --liveness --protocol rcc --m %d --scenario %s --n %d --seed %d\n%s",
								seed, m, sc, n, seed, v)
						}
					}
				})
			}
		}
	}
}

// The disk scenarios must actually stop a replica: a storage failure is
// fail-stop, and the run then proves it recovers.
func TestDiskFaultsFailStop(t *testing.T) {
	for _, sc := range []string{"disk-full", "fsync-error"} {
		for _, m := range []int{1, 4} {
			res, err := Run(Options{Protocol: "rcc", Scenario: sc, N: 4, M: m, Seed: 1, Liveness: true})
			if err != nil {
				t.Fatal(err)
			}
			if res.FailStops == 0 || len(res.Violations) > 0 {
				t.Errorf("%s m=%d seed 1: %d fail-stops, violations %v; want ≥ 1 and none", sc, m, res.FailStops, res.Violations)
			}
		}
	}
}
