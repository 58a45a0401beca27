package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/braid-bft/braid/byzantine"
	"github.com/braid-bft/braid/quorum"
	"github.com/braid-bft/braid/rcc"
	"github.com/braid-bft/braid/sim/simnet"
)

// The swarm (TigerBeetle's VOPR idea): instead of a few hand-written
// scenarios, every seed draws a whole run — protocol, cluster size,
// instances, failure policy, batch size, timeouts, network, a fault mix
// from the catalogue (faults.go) within the fault budget, and a workload —
// and the run is held to every safety check and to liveness once its
// faults are over. The draw uses a generator of its own seeded by the seed,
// and the run the simulator's, seeded by the same seed: the seed alone
// replays both.

// SwarmConfig is one seed's run, as DrawSwarm drew it.
type SwarmConfig struct {
	Seed     uint64 `json:"seed"`
	Protocol string `json:"protocol"`
	N        int    `json:"n"`
	M        int    `json:"m"`
	Policy   string `json:"policy,omitempty"` // rcc: replace or in-place
	Batch    int    `json:"batch"`
	// Sigma and Epsilon are rcc's gap and skip; 0: the defaults.
	Sigma   uint64      `json:"sigma,omitempty"`
	Epsilon uint64      `json:"epsilon,omitempty"`
	Tuning  Tuning      `json:"tuning"`
	Link    simnet.Link `json:"link"`
	Faults  []Fault     `json:"faults"`
	// Workload is "kv" (the clients' default puts and gets),
	// "linearizability" or "bank".
	Workload string `json:"workload"`
	Clients  int    `json:"clients"`
	Requests int    `json:"requests"` // per client
}

// Swarm draw ranges: small clusters and workloads, so that a seed takes
// well under a second of wall time, faults within the first ~2 s.
const (
	swarmMinN, swarmMaxN = 4, 10
	swarmMaxClients      = 8
	swarmMaxRequests     = 12
)

// swarmBatches are the batch sizes a seed draws from: 1 (every request its
// own sequence number) up to more than any workload here fills.
var swarmBatches = []int{1, 2, 4, 8, 16, 64}

// wholeRunKinds are the faults that hold one slot of the fault budget for
// the whole run: package byzantine's filters, twins, a wiped disk and a
// crash with no restart.
var wholeRunKinds = func() []string {
	var k []string
	for _, b := range byzantine.Kinds {
		k = append(k, string(b))
	}
	return append(k, FaultTwin, FaultWipe, FaultCrash)
}()

// transientKinds are faults of a correct replica that end: they hold a
// slot of the budget while they last.
var transientKinds = []string{FaultCrash, FaultDiskFull, FaultFsync, FaultIsolate, FaultOneWay, FaultCut}

// primaryKinds are the behaviours that only do something as a primary.
var primaryKinds = []string{string(byzantine.Equivocate), string(byzantine.Dark), string(byzantine.Throttle), string(byzantine.Silent)}

