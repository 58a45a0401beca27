package sim

import (
	"os"
	"testing"
	"time"
)

// TestSigmaEpsilonSweep is the measurement behind the rcc defaults for σ
// (gap) and ε (skip). It is opt-in (BRAID_SWEEP=1): it prints, per setting,
// false suspicions under a fault-free and a lossy network, and throughput
// with a throttling primary. The simulator window is 32 rounds, K = 8.
func TestSigmaEpsilonSweep(t *testing.T) {
	if os.Getenv("BRAID_SWEEP") == "" {
		t.Skip("measurement, not a check: set BRAID_SWEEP=1 to run")
	}
	load := &Load{Rate: 400, Instances: []uint32{1, 2, 3}, Until: 10 * time.Second}
	for _, sig := range []uint64{2, 4, 8, 16} {
		for _, eps := range []uint64{2, 4, 8} {
			var falseFF, falseLossy uint64
			var thr, base float64
			for seed := uint64(1); seed <= 3; seed++ {
				o := Options{Protocol: "rcc", N: 4, M: 4, Seed: seed, Sigma: sig, Epsilon: eps, Clients: -1, Load: load, MaxVirtual: 60 * time.Second}
				o.Scenario = "fault-free"
				ff := mustRun(t, o)
				falseFF += ff.SoftFailures
				base += ff.Throughput(2*time.Second, 10*time.Second)
				o.Scenario = "lossy"
				lo := mustRun(t, o)
				falseLossy += lo.SoftFailures
				o.Scenario = "throttling-primary"
				th := mustRun(t, o)
				thr += th.Throughput(2*time.Second, 10*time.Second)
			}
			t.Logf("σ=%2d ε=%d: false suspicions fault-free %d, lossy %d; throttled throughput %.0f%% of fault-free (3 seeds)",
				sig, eps, falseFF, falseLossy, 100*thr/base)
		}
	}
}
