package sim

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/braid-bft/braid/byzantine"
	"github.com/braid-bft/braid/quorum"
)

// envUint reads a count or a seed from the environment.
func envUint(t *testing.T, name string, def uint64) uint64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: want a non-negative integer", name, v)
	}
	return n
}

// swarmOutcome is one seed's run in TestSwarm.
type swarmOutcome struct {
	cfg SwarmConfig
	res Result
	err error
}

// runSwarmSeeds runs seeds first…first+count−1 on GOMAXPROCS workers.
func runSwarmSeeds(first, count uint64) []swarmOutcome {
	out := make([]swarmOutcome, count)
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := uint64(0)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= count {
					return
				}
				cfg, res, err := RunSwarm(first + i)
				out[i] = swarmOutcome{cfg, res, err}
			}
		})
	}
	wg.Wait()
	return out
}

// TestSwarm runs 500 swarm seeds (50 with -short): each draws its own
// protocol, cluster, tuning, network, fault mix and workload, and must hold
// every safety check and liveness once its faults are over. Long mode:
// BRAID_SWARM_SEEDS=10000 go test -timeout 0 -run '^TestSwarm$' ./sim;
// BRAID_SWARM_BASE moves the first seed.
func TestSwarm(t *testing.T) {
	def := uint64(500)
	if testing.Short() {
		def = 50
	}
	count, first := envUint(t, "BRAID_SWARM_SEEDS", def), envUint(t, "BRAID_SWARM_BASE", 1)
	if count == 0 {
		t.Skip("BRAID_SWARM_SEEDS=0")
	}
	t.Logf("swarm seeds %d..%d (BRAID_SWARM_SEEDS, BRAID_SWARM_BASE); replay one: go run ./cmd/braid sim --swarm --seed S --seeds 1 -v", first, first+count-1)
	start := time.Now()
	var lin LinStats
	failures := 0
	for _, o := range runSwarmSeeds(first, count) {
		if o.res.Lin != nil {
			lin.add(*o.res.Lin)
		}
		if o.err == nil && len(o.res.Violations) == 0 {
			continue
		}
		failures++
		why := strings.Join(o.res.Violations, "\n  ")
		if o.err != nil {
			why = o.err.Error()
		}
		t.Errorf("%s\n  %s\n  replay: go run ./cmd/%s", o.cfg, why, SwarmReplay(o.cfg.Seed))
	}
	t.Logf("%d seeds, %d failed, %d kv operations checked over %d key histories (%d not linearizable, %d timed out), %.1fs wall",
		count, failures, lin.Operations, lin.Keys, lin.Illegal, lin.Timeouts, time.Since(start).Seconds())
}

// The same seed draws the same configuration and runs the same trace;
// another seed draws another.
func TestSwarmDeterminism(t *testing.T) {
	for seed := uint64(1); seed <= 200; seed++ {
		a, b := DrawSwarm(seed), DrawSwarm(seed)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("seed %d drew two configurations:\n%s\n%s", seed, a, b)
		}
		if c := DrawSwarm(seed + 1); reflect.DeepEqual(a.Faults, c.Faults) && a.N == c.N && a.Link == c.Link {
			t.Errorf("seeds %d and %d drew the same configuration:\n%s", seed, seed+1, a)
		}
	}
	var small []uint64 // three seeds with faults and a small cluster, to keep it quick
	for seed := uint64(1); len(small) < 3; seed++ {
		if c := DrawSwarm(seed); c.N <= 5 && len(c.Faults) > 1 {
			small = append(small, seed)
		}
	}
	for _, seed := range small {
		_, a, errA := RunSwarm(seed)
		_, b, errB := RunSwarm(seed)
		if errA != nil || errB != nil {
			t.Fatal(errA, errB)
		}
		if a.TraceHash != b.TraceHash || a.Events != b.Events || a.VirtualSeconds != b.VirtualSeconds {
			t.Errorf("seed %d: two runs, traces %s and %s", seed, a.TraceHash, b.TraceHash)
		}
		t.Logf("seed %d: trace %s, %d events (%s)", seed, a.TraceHash[:16], a.Events, strings.SplitN(DrawSwarm(seed).String(), "\n", 2)[0])
	}
}

