package main

// braid bench --sim --experiment NAME: the report's experiments (issue 11),
// each a list of simulated runs whose results are kept, one JSON object per
// line, in DIR/NAME.jsonl (a run already there is not repeated, so a long
// experiment resumes where it stopped), then rendered as DIR/NAME.md (the
// table docs/benchmarks.md quotes) and DIR/NAME.svg (its plot).

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/braid-bft/braid/internal/atomicfile"
	"github.com/braid-bft/braid/internal/plot"
	"github.com/braid-bft/braid/quorum"
)

// experiment is a named list of runs and how to show them.
type experiment struct {
	name, about string
	runs        func(o *benchOptions) []simRun
	render      func(w io.Writer, rs []simBenchResult) (plot.Chart, error)
}

// simRun is one run of an experiment: a label and the options it changes.
type simRun struct {
	key              string // unique within the experiment
	n, m, batch      int
	scenario         string
	warmup, duration time.Duration
	wan              bool
	cores            int // verification cores per replica (0: the cost file's)
}

var experiments = []experiment{
	{name: "scale", about: "executed throughput and latency vs n for PBFT (m = 1) and RCC (m = n − f, m = n), batch 100, closed-loop clients at saturation", runs: scaleRuns, render: renderScale},
	{name: "failures", about: "throughput over time at n = 16, RCC (m = n) and PBFT (m = 1): a crashed, a silent and a throttling primary, and f Byzantine primaries", runs: failureRuns, render: renderFailures},
	{name: "wan", about: "PBFT vs RCC over six AWS regions, n = 7", runs: wanRuns, render: renderWAN},
	{name: "scale-16core", about: "the scale experiment on 16 verification cores per replica (the paper's machines), the measured per-signature costs kept", runs: scale16Runs, render: renderScale},
	{name: "batch", about: "executed throughput vs batch size (10, 100, 400) at n = 16 and n = 32, PBFT (m = 1) and RCC (m = n − f)", runs: batchRuns, render: renderBatch},
}

func findExperiment(name string) (experiment, bool) {
	for _, e := range experiments {
		if e.name == name {
			return e, true
		}
	}
	return experiment{}, false
}

func series(m, n int) string {
	switch {
	case m == 1:
		return "PBFT (m = 1)"
	case m == n:
		return "RCC (m = n)"
	default:
		return "RCC (m = n − f)"
	}
}

func scaleRuns(o *benchOptions) []simRun {
	var rs []simRun
	for _, n := range []int{4, 16, 32, 64, 128} {
		if n > o.maxN {
			continue
		}
		f := quorum.Faults(n)
		warm, dur := time.Second, time.Second
		if n >= 32 {
			warm, dur = 500*time.Millisecond, 500*time.Millisecond // wall time grows as n³ at m = n
		}
		for _, m := range []int{1, n - f, n} {
			rs = append(rs, simRun{key: fmt.Sprintf("n=%d m=%d batch=100", n, m), n: n, m: m, batch: 100, scenario: "fault-free", warmup: warm, duration: dur})
		}
	}
	return rs
}

// scale16Runs are scaleRuns with 16 cores a replica: the RCC paper's
// replicas had 16 cores, and on 2 the signature checks bound RCC first.
func scale16Runs(o *benchOptions) []simRun {
	rs := scaleRuns(o)
	for i := range rs {
		rs[i].cores = 16
		rs[i].key += " cores=16"
	}
	return rs
}

func batchRuns(o *benchOptions) []simRun {
	var rs []simRun
	for _, n := range []int{16, 32} {
		if n > o.maxN {
			continue
		}
		warm, dur := time.Second, time.Second
		if n >= 32 {
			warm, dur = 500*time.Millisecond, 500*time.Millisecond
		}
		for _, m := range []int{1, n - quorum.Faults(n)} {
			for _, b := range []int{10, 100, 400} {
				rs = append(rs, simRun{key: fmt.Sprintf("n=%d m=%d batch=%d", n, m, b), n: n, m: m, batch: b, scenario: "fault-free", warmup: warm, duration: dur})
			}
		}
	}
	return rs
}

func failureRuns(*benchOptions) []simRun {
	var rs []simRun
	for _, m := range []int{16, 1} {
		for _, sc := range []string{"fault-free", "crash-primary", "silent-primary", "throttling-primary", "f-byzantine-primaries"} {
			r := simRun{key: fmt.Sprintf("m=%d %s", m, sc), n: 16, m: m, batch: 100, scenario: sc, warmup: 0, duration: 3 * time.Second}
			if sc == "throttling-primary" {
				// A throttler is never gone: its instance resumes after
				// each skip, throttles, and is caught again, the skip
				// doubling each time (rcc skipFor). 3 s showed only the
				// doubling; 6 s shows what it converges to.
				r.key += " 6s"
				r.duration = 6 * time.Second
			}
			rs = append(rs, r)
		}
	}
	return rs
}

