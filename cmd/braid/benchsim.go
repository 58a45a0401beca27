package main

// braid bench --calibrate and --sim: the cost model measured on this
// machine, and the real runtime run on the simulator under it (issue 11).

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/braid-bft/braid/calibrate"
	"github.com/braid-bft/braid/internal/atomicfile"
	"github.com/braid-bft/braid/sim"
)

// defaultCosts is where --calibrate writes and --sim reads by default.
const defaultCosts = "braid-costs.json"

// runCalibrate measures the cost model and writes it to --costs.
func runCalibrate(o *benchOptions, stdout io.Writer) error {
	dir := o.dir
	if dir == "" {
		dir = "."
	}
	fmt.Fprintf(stdout, "calibrating the simulator's cost model on this machine (best of 3 passes each, one core):\n")
	m, err := calibrate.Measure(dir, stdout)
	if err != nil {
		return err
	}
	if err := calibrate.Write(o.costs, m); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%s)\nuse it: braid bench --sim --costs %s\n", o.costs, m.Source, o.costs)
	return nil
}

// memoryGuard stops a simulation whose heap outgrows limit bytes, with an
// error that says so, rather than let the kernel kill it: a cluster pushed
// past saturation into view-change storms at large n makes messages of
// many megabytes, and the simulator holds every one in flight.
func memoryGuard(limit int64) func() error {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	return func() error {
		metrics.Read(sample)
		if used := int64(sample[0].Value.Uint64()); limit > 0 && used > limit {
			return fmt.Errorf("the simulator's heap reached %d MiB, over --max-memory %d MiB (a run past saturation: offer less, or raise the limit)", used>>20, limit>>20)
		}
		return nil
	}
}

// writeHeapProfile writes the live heap to path (nothing when empty).
func writeHeapProfile(path string) error {
	if path == "" {
		return nil
	}
	if err := atomicfile.Write(path, 0o644, pprof.WriteHeapProfile); err != nil {
		return fmt.Errorf("--memprofile: %w", err)
	}
	return nil
}

// loadCosts reads the cost file; the default file may be missing (then the
// simulator's built-in model runs, and the output says so).
func loadCosts(o *benchOptions) (sim.Machine, string, error) {
	m, err := sim.LoadMachine(o.costs)
	switch {
	case err == nil:
		return m, o.costs, nil
	case errors.Is(err, fs.ErrNotExist) && !o.costsSet:
		return sim.Machine{}, "built-in (no " + defaultCosts + " here; run braid bench --calibrate to measure this machine)", nil
	default:
		return sim.Machine{}, "", err
	}
}

// simBenchResult is --sim's --json object.
type simBenchResult struct {
	Key              string   `json:"key,omitempty"` // an experiment's name for the run
	N                int      `json:"n"`
	M                int      `json:"m"`
	Batch            int      `json:"batch"`
	Payload          int      `json:"payload"`
	Scenario         string   `json:"scenario"`
	WAN              bool     `json:"wan"`
	Seed             uint64   `json:"seed"`
	OfferedPerSecond float64  `json:"offered_per_second"`
	ExecutedPerSec   float64  `json:"executed_per_second"`
	SteadyPerSec     float64  `json:"steady_per_second"`
	SteadyFrom       float64  `json:"steady_from_seconds"`
	P50ms            float64  `json:"p50_ms"`
	P99ms            float64  `json:"p99_ms"`
	ViewChanges      uint64   `json:"view_changes"`
	Violations       []string `json:"violations"`
	NICBytesPerSec   int64    `json:"nic_bytes_per_second"`
	// Usage is the busiest replica's utilisation of each resource, among
	// the replicas leading an instance and among the others; Bottleneck
	// names the most utilised of them all.
	Usage          []roleUsage `json:"usage"`
	Bottleneck     string      `json:"bottleneck"`
	Model          sim.Machine `json:"model"`
	ModelSource    string      `json:"model_source"`
	VirtualSeconds float64     `json:"virtual_seconds"`
	Clients        int         `json:"clients"`
	// Timeline is executed requests/s in each 100 ms of simulated time
	// from the start (warm-up included): a failure's dip and recovery.
	Timeline    []float64 `json:"timeline_per_second"`
	Messages    uint64    `json:"messages"`
	Rounds      uint64    `json:"rounds"`
	Proposals   uint64    `json:"proposals"`
	KeepUp      uint64    `json:"keep_up_proposals"`
	Events      uint64    `json:"events"`
	WallSeconds float64   `json:"wall_seconds"`
}