// Over many seeds, every drawn plan is within the fault budget, and the
// draws cover the catalogue: every fault kind, both protocols, both
// policies, every workload, n from 4 to 10, m = 1 and m = n.
func TestSwarmDrawsWithinBudget(t *testing.T) {
	const seeds = 20000
	kinds := map[string]int{}
	seen := map[string]bool{}
	maxFaulty := 0
	for seed := uint64(1); seed <= seeds; seed++ {
		c := DrawSwarm(seed)
		if err := CheckPlan(c.N, c.Faults); err != nil {
			t.Fatalf("seed %d drew a plan beyond the budget: %v\n%s", seed, err, c)
		}
		f := quorum.Faults(c.N)
		if c.Protocol == "rcc" && (c.Policy == "in-place" && c.M <= f || c.Policy == "replace" && c.M > c.N-f) {
			t.Fatalf("seed %d drew policy %s at m=%d, n=%d: rcc refuses it", seed, c.Policy, c.M, c.N)
		}
		if k, w := cmp.Or(c.Tuning.CheckpointInterval, 8), cmp.Or(c.Tuning.Window, 32); w%k != 0 || w <= 2*k || cmp.Or(c.Sigma, w/2)+k >= w {
			t.Fatalf("seed %d drew K=%d, W=%d, σ=%d: outside what the cores accept", seed, k, w, c.Sigma)
		}
		replicas := map[int]bool{}
		for _, x := range c.Faults {
			kinds[x.Kind]++
			if !x.network() {
				replicas[x.Replica] = true
			}
		}
		maxFaulty = max(maxFaulty, len(replicas))
		seen[c.Protocol] = true
		seen[c.Workload] = true
		seen[c.Policy] = true
		seen[fmt.Sprintf("n=%d", c.N)] = true
		if c.Protocol == "rcc" && c.M == 1 {
			seen["m=1"] = true
		}
		if c.Protocol == "rcc" && c.M == c.N {
			seen["m=n"] = true
		}
	}
	var want []string
	for _, k := range byzantine.Kinds {
		want = append(want, string(k))
	}
	want = append(want, FaultTwin, FaultCrash, FaultWipe, FaultDiskFull, FaultFsync, FaultIsolate, FaultOneWay, FaultCut, FaultPartition, FaultLossy)
	for _, k := range want {
		if kinds[k] == 0 {
			t.Errorf("no seed of %d drew a %s fault", seeds, k)
		}
	}
	for _, s := range []string{"pbft", "rcc", "kv", "linearizability", "bank", "replace", "in-place", "m=1", "m=n"} {
		if !seen[s] {
			t.Errorf("no seed of %d drew %s", seeds, s)
		}
	}
	for n := swarmMinN; n <= swarmMaxN; n++ {
		if !seen[fmt.Sprintf("n=%d", n)] {
			t.Errorf("no seed of %d drew n=%d", seeds, n)
		}
	}
	t.Logf("%d seeds: faults by kind %v; at most %d replicas faulty in one plan (some in turn)", seeds, kinds, maxFaulty)
}

// CheckPlan refuses what the swarm must never draw.
func TestCheckPlanRefusesBeyondBudget(t *testing.T) {
	ms := func(d int) time.Duration { return time.Duration(d) * time.Millisecond }
	for _, tc := range []struct {
		name string
		n    int
		plan []Fault
		want string
	}{
		{"f+1 Byzantine", 4, []Fault{{Kind: "equivocate", Replica: 0}, {Kind: "silent", Replica: 1}}, "more than f=1"},
		{"a crash beside f Byzantine", 7, []Fault{{Kind: "replay", Replica: 5}, {Kind: "twin", Replica: 6}, {Kind: FaultCrash, Replica: 1, From: ms(300), Until: ms(500)}}, "more than f=2"},
		{"overlapping transient faults", 4, []Fault{{Kind: FaultCrash, Replica: 1, From: ms(300), Until: ms(900)}, {Kind: FaultIsolate, Replica: 2, From: ms(800), Until: ms(1000)}}, "more than f=1"},
		{"a permanent crash and a later one", 4, []Fault{{Kind: FaultCrash, Replica: 1, From: ms(300)}, {Kind: FaultDiskFull, Replica: 2, From: ms(800), Until: ms(1000)}}, "more than f=1"},
		{"a wiped disk counts throughout", 4, []Fault{{Kind: FaultWipe, Replica: 1, From: ms(800), Until: ms(1000)}, {Kind: FaultCrash, Replica: 2, From: ms(100), Until: ms(200)}}, "more than f=1"},
		{"two faults of one replica", 7, []Fault{{Kind: FaultCrash, Replica: 1, From: ms(300), Until: ms(900)}, {Kind: FaultOneWay, Replica: 1, From: ms(400), Until: ms(500)}}, "2 faults at once"},
		{"a partition that never heals", 4, []Fault{{Kind: FaultPartition, Replica: -1, Group: []int{0}, From: ms(300)}}, "must end"},
		{"a Byzantine behaviour that starts late", 4, []Fault{{Kind: "flood", Replica: 0, From: ms(300)}}, "whole run"},
		{"an unknown kind", 4, []Fault{{Kind: "meteor", Replica: 0}}, "unknown fault kind"},
		{"a replica out of range", 4, []Fault{{Kind: "silent", Replica: 4}}, "outside"},
	} {
		err := CheckPlan(tc.n, tc.plan)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: CheckPlan = %v; want an error with %q", tc.name, err, tc.want)
		}
	}
	ok := []Fault{{Kind: "equivocate", Replica: 0}, {Kind: FaultCrash, Replica: 1, From: ms(100), Until: ms(300)}, {Kind: FaultIsolate, Replica: 2, From: ms(300), Until: ms(600)},
		{Kind: FaultPartition, Replica: -1, Group: []int{0, 3}, From: ms(100), Until: ms(900)}}
	if err := CheckPlan(7, ok); err != nil {
		t.Errorf("a plan within f=2 refused: %v", err)
	}
}