// DrawSwarm draws seed's run configuration. The same seed gives the same
// configuration, and every configuration is within the fault budget
// (CheckPlan).
func DrawSwarm(seed uint64) SwarmConfig {
	rng := rand.New(rand.NewPCG(seed, 0x5357_4152_4d)) // "SWARM": a stream apart from the run's
	c := SwarmConfig{Seed: seed, Protocol: "rcc", M: 1}
	c.N = swarmMinN + rng.IntN(swarmMaxN-swarmMinN+1)
	f := quorum.Faults(c.N)
	if rng.IntN(4) == 0 {
		c.Protocol = "pbft"
	}
	if c.Protocol == "rcc" {
		c.M = 1 + rng.IntN(c.N)
		// In-place recovery needs m > f (rcc refuses less: the f faulty
		// replicas could hold every instance); replace needs m ≤ n − f.
		c.Policy = rcc.InPlace.String()
		if c.M <= c.N-f && (c.M <= f || rng.IntN(2) == 0) {
			c.Policy = rcc.Replace.String()
		}
	}
	c.Batch = swarmBatches[rng.IntN(len(swarmBatches))]
	k, w := uint64(8), uint64(32) // the simulator's defaults
	if rng.IntN(2) == 0 {
		k = []uint64{4, 8, 16}[rng.IntN(3)]
		w = k * uint64(3+rng.IntN(4)) // above 2K, so the default σ = W/2 fits below W − K
		c.Tuning.CheckpointInterval, c.Tuning.Window = k, w
	}
	if rng.IntN(2) == 0 {
		c.Tuning.RequestTimeout = 15 + rng.IntN(46)
		c.Tuning.ProgressTimeout = 15 + rng.IntN(46)
		c.Tuning.ViewChangeTimeout = 15 + rng.IntN(46)
		c.Tuning.RetransmitTicks = 3 + rng.IntN(8)
	}
	if c.Protocol == "rcc" {
		if rng.IntN(2) == 0 {
			lo := max(2, w/4)
			c.Sigma = lo + rng.Uint64N(w-k-lo) // σ + K < W
		}
		if rng.IntN(2) == 0 {
			c.Epsilon = 1 + rng.Uint64N(k)
		}
	}
	c.Link = simnet.Link{
		Latency: time.Duration(200+rng.IntN(4801)) * time.Microsecond,
		Jitter:  time.Duration(rng.IntN(5001)) * time.Microsecond,
	}
	c.Workload = []string{"kv", "linearizability", "linearizability", "bank"}[rng.IntN(4)]
	c.Clients = 1 + rng.IntN(swarmMaxClients)
	c.Requests = 2 + rng.IntN(swarmMaxRequests-1)
	c.Faults = drawFaults(rng, c.N, c.M, c.Protocol)
	return c
}

// ms draws a time in [lo, hi] milliseconds.
func ms(rng *rand.Rand, lo, hi int) time.Duration {
	return time.Duration(lo+rng.IntN(hi-lo+1)) * time.Millisecond
}

// drawFaults draws a fault mix within the budget: up to f replicas faulty
// for the whole run, transient faults of the others in what remains of f at
// each instant, and network-wide faults, all over by about 2 s.
func drawFaults(rng *rand.Rand, n, m int, protocol string) []Fault {
	f := quorum.Faults(n)
	var plan []Fault
	taken := map[int]bool{}
	primaries := []int{0}
	if protocol == "rcc" {
		primaries = nil
		for i := 0; i < m; i++ {
			primaries = append(primaries, i) // instance i's view-0 primary
		}
	}
	pick := func(from []int) int {
		var free []int
		for _, id := range from {
			if !taken[id] {
				free = append(free, id)
			}
		}
		if len(free) == 0 {
			return -1
		}
		return free[rng.IntN(len(free))]
	}
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	whole := 0
	if rng.IntN(4) > 0 {
		whole = 1 + rng.IntN(f)
	}
	for range whole {
		x := Fault{Kind: wholeRunKinds[rng.IntN(len(wholeRunKinds))]}
		x.Replica = -1
		if slices.Contains(primaryKinds, x.Kind) && rng.IntN(4) > 0 {
			x.Replica = pick(primaries)
		}
		if x.Replica < 0 {
			x.Replica = pick(all)
		}
		switch x.Kind {
		case FaultCrash: // for good
			x.From = ms(rng, 0, 1000)
		case FaultWipe:
			x.From = ms(rng, 100, 1000)
			x.Until = x.From + ms(rng, 200, 1000)
		}
		taken[x.Replica] = true
		plan = append(plan, x)
	}
	// Transient faults of the others, each kept only if the plan stays
	// within the budget with it.
	for range rng.IntN(4) {
		x := Fault{Kind: transientKinds[rng.IntN(len(transientKinds))], Replica: pick(all)}
		if x.Replica < 0 {
			break
		}
		x.From = ms(rng, 50, 1200)
		x.Until = x.From + ms(rng, 100, 1000)
		if x.Kind == FaultCut {
			for _, id := range rng.Perm(n) {
				if id != x.Replica && (len(x.Group) == 0 || rng.IntN(2) == 0) {
					x.Group = append(x.Group, id)
				}
			}
			if len(x.Group) == n-1 {
				x.Group = x.Group[:n-2] // a proper subset of the others
			}
			slices.Sort(x.Group)
		}
		if CheckPlan(n, append(slices.Clone(plan), x)) == nil {
			plan = append(plan, x)
		}
	}
	if rng.IntN(3) == 0 {
		x := Fault{Kind: FaultPartition, Replica: -1, From: ms(rng, 50, 1200)}
		x.Until = x.From + ms(rng, 100, 1200)
		x.Group = rng.Perm(n)[:1+rng.IntN(n-1)]
		slices.Sort(x.Group)
		plan = append(plan, x)
	}
	if rng.IntN(3) == 0 {
		x := Fault{Kind: FaultLossy, Replica: -1, From: ms(rng, 0, 1000)}
		x.Until = x.From + ms(rng, 200, 1500)
		x.Link = &simnet.Link{
			Latency:   time.Millisecond,
			Jitter:    ms(rng, 0, 30),
			Loss:      float64(rng.IntN(11)) / 100,
			Duplicate: float64(rng.IntN(6)) / 100,
		}
		plan = append(plan, x)
	}
	return plan
}

