package main

// braid bench --calibrate and --sim: the cost model measured on this
// machine, and the real runtime run on the simulator under it (issue 11).

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"time"

	"github.com/braid-bft/braid/calibrate"
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
	N                int         `json:"n"`
	M                int         `json:"m"`
	Batch            int         `json:"batch"`
	Scenario         string      `json:"scenario"`
	Seed             uint64      `json:"seed"`
	OfferedPerSecond float64     `json:"offered_per_second"`
	ExecutedPerSec   float64     `json:"executed_per_second"`
	SteadyPerSec     float64     `json:"steady_per_second"`
	SteadyFrom       float64     `json:"steady_from_seconds"`
	P50ms            float64     `json:"p50_ms"`
	P99ms            float64     `json:"p99_ms"`
	ViewChanges      uint64      `json:"view_changes"`
	Violations       []string    `json:"violations"`
	NICBytesPerSec   int64       `json:"nic_bytes_per_second"`
	Model            sim.Machine `json:"model"`
	ModelSource      string      `json:"model_source"`
	VirtualSeconds   float64     `json:"virtual_seconds"`
	WallSeconds      float64     `json:"wall_seconds"`
}

// runBenchSim runs the real runtime on the simulator: open-loop clients at
// --open-loop-rate spread over the instances, for --warmup + --duration of
// simulated time, under --scenario's faults.
func runBenchSim(o *benchOptions, stdout, stderr io.Writer) error {
	human := stdout
	if o.json {
		human = stderr
	}
	model, source, err := loadCosts(o)
	if err != nil {
		return err
	}
	m := o.m
	if m == 0 {
		m = o.n // the simulator's default, as braid sim
	}
	rate := o.openLoopRate
	if rate == 0 {
		rate = 2000
	}
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
		clients = 1024 // open loop at thousands per second needs more than the real bench's 64 in flight
	}
	perInstance := max(1, (clients+m-1)/m)
	nic := int64(o.nicGbps * 1e9 / 8)
	fmt.Fprintf(human, "simulated: the real runtime on the simulator, n=%d m=%d batch=%d, scenario %s, seed %d\n", o.n, m, o.batch, o.scenario, seed)
	fmt.Fprintf(human, "load: open loop, %.0f requests/s in all over %d instances, %d clients each, %v warm-up + %v measured (simulated time)\n", rate, m, perInstance, o.warmup, o.duration)
	fmt.Fprintf(human, "network: LAN links (1 ms + up to 2 ms jitter), one %.3g Gbit/s NIC per replica\n", o.nicGbps)
	fmt.Fprintf(human, "model: %s\n       from %s\n", model, source)
	start := time.Now()
	res, err := sim.Run(sim.Options{
		Protocol: "rcc", N: o.n, M: m, Seed: seed, Scenario: o.scenario, Clients: -1, Batch: o.batch,
		Load:       &sim.Load{Rate: rate / float64(m), Instances: insts, Until: until, Clients: perInstance},
		MaxVirtual: until + 10*time.Second, Machine: model, NIC: nic,
		Progress: func(v time.Duration) {
			fmt.Fprintf(stderr, "\r  simulated %5.1fs of %.1fs, wall %5.1fs", v.Seconds(), until.Seconds(), time.Since(start).Seconds())
		},
	})
	fmt.Fprintln(stderr)
	if err != nil {
		return err
	}
	out := summariseSim(res, o, m, rate, seed, nic, model, source)
	out.WallSeconds = time.Since(start).Seconds()
	fmt.Fprintf(human, "\nresults (simulated time):\n  executed   %.0f req/s over the measured window, %.0f req/s steady (from %.2fs)\n", out.ExecutedPerSec, out.SteadyPerSec, out.SteadyFrom)
	fmt.Fprintf(human, "  latency    p50 %.1f ms   p99 %.1f ms (issue to f+1 matching replies)\n", out.P50ms, out.P99ms)
	fmt.Fprintf(human, "  view changes %d, invariant violations %d; %.1fs simulated in %.1fs of wall time\n", out.ViewChanges, len(out.Violations), out.VirtualSeconds, out.WallSeconds)
	for _, v := range out.Violations {
		fmt.Fprintf(human, "  VIOLATION %s\n", v)
	}
	if o.json {
		b, err := json.Marshal(out)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", b)
	}
	if len(out.Violations) > 0 {
		return fmt.Errorf("%d invariant violations (replay: braid bench --sim with the same flags and --seed %d)", len(out.Violations), seed)
	}
	return nil
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
		N: o.n, M: m, Batch: o.batch, Scenario: o.scenario, Seed: seed, OfferedPerSecond: rate,
		ExecutedPerSec: res.Throughput(from, to), SteadyFrom: steady.Seconds(),
		P50ms: pct(0.50), P99ms: pct(0.99), ViewChanges: res.ViewChanges, Violations: res.Violations,
		NICBytesPerSec: nic, Model: model, ModelSource: source, VirtualSeconds: res.VirtualSeconds,
	}
	if out.Violations == nil {
		out.Violations = []string{}
	}
	if steady < to {
		out.SteadyPerSec = res.Throughput(steady, to)
	}
	return out
}