func wanRuns(*benchOptions) []simRun {
	var rs []simRun
	for _, m := range []int{1, 5, 7} {
		rs = append(rs, simRun{key: fmt.Sprintf("wan n=7 m=%d", m), n: 7, m: m, batch: 100, scenario: "fault-free", warmup: 2 * time.Second, duration: 2 * time.Second, wan: true})
	}
	return rs
}

// runExperiment runs what DIR/NAME.jsonl lacks, then renders the table and
// the plot from everything it holds.
func runExperiment(o *benchOptions, stdout, stderr io.Writer) error {
	e, ok := findExperiment(o.experiment)
	if !ok {
		var names []string
		for _, e := range experiments {
			names = append(names, e.name)
		}
		return fmt.Errorf("--experiment %q: want one of %s", o.experiment, strings.Join(names, ", "))
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	path := filepath.Join(o.out, e.name+".jsonl")
	done, err := readResults(path)
	if err != nil {
		return err
	}
	runs := e.runs(o)
	fmt.Fprintf(stdout, "experiment %s: %s\n%d runs, results in %s\n", e.name, e.about, len(runs), path)
	for i, r := range runs {
		if _, ok := done[r.key]; ok {
			fmt.Fprintf(stdout, "[%d/%d] %s: done before, kept\n", i+1, len(runs), r.key)
			continue
		}
		if o.renderOnly {
			fmt.Fprintf(stdout, "[%d/%d] %s: not run (--render-only)\n", i+1, len(runs), r.key)
			continue
		}
		fmt.Fprintf(stdout, "[%d/%d] %s ...\n", i+1, len(runs), r.key)
		ro := *o
		ro.n, ro.m, ro.batch, ro.scenario, ro.warmup, ro.duration, ro.wan, ro.cores = r.n, r.m, r.batch, r.scenario, r.warmup, r.duration, r.wan, r.cores
		// Closed loop at saturation: enough clients for four full
		// batches per instance, at least 4,096.
		ro.openLoopRate, ro.clientSet, ro.clients = 0, true, max(4096, 4*r.m*r.batch)
		res, err := simulate(&ro, io.Discard, stderr)
		if err != nil {
			fmt.Fprintf(stdout, "[%d/%d] %s: FAILED: %v\n", i+1, len(runs), r.key, err)
			continue // the others still run; this one is retried next time
		}
		res.Key = r.key
		fmt.Fprintf(stdout, "[%d/%d] %s: %.0f req/s, p50 %.0f ms, bottleneck %s (%.0fs wall)\n", i+1, len(runs), r.key, res.ExecutedPerSec, res.P50ms, res.Bottleneck, res.WallSeconds)
		if err := appendResult(path, res); err != nil {
			return err
		}
		done[r.key] = res
	}
	var rs []simBenchResult
	for _, r := range runs {
		if res, ok := done[r.key]; ok {
			rs = append(rs, res)
		}
	}
	var table strings.Builder
	chart, err := e.render(&table, rs)
	if err != nil {
		return err
	}
	fmt.Fprintf(&table, "\nModel: %s (from %s); generated by `braid bench --sim --experiment %s --out %s`.\n", modelOf(rs), sourceOf(rs), e.name, o.out)
	if err := atomicfile.WriteBytes(filepath.Join(o.out, e.name+".md"), 0o644, []byte(table.String())); err != nil {
		return err
	}
	var svg strings.Builder
	if err := chart.SVG(&svg); err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(filepath.Join(o.out, e.name+".svg"), 0o644, []byte(svg.String())); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\n%s\nwrote %s.md and %s.svg in %s\n", table.String(), e.name, e.name, o.out)
	return nil
}

func modelOf(rs []simBenchResult) string {
	if len(rs) == 0 {
		return "none"
	}
	return rs[0].Model.String()
}

func sourceOf(rs []simBenchResult) string {
	if len(rs) == 0 {
		return "none"
	}
	return rs[0].ModelSource
}

// readResults reads an experiment's results file (missing: none yet).
func readResults(path string) (map[string]simBenchResult, error) {
	out := map[string]simBenchResult{}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for line := 1; sc.Scan(); line++ {
		var r simBenchResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil || r.Key == "" {
			return nil, fmt.Errorf("%s:%d: not a result line (%v); remove it to run that configuration again", path, line, err)
		}
		out[r.Key] = r
	}
	return out, sc.Err()
}

func appendResult(path string, r simBenchResult) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func renderScale(w io.Writer, rs []simBenchResult) (plot.Chart, error) {
	fmt.Fprintf(w, "| n | m | executed req/s | p50 ms | p99 ms | bottleneck | simulated s | wall s |\n|---|---|---|---|---|---|---|---|\n")
	bySeries := map[string]*plot.Series{}
	var order []string
	var ns []float64
	for _, r := range rs {
		fmt.Fprintf(w, "| %d | %d | %.0f | %.1f | %.1f | %s | %.1f | %.0f |\n", r.N, r.M, r.ExecutedPerSec, r.P50ms, r.P99ms, r.Bottleneck, r.VirtualSeconds, r.WallSeconds)
		name := series(r.M, r.N)
		s, ok := bySeries[name]
		if !ok {
			s = &plot.Series{Name: name}
			bySeries[name] = s
			order = append(order, name)
		}
		s.X, s.Y = append(s.X, float64(r.N)), append(s.Y, r.ExecutedPerSec)
		if !slices.Contains(ns, float64(r.N)) {
			ns = append(ns, float64(r.N))
		}
	}
	cores := 0
	if len(rs) > 0 {
		cores = rs[0].Model.Cores
	}
	c := plot.Chart{Title: fmt.Sprintf("Executed throughput vs n (simulated, LAN, batch 100, %d cores a replica)", cores), XLabel: "replicas n", YLabel: "executed requests/s", LogX: true, XTicks: ns}
	for _, name := range order {
		c.Series = append(c.Series, *bySeries[name])
	}
	return c, nil
}

func renderBatch(w io.Writer, rs []simBenchResult) (plot.Chart, error) {
	fmt.Fprintf(w, "| n | m | batch | executed req/s | p50 ms | p99 ms | bottleneck |\n|---|---|---|---|---|---|---|\n")
	bySeries := map[string]*plot.Series{}
	var order []string
	for _, r := range rs {
		fmt.Fprintf(w, "| %d | %d | %d | %.0f | %.1f | %.1f | %s |\n", r.N, r.M, r.Batch, r.ExecutedPerSec, r.P50ms, r.P99ms, r.Bottleneck)
		name := fmt.Sprintf("%s, n = %d", series(r.M, r.N), r.N)
		s, ok := bySeries[name]
		if !ok {
			s = &plot.Series{Name: name}
			bySeries[name] = s
			order = append(order, name)
		}
		s.X, s.Y = append(s.X, float64(r.Batch)), append(s.Y, r.ExecutedPerSec)
	}
	c := plot.Chart{Title: "Executed throughput vs batch size (simulated, LAN)", XLabel: "batch size (requests)", YLabel: "executed requests/s", LogX: true, XTicks: []float64{10, 100, 400}}
	for _, name := range order {
		c.Series = append(c.Series, *bySeries[name])
	}
	return c, nil
}

func renderFailures(w io.Writer, rs []simBenchResult) (plot.Chart, error) {
	fmt.Fprintf(w, "| protocol | scenario | executed req/s (whole run) | steady req/s (after the scheduled faults) | req/s in the second half | view changes | bottleneck |\n|---|---|---|---|---|---|---|\n")
	c := plot.Chart{Title: "Throughput over time, n = 16, RCC (m = n) under failures", XLabel: "simulated seconds", YLabel: "executed requests/s (100 ms buckets)"}
	for _, r := range rs {
		fmt.Fprintf(w, "| %s | %s | %.0f | %.0f | %.0f | %d | %s |\n", series(r.M, r.N), r.Scenario, r.ExecutedPerSec, r.SteadyPerSec, meanFrom(r.Timeline, r.VirtualSeconds/2), r.ViewChanges, r.Bottleneck)
		if r.M != r.N {
			continue
		}
		c.Series = append(c.Series, timelineSeries(r.Scenario, r.Timeline))
	}
	return c, nil
}

// timelineSeries plots a run's throughput timeline against simulated time.
func timelineSeries(name string, tl []float64) plot.Series {
	s := plot.Series{Name: name}
	for i, v := range tl {
		s.X, s.Y = append(s.X, float64(i)*timelineStep), append(s.Y, v)
	}
	return s
}

// meanFrom is the mean of a timeline's buckets from second t on: the
// throughput once a fault without a scheduled end (a throttling primary)
// has been handled.
func meanFrom(tl []float64, t float64) float64 {
	k := int(t / timelineStep)
	if k >= len(tl) {
		return 0
	}
	sum := 0.0
	for _, v := range tl[k:] {
		sum += v
	}
	return sum / float64(len(tl)-k)
}

func renderWAN(w io.Writer, rs []simBenchResult) (plot.Chart, error) {
	fmt.Fprintf(w, "| protocol | n | m | executed req/s | p50 ms | p99 ms | bottleneck |\n|---|---|---|---|---|---|---|\n")
	c := plot.Chart{Title: "Throughput over time, n = 7 over six AWS regions", XLabel: "simulated seconds", YLabel: "executed requests/s (100 ms buckets)"}
	for _, r := range rs {
		fmt.Fprintf(w, "| %s | %d | %d | %.0f | %.0f | %.0f | %s |\n", series(r.M, r.N), r.N, r.M, r.ExecutedPerSec, r.P50ms, r.P99ms, r.Bottleneck)
		c.Series = append(c.Series, timelineSeries(series(r.M, r.N), r.Timeline))
	}
	return c, nil
}