// The negative control: a swarm configuration with f+1 twins (beyond the
// fault budget, which CheckPlan refuses) must be caught by the run's checks.
func TestSwarmCatchesBeyondFaultBudget(t *testing.T) {
	caught, tried := 0, 0
	for seed := uint64(1); tried < 6; seed++ {
		c := DrawSwarm(seed)
		if c.N != 4 {
			// n = 3f+1, where f+1 twins and their side's correct replicas
			// make a quorum on each side (at n = 5 they do not); and small,
			// as beyond the budget a large cluster takes long to fail.
			continue
		}
		tried++
		c.Faults = nil
		for i := range quorum.Vouch(c.N) { // view 0's primary first, as the twin scenario
			c.Faults = append(c.Faults, Fault{Kind: FaultTwin, Replica: (c.N - i) % c.N})
		}
		c.Clients, c.Requests = 4, 12 // both sides of the split get requests
		if err := CheckPlan(c.N, c.Faults); err == nil {
			t.Fatalf("seed %d: CheckPlan accepted f+1 twins", seed)
		}
		res, err := Run(c.Options())
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Violations) > 0 {
			caught++
			t.Logf("seed %d (%s): caught: %s", seed, strings.SplitN(c.String(), "\n", 2)[0], res.Violations[0])
		}
	}
	if caught == 0 {
		t.Error("f+1 twins in 6 swarm configurations and no check failed")
	}
}

// swarmRegressions are configurations that once failed (each with the seed
// that drew it when it was found; testdata keeps the configuration itself,
// so that the case survives changes to the generator). docs/swarm.md
// tells each finding.
const swarmRegressions = "testdata/swarm-regressions.json"

// TestSwarmRegressions runs every configuration the swarm once failed on.
func TestSwarmRegressions(t *testing.T) {
	data, err := os.ReadFile(swarmRegressions)
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Finding string      `json:"finding"`
		Config  SwarmConfig `json:"config"`
		// Refused, if set, is what the simulator must now refuse the
		// configuration with (the finding was a configuration that could
		// not work, and is no longer accepted).
		Refused string `json:"refused,omitempty"`
	}
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatal("no regression cases")
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.Config.Seed), func(t *testing.T) {
			if drawn := DrawSwarm(tc.Config.Seed); !reflect.DeepEqual(drawn, tc.Config) {
				t.Logf("seed %d now draws another configuration; running the recorded one", tc.Config.Seed)
			}
			res, err := Run(tc.Config.Options())
			if tc.Refused != "" {
				if err == nil || !strings.Contains(err.Error(), tc.Refused) {
					t.Errorf("%s\n%s\n  run: %v, violations %v; want it refused with %q", tc.Finding, tc.Config, err, res.Violations, tc.Refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Violations) > 0 {
				t.Errorf("%s\n%s\n  %s", tc.Finding, tc.Config, strings.Join(res.Violations, "\n  "))
			}
		})
	}
}

func TestSwarmConfigDescribesFaults(t *testing.T) {
	for seed := uint64(1); seed <= 50; seed++ {
		c := DrawSwarm(seed)
		s := c.String()
		for _, want := range []string{fmt.Sprintf("seed %d: %s n=%d", seed, c.Protocol, c.N), "workload: " + c.Workload, "network: latency"} {
			if !strings.Contains(s, want) {
				t.Errorf("seed %d: description lacks %q:\n%s", seed, want, s)
			}
		}
		for _, x := range c.Faults {
			if !strings.Contains(s, x.String()) || (!byzantineKind(x.Kind) && !strings.Contains(x.String(), x.From.String())) {
				t.Errorf("seed %d: fault %+v not described with its time:\n%s", seed, x, s)
			}
		}
		if c.Protocol == "rcc" && !slices.ContainsFunc(strings.Fields(s), func(w string) bool { return w == fmt.Sprintf("m=%d", c.M) }) {
			t.Errorf("seed %d: no m in %s", seed, s)
		}
	}
}