// runBenchSim runs the real runtime on the simulator: closed-loop clients
// (or open-loop arrivals at --open-loop-rate) spread over the instances,
// for --warmup + --duration of simulated time, under --scenario's faults.
func runBenchSim(o *benchOptions, stdout, stderr io.Writer) error {
	human := stdout
	if o.json {
		human = stderr
	}
	out, err := simulate(o, human, stderr)
	if err != nil {
		return err
	}
	printSim(human, out)
	if o.json {
		b, err := json.Marshal(out)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", b)
	}
	if len(out.Violations) > 0 {
		return fmt.Errorf("%d invariant violations (replay: braid bench --sim with the same flags and --seed %d)", len(out.Violations), out.Seed)
	}
	return nil
}

// simulate runs one simulated benchmark, describing it on human and its
// progress on progress (nil: none).
func simulate(o *benchOptions, human, progress io.Writer) (simBenchResult, error) {
	model, source, err := loadCosts(o)
	if err != nil {
		return simBenchResult{}, err
	}
	if o.cores > 0 {
		model.Cores = o.cores
		source += fmt.Sprintf("; cores set to %d by --cores", o.cores)
	}
	m := o.m
	if m == 0 {
		m = o.n // the simulator's default, as braid sim
	}
	rate := o.openLoopRate
	seed := o.seed
	if seed == 0 {
		seed = 1 // a simulated figure is a function of its seed: default to a fixed one
	}
	insts := make([]uint32, m)
	for i := range insts {
		insts[i] = uint32(i)
	}
	until := o.warmup + o.duration
	clients := o.clients
	if !o.clientSet {
		clients = simClients(rate, m, o.batch)
	}
	perInstance := max(1, (clients+m-1)/m)
	nic := int64(o.nicGbps * 1e9 / 8)
	load := &sim.Load{Instances: insts, Until: until, Clients: perInstance, Window: true, Payload: o.payload}
	loadText := fmt.Sprintf("closed loop, %d clients per instance, each with one request outstanding", perInstance)
	if rate > 0 {
		load.Rate = rate / float64(m)
		loadText = fmt.Sprintf("open loop, %.0f requests/s in all over %d instances, %d clients each", rate, m, perInstance)
	} else {
		load.Closed = true
	}
	fmt.Fprintf(human, "simulated: the real runtime on the simulator, n=%d m=%d batch=%d, scenario %s, seed %d\n", o.n, m, o.batch, o.scenario, seed)
	fmt.Fprintf(human, "load: %s, %d-byte puts, %v warm-up + %v measured (simulated time)\n", loadText, o.payload, o.warmup, o.duration)
	fmt.Fprintf(human, "network: %s, one %.3g Gbit/s NIC per replica\n", linksText(o), o.nicGbps)
	fmt.Fprintf(human, "model: %s\n       from %s\n", model, source)
	// The simulator allocates a message per delivery: trade memory (the
	// guard bounds it) for less time in the collector — until the heap
	// nears the guard: then the collector works harder instead (at n = 64
	// the process reached 6.5 GB resident for 0.6 GB live at the end).
	defer debug.SetGCPercent(debug.SetGCPercent(300))
	if o.maxMemory > 0 {
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(o.maxMemory * 3 / 4))
	}
	start := time.Now()
	opts := sim.Options{
		Protocol: "rcc", N: o.n, M: m, Seed: seed, Scenario: o.scenario, Clients: -1, Batch: o.batch,
		Load: load, MaxVirtual: until, Machine: model, NIC: nic, Abort: memoryGuard(o.maxMemory),
		MeasureFrom: o.warmup, MeasureTo: until, Regions: simRegions(o),
	}
	if progress != nil {
		opts.Progress = func(v time.Duration) {
			fmt.Fprintf(progress, "\r  simulated %5.1fs of %.1fs, wall %5.1fs", v.Seconds(), until.Seconds(), time.Since(start).Seconds())
		}
	}
	res, err := sim.Run(opts)
	if progress != nil {
		fmt.Fprintln(progress)
	}
	// The heap profile is written for a stopped run too: a run the memory
	// guard stopped is the one whose heap needs explaining.
	if perr := writeHeapProfile(o.memProfile); perr != nil && err == nil {
		return simBenchResult{}, perr
	}
	if err != nil {
		return simBenchResult{}, fmt.Errorf("%w; %d view changes by then", err, res.ViewChanges)
	}
	out := summariseSim(res, o, m, rate, seed, nic, model, source)
	out.Clients = perInstance * m
	out.WallSeconds = time.Since(start).Seconds()
	return out, nil
}

