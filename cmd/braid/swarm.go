package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/braid-bft/braid/sim"
)

// swarmFailure is one failing seed in braid sim --swarm --json.
type swarmFailure struct {
	Seed   uint64          `json:"seed"`
	Config sim.SwarmConfig `json:"config"`
	Error  string          `json:"error"`
	Replay string          `json:"replay"`
}

// swarmSummary is braid sim --swarm --json's last line.
type swarmSummary struct {
	Seeds     int            `json:"seeds"`
	FirstSeed uint64         `json:"first_seed"`
	Failures  []swarmFailure `json:"failures"`
	// LinViolations counts the keys whose history was not linearizable,
	// over the seeds that ran the linearizability workload.
	LinViolations int `json:"linearizability_violations"`
	sim.Totals
	WallSeconds float64 `json:"wall_seconds"`
}

// swarmRun is one seed's outcome.
type swarmRun struct {
	cfg  sim.SwarmConfig
	res  sim.Result
	err  error
	wall time.Duration
}

func (r swarmRun) failed() bool { return r.err != nil || len(r.res.Violations) > 0 }

// why is the failure in one string: the run's error or its violations.
func (r swarmRun) why() string {
	if r.err != nil {
		return r.err.Error()
	}
	return strings.Join(r.res.Violations, "\n")
}

// runSwarmSeed runs one seed (a variable so that a test can make one fail).
var runSwarmSeed = sim.RunSwarm

// swarmProgressEvery is how often a progress line goes to a stderr that is
// not a terminal (a terminal gets one line rewritten after every seed).
const swarmProgressEvery = 10 * time.Second

// runSwarm is braid sim --swarm: seeds first … first+seeds−1, each drawing
// its own configuration (sim.DrawSwarm), on a pool of GOMAXPROCS workers.
// Each seed's run is deterministic whichever worker runs it; the report
// comes in seed order.
func runSwarm(first uint64, seeds int, asJSON, verbose bool, stdout, stderr io.Writer) error {
	start := time.Now()
	runs := make([]swarmRun, seeds)
	done := make([]bool, seeds)
	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	next := 0 // the next seed index a worker takes
	workers := min(runtime.GOMAXPROCS(0), seeds)
	for range workers {
		go func() {
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= seeds {
					return
				}
				t := time.Now()
				cfg, res, err := runSwarmSeed(first + uint64(i))
				mu.Lock()
				runs[i] = swarmRun{cfg: cfg, res: res, err: err, wall: time.Since(t)}
				done[i] = true
				cond.Signal()
				mu.Unlock()
			}
		}()
	}
	sum := swarmSummary{FirstSeed: first, Failures: []swarmFailure{}}
	terminal := isTerminal(stderr)
	lastLine := time.Now()
	progress := func(final bool) {
		el := time.Since(start).Seconds()
		line := fmt.Sprintf("swarm: %d/%d seeds, %d failures, %.1f seeds/s", sum.Seeds, seeds, len(sum.Failures), float64(sum.Seeds)/max(el, 1e-9))
		switch {
		case terminal && !verbose:
			fmt.Fprintf(stderr, "\r%s", line)
			if final {
				fmt.Fprintln(stderr)
			}
		case final || time.Since(lastLine) >= swarmProgressEvery:
			fmt.Fprintln(stderr, line)
			lastLine = time.Now()
		}
	}
	for i := 0; i < seeds; i++ {
		mu.Lock()
		for !done[i] {
			cond.Wait()
		}
		r := runs[i]
		runs[i] = swarmRun{} // let the result go
		mu.Unlock()
		seed := first + uint64(i)
		sum.Seeds++
		sum.Add(r.res.Totals)
		if l := r.res.Lin; l != nil {
			sum.LinViolations += l.Illegal
		}
		if verbose {
			fmt.Fprintf(stderr, "%s\n  %s\n", r.cfg, swarmOutcome(r))
		}
		if r.failed() {
			sum.Failures = append(sum.Failures, swarmFailure{Seed: seed, Config: r.cfg, Error: r.why(), Replay: sim.SwarmReplay(seed)})
			if !asJSON {
				fmt.Fprintf(stdout, "FAILED %s\n  %s\n  replay: %s\n", r.cfg, strings.ReplaceAll(r.why(), "\n", "\n  "), sim.SwarmReplay(seed))
			}
		}
		progress(false)
	}
	progress(true)
	sum.WallSeconds = time.Since(start).Seconds()
	if asJSON {
		b, err := json.Marshal(sum)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, string(b))
	} else {
		status := "ok"
		if n := len(sum.Failures); n > 0 {
			var failed []string
			for _, f := range sum.Failures {
				failed = append(failed, fmt.Sprint(f.Seed))
			}
			status = fmt.Sprintf("%d FAILED (seeds %s)", n, strings.Join(failed, " "))
		}
		fmt.Fprintf(stdout, "swarm seeds %d..%d: %s\n", first, first+uint64(seeds)-1, status)
		fmt.Fprintf(stdout, "  requests completed %d/%d, view changes %d, virtual time %.1fs, wall %.1fs (%.1f seeds/s)\n",
			sum.Completed, sum.Submitted, sum.ViewChanges, sum.VirtualSeconds, sum.WallSeconds, float64(seeds)/sum.WallSeconds)
		if l := sum.Lin; l != nil {
			fmt.Fprintf(stdout, "  linearizability: %d operations over %d key histories: %d not linearizable, %d timed out\n",
				l.Operations, l.Keys, l.Illegal, l.Timeouts)
		}
		if b := sum.Bank; b != nil {
			fmt.Fprintf(stdout, "  bank: %d operations replayed from the ledger, %d transfers moved money\n", b.Operations, b.Transfers)
		}
	}
	if len(sum.Failures) > 0 {
		return exitCode(1)
	}
	return nil
}

// swarmOutcome is one seed's result line for -v.
func swarmOutcome(r swarmRun) string {
	if r.err != nil {
		return fmt.Sprintf("error: %v", r.err)
	}
	res := r.res
	s := fmt.Sprintf("completed %d/%d, view changes %d, virtual %.2fs, wall %.2fs, violations %d, trace %s",
		res.Completed, res.Submitted, res.ViewChanges, res.VirtualSeconds, r.wall.Seconds(), len(res.Violations), res.TraceHash[:16])
	if len(res.Violations) > 0 {
		s += "\n  " + strings.Join(res.Violations, "\n  ")
	}
	return s
}
