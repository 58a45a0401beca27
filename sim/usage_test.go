package sim

import (
	"strings"
	"testing"
	"time"
)

// With signature checks made expensive, the verification cores are what
// the run saturates, and Usage says so; without a window there is none.
func TestUsageFindsTheSaturatedResource(t *testing.T) {
	t.Logf("seed 1")
	base := Options{Protocol: "rcc", N: 4, M: 4, Seed: 1, Scenario: "fault-free", Clients: -1, Batch: 100,
		Load:       &Load{Instances: []uint32{0, 1, 2, 3}, Until: time.Second, Clients: 200, Closed: true, Window: true},
		MaxVirtual: time.Second, NIC: 125_000_000}
	cheap, expensive := base, base
	cheap.MeasureFrom, cheap.MeasureTo = 500*time.Millisecond, time.Second
	expensive.MeasureFrom, expensive.MeasureTo = cheap.MeasureFrom, cheap.MeasureTo
	expensive.Machine = Machine{Cores: 2, Verification: 2 * time.Millisecond}
	rc, err := Run(cheap)
	if err != nil {
		t.Fatal(err)
	}
	re, err := Run(expensive)
	if err != nil {
		t.Fatal(err)
	}
	if len(rc.Usage) != 4 || len(re.Usage) != 4 {
		t.Fatalf("usage for %d and %d replicas; want 4", len(rc.Usage), len(re.Usage))
	}
	leads := 0
	for _, u := range re.Usage {
		if u.Workers < 0.9 || u.Workers > 1 {
			t.Errorf("replica %d: verification cores %.2f busy at 2 ms per check; want saturated (0.9–1)", u.Replica, u.Workers)
		}
		leads += u.Leads
		if u.ClientLane <= 0 || u.ClientLane > 1 {
			t.Errorf("replica %d: client lane %.2f busy; want some, at most all, of the window", u.Replica, u.ClientLane)
		}
	}
	if leads < 1 || leads > 4 {
		t.Errorf("%d instances led in all at m = 4; want 1 to 4 (fewer while a view changes)", leads)
	}
	for _, u := range rc.Usage {
		if u.Workers >= re.Usage[u.Replica].Workers || u.NIC <= 0 || u.Disk <= 0 {
			t.Errorf("replica %d at default costs: %+v; want less busy verifying than at 2 ms, some NIC and disk", u.Replica, u)
		}
	}
	if len(rc.Violations) > 0 || len(re.Violations) > 0 {
		t.Fatalf("violations: %v %v", rc.Violations, re.Violations)
	}
	none, err := Run(base)
	if err != nil {
		t.Fatal(err)
	}
	if none.Usage != nil {
		t.Fatalf("usage without a window: %+v", none.Usage)
	}
}

// A closed-loop pool never has more requests outstanding than clients,
// and keeps issuing until Until.
func TestClosedLoopKeepsThePoolBusy(t *testing.T) {
	t.Logf("seed 3")
	r, err := Run(Options{Protocol: "rcc", N: 4, M: 2, Seed: 3, Scenario: "fault-free", Clients: -1,
		Load:       &Load{Instances: []uint32{0, 1}, Until: 800 * time.Millisecond, Clients: 10, Closed: true, Window: true},
		MaxVirtual: 800 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Violations) > 0 {
		t.Fatalf("violations: %v", r.Violations)
	}
	if r.Submitted-r.Completed > 20 || r.Completed < 100 {
		t.Fatalf("%d submitted, %d completed by 20 closed-loop clients in 0.8 s; want many, at most 20 outstanding", r.Submitted, r.Completed)
	}
}

// The WAN placement is validated and makes a request wait for
// cross-region round trips.
func TestRegionsSlowRequestsDown(t *testing.T) {
	t.Logf("seed 2")
	bad := AWSRegions()
	bad.RTT[0][1] = time.Second
	if _, err := Run(Options{Protocol: "rcc", N: 4, Seed: 2, Scenario: "fault-free", Regions: bad}); err == nil || !strings.Contains(err.Error(), "symmetric") {
		t.Fatalf("asymmetric round-trip times: err %v", err)
	}
	lat := func(g *Regions) float64 {
		r, err := Run(Options{Protocol: "rcc", N: 4, M: 1, Seed: 2, Scenario: "fault-free", Clients: -1, Regions: g,
			Load:       &Load{Instances: []uint32{0}, Until: 3 * time.Second, Clients: 1, Closed: true, Window: true},
			MaxVirtual: 3 * time.Second})
		if err != nil || len(r.LoadLatencies) == 0 || len(r.Violations) > 0 {
			t.Fatalf("run: %v, %d completions, violations %v", err, len(r.LoadLatencies), r.Violations)
		}
		return r.LoadLatencies[len(r.LoadLatencies)-1]
	}
	lan, wan := lat(nil), lat(AWSRegions())
	// Four replicas in Virginia, Oregon, Ireland, Frankfurt: a quorum of
	// three needs Oregon or a European replica, ≥ 80 ms round trips.
	if lan > 0.05 || wan < 0.08 {
		t.Fatalf("one request takes %.3fs on the LAN and %.3fs over the WAN; want < 50 ms and ≥ 80 ms", lan, wan)
	}
}
