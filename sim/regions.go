package sim

import (
	"fmt"
	"time"

	"github.com/braid-bft/braid/sim/simnet"
)

// Regions places replicas in a wide-area network: replica i runs in region
// i mod len(Names); clients and the load generator run in region 0. Links
// within a region keep the LAN model; between regions a message takes half
// the round-trip time, plus the LAN jitter.
type Regions struct {
	Names []string
	RTT   [][]time.Duration // symmetric, zero diagonal
	// Source says where the round-trip times come from.
	Source string
}

// AWSRegions is six AWS regions with the average round-trip times of the
// table "Latency Between AWS Global Regions" (2017), as reproduced at
// acomputerscientistlearnsaws.blogspot.com/2017/04/aws-regions.html (the
// two directions averaged).
func AWSRegions() *Regions {
	ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	names := []string{"us-east-1 (N. Virginia)", "us-west-2 (Oregon)", "eu-west-1 (Ireland)", "eu-central-1 (Frankfurt)", "ap-northeast-1 (Tokyo)", "ap-southeast-2 (Sydney)"}
	rtt := [][]float64{
		{0, 87.8, 80.5, 88.6, 145.3, 229.9},
		{87.8, 0, 137.0, 159.5, 89.1, 162.1},
		{80.5, 137.0, 0, 19.6, 212.4, 309.6},
		{88.6, 159.5, 19.6, 0, 236.6, 323.4},
		{145.3, 89.1, 212.4, 236.6, 0, 103.9},
		{229.9, 162.1, 309.6, 323.4, 103.9, 0},
	}
	r := &Regions{Names: names, Source: "average RTTs of \"Latency Between AWS Global Regions\" (2017), via acomputerscientistlearnsaws.blogspot.com/2017/04/aws-regions.html"}
	for _, row := range rtt {
		var out []time.Duration
		for _, v := range row {
			out = append(out, ms(v))
		}
		r.RTT = append(r.RTT, out)
	}
	return r
}

func (g *Regions) validate() error {
	if len(g.Names) == 0 || len(g.RTT) != len(g.Names) {
		return fmt.Errorf("regions: %d names and %d rows of round-trip times", len(g.Names), len(g.RTT))
	}
	for i, row := range g.RTT {
		if len(row) != len(g.Names) {
			return fmt.Errorf("regions: row %d has %d round-trip times, want %d", i, len(row), len(g.Names))
		}
		for j, v := range row {
			if v < 0 || v != g.RTT[j][i] || (i == j && v != 0) {
				return fmt.Errorf("regions: round-trip times must be symmetric, non-negative, zero within a region (%d,%d)", i, j)
			}
		}
	}
	return nil
}

// region is where network node id runs: replicas spread round-robin,
// everything else in region 0.
func (g *Regions) region(id, replicas int) int {
	if id < replicas {
		return id % len(g.Names)
	}
	return 0
}

// apply sets the links between nodes in different regions.
func (g *Regions) apply(nw *simnet.Network, nodes, replicas int, lan simnet.Link) {
	for a := 0; a < nodes; a++ {
		for b := 0; b < nodes; b++ {
			ra, rb := g.region(a, replicas), g.region(b, replicas)
			if ra == rb {
				continue
			}
			l := lan
			l.Latency = g.RTT[ra][rb] / 2
			nw.SetLink(a, b, l)
		}
	}
}
