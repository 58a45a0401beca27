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
	load := &Load{Rate: 200, Instances: []uint32{1, 2, 3}, Until: 12 * time.Second}
	opts := Options{Protocol: "rcc", N: 4, M: 4, Seed: seed, Clients: -1, Load: load, MaxVirtual: 30 * time.Second}
	opts.Scenario = "fault-free"
	base := mustRun(t, opts)
	opts.Scenario = "client-on-failed-instance" // replica 0, instance 0's primary, is down from the start
	crashed := mustRun(t, opts)
	from, to := 3*time.Second, 12*time.Second
	b, c := base.Throughput(from, to), crashed.Throughput(from, to)
	t.Logf("seed %d: instances 1-3 executed %.0f req/s fault-free, %.0f req/s with instance 0's primary crashed (%.0f%%), window %v-%v",
		seed, b, c, 100*c/b, from, to)
	if c < 0.9*b {
		t.Errorf("with a crashed primary the other instances ran at %.0f%% of their fault-free rate, want ≥ 90%%", 100*c/b)
	}
}

func TestWaitFreedomThrottlingPrimary(t *testing.T) {
	const seed = 12
	load := &Load{Rate: 400, Instances: []uint32{1, 2, 3}, Until: 12 * time.Second}
	opts := Options{Protocol: "rcc", N: 4, M: 4, Seed: seed, Clients: -1, Load: load, MaxVirtual: 60 * time.Second}
	opts.Scenario = "fault-free"
	base := mustRun(t, opts)
	opts.Scenario = "throttling-primary"
	throttled := mustRun(t, opts)
	from, to := 3*time.Second, 12*time.Second
	b, c := base.Throughput(from, to), throttled.Throughput(from, to)
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