// Options is the run the configuration describes, in liveness mode.
func (c SwarmConfig) Options() Options {
	o := Options{
		Protocol: c.Protocol, N: c.N, Seed: c.Seed, Scenario: PlanScenario, Faults: c.Faults,
		Batch: c.Batch, Sigma: c.Sigma, Epsilon: c.Epsilon, Tuning: c.Tuning,
		Clients: c.Clients, RequestsPerClient: c.Requests, Liveness: true,
		Linearizability: c.Workload == "linearizability", Bank: c.Workload == "bank",
	}
	l := c.Link
	o.Link = &l
	if c.Protocol == "rcc" {
		o.M = c.M
		o.Policy = rcc.Replace
		if c.Policy == rcc.InPlace.String() {
			o.Policy = rcc.InPlace
		}
	}
	return o
}

// String describes the configuration over a few lines: what a failing
// seed's report shows.
func (c SwarmConfig) String() string {
	var b strings.Builder
	f := quorum.Faults(c.N)
	fmt.Fprintf(&b, "seed %d: %s n=%d f=%d", c.Seed, c.Protocol, c.N, f)
	if c.Protocol == "rcc" {
		fmt.Fprintf(&b, " m=%d policy=%s sigma=%s epsilon=%s", c.M, c.Policy, orDefault(c.Sigma), orDefault(c.Epsilon))
	}
	fmt.Fprintf(&b, " batch=%d\n", c.Batch)
	t := c.Tuning
	fmt.Fprintf(&b, "  tuning: checkpoint interval %s, window %s; timeouts (ticks of 10ms) request %s, progress %s, view change %s, retransmit %s\n",
		orDefault(t.CheckpointInterval), orDefault(t.Window), orDefault(t.RequestTimeout), orDefault(t.ProgressTimeout),
		orDefault(t.ViewChangeTimeout), orDefault(t.RetransmitTicks))
	fmt.Fprintf(&b, "  network: latency %v, jitter %v\n", c.Link.Latency, c.Link.Jitter)
	fmt.Fprintf(&b, "  workload: %s, %d clients × %d requests\n", c.Workload, c.Clients, c.Requests)
	bound := planBound(c.Faults)
	if bound == 0 {
		bound = 10 * time.Second
	}
	if len(c.Faults) == 0 {
		fmt.Fprintf(&b, "  faults: none (liveness bound %v)\n", bound)
	}
	if len(c.Faults) > 0 {
		fmt.Fprintf(&b, "  faults (over at %v; liveness bound %v after that):\n", faultsOver(c.Faults), bound)
		for _, line := range describePlan(c.Faults) {
			fmt.Fprintf(&b, "    %s\n", line)
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func orDefault[T int | uint64](v T) string {
	if v == 0 {
		return "default"
	}
	return fmt.Sprint(v)
}

// SwarmReplay is the command that runs seed alone, verbosely.
func SwarmReplay(seed uint64) string {
	return fmt.Sprintf("braid sim --swarm --seed %d --seeds 1 -v", seed)
}

// RunSwarm draws seed's configuration and runs it. The run failed if it
// returned an error or violations; a configuration beyond the fault budget
// is an error of the generator, not a finding.
func RunSwarm(seed uint64) (SwarmConfig, Result, error) {
	c := DrawSwarm(seed)
	if err := CheckPlan(c.N, c.Faults); err != nil {
		return c, Result{}, fmt.Errorf("swarm generator drew a plan beyond the fault budget: %w", err)
	}
	res, err := Run(c.Options())
	return c, res, err
}