// simRegions is --wan's placement: six AWS regions (nil: one LAN).
func simRegions(o *benchOptions) *sim.Regions {
	if !o.wan {
		return nil
	}
	return sim.AWSRegions()
}

// linksText describes the network a run simulates.
func linksText(o *benchOptions) string {
	if g := simRegions(o); g != nil {
		return fmt.Sprintf("WAN, replicas round-robin over %d regions (%s), clients in %s; round-trip times: %s", len(g.Names), strings.Join(g.Names, ", "), g.Names[0], g.Source)
	}
	return "LAN links (1 ms + up to 2 ms jitter)"
}

// timelineStep is the width of the throughput timeline's buckets, seconds.
const timelineStep = 0.1

// simClients is --sim's default client count: enough for the offered rate
// at a saturated latency (a quarter second), or closed loop, two full
// batches per instance; never fewer than 1,024.
func simClients(rate float64, m, batch int) int {
	if rate > 0 {
		return max(1024, int(math.Ceil(rate/4)))
	}
	return max(1024, 2*m*batch)
}

// printSim prints a simulated benchmark's results.
func printSim(human io.Writer, out simBenchResult) {
	fmt.Fprintf(human, "\nresults (simulated time):\n  executed   %.0f req/s over the measured window, %.0f req/s steady (from %.2fs)\n", out.ExecutedPerSec, out.SteadyPerSec, out.SteadyFrom)
	fmt.Fprintf(human, "  latency    p50 %.1f ms   p99 %.1f ms (issue to f+1 matching replies)\n", out.P50ms, out.P99ms)
	for _, u := range out.Usage {
		fmt.Fprintf(human, "  busiest %-9s loop %3.0f%%  verification cores %3.0f%%  client lane %3.0f%%  NIC %3.0f%%  disk %3.0f%%  (%d replicas)\n",
			u.Role, 100*u.Loop, 100*u.Workers, 100*u.ClientLane, 100*u.NIC, 100*u.Disk, u.Replicas)
	}
	fmt.Fprintf(human, "  bottleneck %s\n", out.Bottleneck)
	fmt.Fprintf(human, "  view changes %d, invariant violations %d; %.1fs simulated in %.1fs of wall time (%d messages, %d events)\n", out.ViewChanges, len(out.Violations), out.VirtualSeconds, out.WallSeconds, out.Messages, out.Events)
	fmt.Fprintf(human, "  rounds     %d executed; %d batches proposed (%d of them to keep up with other instances)\n", out.Rounds, out.Proposals, out.KeepUp)
	for _, v := range out.Violations {
		fmt.Fprintf(human, "  VIOLATION %s\n", v)
	}
}

