package sim

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkOverload offers open-loop load to rcc n = m = 4 for 5 virtual
// seconds, with signature checks at 300 µs on each replica's 2 cores, so
// that capacity sits near 4,000–5,000 requests/s, and reports what the
// cluster did with it in virtual time: throughput over seconds 1–5, view
// changes, requests shed at ingress, and whether every request completed
// within 15 s after the load stopped. A benchmark, not a test: the numbers
// are for docs/benchmarks.md (overload), and the `overload` scenario is the
// test. Each offered rate takes seconds to a minute of wall time.
//
//	go test -run '^$' -bench Overload -benchtime 1x ./sim
func BenchmarkOverload(b *testing.B) {
	for _, perInstance := range []float64{1000, 2000, 4000} {
		b.Run(fmt.Sprintf("offered=%.0f/s", 4*perInstance), func(b *testing.B) {
			for range b.N {
				res, err := Run(Options{Protocol: "rcc", N: 4, M: 4, Seed: 1, Scenario: "fault-free", Clients: -1,
					Load:       &Load{Rate: perInstance, Instances: []uint32{0, 1, 2, 3}, Until: 5 * time.Second},
					MaxVirtual: 20 * time.Second, Machine: Machine{Verification: 300 * time.Microsecond}})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(res.Throughput(time.Second, 5*time.Second), "executed/s")
				b.ReportMetric(float64(res.ViewChanges), "view-changes")
				b.ReportMetric(float64(res.Dropped["client-shed"]), "shed")
				b.ReportMetric(float64(res.Completed)/float64(max(1, res.Submitted)), "completed-fraction")
			}
		})
	}
}
