package sim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBatchVerificationCostInterpolates(t *testing.T) {
	m := Machine{Verification: 40 * time.Microsecond, Batch16: 24 * time.Microsecond, Batch64: 20 * time.Microsecond, Batch256: 18 * time.Microsecond}
	for _, tc := range []struct {
		k    int
		want time.Duration
	}{{1, 40 * time.Microsecond}, {16, 16 * 24 * time.Microsecond}, {40, 40 * 22 * time.Microsecond},
		{256, 256 * 18 * time.Microsecond}, {1000, 1000 * 18 * time.Microsecond}} {
		if got := m.verifyCost(tc.k); got != tc.want {
			t.Errorf("verifyCost(%d) = %v, want %v", tc.k, got, tc.want)
		}
	}
	if got := (Machine{Verification: 30 * time.Microsecond}).verifyCost(10); got != 300*time.Microsecond {
		t.Errorf("without batch figures: %v, want 10 × 30µs", got)
	}
}

func TestCostFileIsValidated(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ body, want string }{
		{`{"cores": 2, "verify_ns": 30000}`, ""},
		{`{"cores": 2, "verify_ns": -1}`, "verify_ns"},
		{`{"cores": 2, "verify_batch16_ns": 20000}`, "go together"},
		{`{"cores": 2, "verify_nss": 1}`, "unknown field"},
		{`{"cores": 5000}`, "cores"},
		{`not json`, "cost file"},
	} {
		p := filepath.Join(dir, "c.json")
		if err := os.WriteFile(p, []byte(tc.body), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := LoadMachine(p)
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: error %v, want one containing %q", tc.body, err, tc.want)
		}
	}
}

// With loop costs, signing and sending take time on the loop: the same run
// executes the same requests, but later. (5 ms a signature: since the loop
// model takes a pass at a time and beacons went quiet, the 2 ms of session
// 8 slowed this run by only 19%, 1.052 s against 0.885 s.)
func TestLoopCostsSlowTheRunDown(t *testing.T) {
	run := func(m Machine) Result {
		res, err := Run(Options{Protocol: "rcc", N: 4, M: 4, Seed: 3, Scenario: "fault-free", Machine: m})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Violations) > 0 || res.Completed != res.Submitted {
			t.Fatalf("%v: violations %v, %d of %d completed", m, res.Violations, res.Completed, res.Submitted)
		}
		return res
	}
	free := run(Machine{})
	slow := run(Machine{Sign: 5 * time.Millisecond, Message: 100 * time.Microsecond, Record: 100 * time.Microsecond})
	if slow.VirtualSeconds <= free.VirtualSeconds*1.2 {
		t.Fatalf("5 ms per signature on the loop: %.3fs virtual, without loop costs %.3fs; want clearly slower", slow.VirtualSeconds, free.VirtualSeconds)
	}
}