// summariseSim turns a run into the figures: executed over the measured
// window; steady from the end of the scenario's scheduled faults (or the
// warm-up, whichever is later) to the end of the window; latency of the
// requests completed in the window.
func summariseSim(res sim.Result, o *benchOptions, m int, rate float64, seed uint64, nic int64, model sim.Machine, source string) simBenchResult {
	from, to := o.warmup, o.warmup+o.duration
	steady := max(from, time.Duration(res.FaultsOverSeconds*float64(time.Second)))
	var lat []float64
	for i, t := range res.LoadCompletions {
		if t >= from.Seconds() && t < to.Seconds() {
			lat = append(lat, res.LoadLatencies[i])
		}
	}
	slices.Sort(lat)
	pct := func(q float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return 1000 * lat[min(len(lat)-1, int(q*float64(len(lat))))]
	}
	out := simBenchResult{
		N: o.n, M: m, Batch: o.batch, Payload: o.payload, Scenario: o.scenario, Seed: seed, WAN: o.wan, OfferedPerSecond: rate,
		ExecutedPerSec: res.Throughput(from, to), SteadyFrom: steady.Seconds(),
		P50ms: pct(0.50), P99ms: pct(0.99), ViewChanges: res.ViewChanges, Violations: res.Violations,
		NICBytesPerSec: nic, Model: model, ModelSource: source, VirtualSeconds: res.VirtualSeconds,
		Messages: res.Messages, Events: res.Events, Rounds: res.Rounds, Proposals: res.Proposals, KeepUp: res.KeepUp,
	}
	if out.Violations == nil {
		out.Violations = []string{}
	}
	out.Usage, out.Bottleneck = attribute(res.Usage)
	out.Timeline = make([]float64, int(math.Ceil(to.Seconds()/timelineStep)))
	for _, t := range res.LoadCompletions {
		if k := int(t / timelineStep); k >= 0 && k < len(out.Timeline) {
			out.Timeline[k] += 1 / timelineStep
		}
	}
	if steady < to {
		out.SteadyPerSec = res.Throughput(steady, to)
	}
	return out
}

// roleUsage is the highest utilisation of each resource among one group of
// replicas: those leading at least one instance ("primary") or none
// ("backup").
type roleUsage struct {
	Role     string  `json:"role"`
	Replicas int     `json:"replicas"`
	Loop     float64 `json:"loop"`
	Workers  float64 `json:"verification_cores"`
	NIC      float64 `json:"nic"`
	Disk     float64 `json:"disk"`
	// ClientLane: the client verification lanes (shell.ClientLanes: half the cores, at least one).
	ClientLane float64 `json:"client_lane"`
}

// attribute groups the replicas' usage by role and names the bottleneck:
// the most utilised resource of any replica, with its utilisation.
func attribute(us []sim.Usage) ([]roleUsage, string) {
	groups := []roleUsage{{Role: "primary"}, {Role: "backup"}}
	best, bottleneck := -1.0, "none measured"
	for _, u := range us {
		g := &groups[1]
		if u.Leads > 0 {
			g = &groups[0]
		}
		g.Replicas++
		for _, r := range []struct {
			name string
			v    float64
			max  *float64
		}{{"event loop", u.Loop, &g.Loop}, {"verification cores", u.Workers, &g.Workers}, {"NIC", u.NIC, &g.NIC}, {"disk", u.Disk, &g.Disk},
			{"client-verification lane", u.ClientLane, &g.ClientLane}} {
			*r.max = max(*r.max, r.v)
			if r.v > best {
				best = r.v
				bottleneck = fmt.Sprintf("%s %s (replica %d) at %.0f%%", g.Role, r.name, u.Replica, 100*r.v)
			}
		}
	}
	if best < 0.9 {
		bottleneck = "none saturated; busiest: " + bottleneck
	}
	out := groups[:0]
	for _, g := range groups {
		if g.Replicas > 0 {
			out = append(out, g)
		}
	}
	return out, bottleneck
}
