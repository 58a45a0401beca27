package sim

import (
	"testing"
	"time"
)

// Wait-freedom, measured in virtual time: an open-loop load on instances
// 1..3 of an m = n = 4 cluster, with and without a faulty primary on
// instance 0. The numbers are printed; the bounds are the acceptance
// criteria of the paradigm (the paper: a faulty primary slows only its own instance).
func TestWaitFreedomCrashedPrimary(t *testing.T) {
	const seed = 11
	// replica 0, instance 0's primary, is down from the start
	_, b, c := againstFaultFree(t, seed, 200, 30*time.Second, "client-on-failed-instance")
	t.Logf("seed %d: instances 1-3 executed %.0f req/s fault-free, %.0f req/s with instance 0's primary crashed (%.0f%%), window %v-%v",
		seed, b, c, 100*c/b, windowFrom, windowTo)
	if c < 0.9*b {
		t.Errorf("with a crashed primary the other instances ran at %.0f%% of their fault-free rate, want ≥ 90%%", 100*c/b)
	}
}

func TestWaitFreedomThrottlingPrimary(t *testing.T) {
	const seed = 12
	throttled, b, c := againstFaultFree(t, seed, 400, 60*time.Second, "throttling-primary")
	t.Logf("seed %d: executed %.0f req/s fault-free, %.0f req/s for instances 1-3 with instance 0's primary throttling 5× (%.0f%%); %d soft-failure suspicions, gap at the first %d rounds (σ = %d), largest %d (suspicions during a new view's grace period)",
		seed, b, c, 100*c/b, throttled.SoftFailures, throttled.FirstSuspicionGap, throttled.Sigma, throttled.MaxSuspicionGap)
	if throttled.SoftFailures == 0 {
		t.Fatal("the throttling primary was never suspected")
	}
	// Detection runs every tick; within one tick the front can move a few
	// rounds, so the gap at the first suspicion is σ plus at most a tick's
	// worth of rounds.
	if throttled.FirstSuspicionGap > throttled.Sigma+4 {
		t.Errorf("first suspicion at a gap of %d rounds, want about σ = %d", throttled.FirstSuspicionGap, throttled.Sigma)
	}
	if c < 0.7*b {
		t.Errorf("throughput recovered to %.0f%% of fault-free, want ≥ 70%%", 100*c/b)
	}
}

// The window over which throughput is compared: after start-up, while the
// load runs.
const windowFrom, windowTo = 3 * time.Second, 12 * time.Second

// againstFaultFree runs an open-loop load of rate requests per second on
// each of instances 1-3 (m = n = 4) fault-free and under scenario, and
// returns the faulty run with both runs' throughput over the window.
func againstFaultFree(t *testing.T, seed uint64, rate float64, maxVirtual time.Duration, scenario string) (faulty Result, base, under float64) {
	t.Helper()
	load := &Load{Rate: rate, Instances: []uint32{1, 2, 3}, Until: windowTo}
	opts := Options{Protocol: "rcc", N: 4, M: 4, Seed: seed, Clients: -1, Load: load, MaxVirtual: maxVirtual, Scenario: "fault-free"}
	fine := mustRun(t, opts)
	opts.Scenario = scenario
	faulty = mustRun(t, opts)
	return faulty, fine.Throughput(windowFrom, windowTo), faulty.Throughput(windowFrom, windowTo)
}

func mustRun(t *testing.T, o Options) Result {
	t.Helper()
	res, err := Run(o)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Violations) > 0 {
		t.Fatalf("%s seed %d: %v", o.Scenario, o.Seed, res.Violations)
	}
	return res
}
