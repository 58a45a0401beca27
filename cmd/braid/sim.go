package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/braid-bft/braid/sim"
)

type simSummary struct {
	Scenario    string   `json:"scenario"`
	Protocol    string   `json:"protocol"`
	N           int      `json:"n"`
	Runs        int      `json:"runs"`
	FirstSeed   uint64   `json:"first_seed"`
	Violations  int      `json:"violations"`
	FailedSeeds []uint64 `json:"failed_seeds"`
	sim.Totals
	WallSeconds float64 `json:"wall_seconds"`
}

func runSim(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("braid sim", "", stderr)
	protocol := fs.String("protocol", "pbft", "protocol to simulate: pbft or rcc")
	m := fs.Int("m", 0, "rcc: number of parallel instances, 1 ≤ m ≤ n (default n)")
	scenario := fs.String("scenario", "fault-free", "scenario to run, or \"all\"; see --list")
	n := fs.Int("n", 4, "number of replicas (≥ 4)")
	seeds := fs.Int("seeds", 1, "number of consecutive seeds to run, starting at --seed")
	seed := fs.Uint64("seed", 1, "first (or only) seed; a run is a pure function of its seed")
	clients := fs.Int("clients", 4, "closed-loop clients")
	requests := fs.Int("requests", 25, "requests per client")
	byz := fs.Int("byzantine", 0, "replicas the scenario corrupts (default f; above f is a negative control)")
	asJSON := fs.Bool("json", false, "print one JSON summary object per scenario, the last line being the last scenario")
	list := fs.Bool("list", false, "list scenarios and exit")
	verbose := fs.Bool("v", false, "print every seed's result")
	liveness := fs.Bool("liveness", false, "liveness mode: after the scenario's faults end, every request must complete and every correct replica reach the same ledger head within --liveness-bound, or the seed fails")
	bound := fs.Duration("liveness-bound", 0, "liveness mode: virtual time allowed after the faults end (default: the scenario's, 10s unless it states another)")
	lin := fs.Bool("linearizability", false, "the clients run gets, puts and compare-and-sets on a few shared kv keys, and each key's history is checked for linearizability (porcupine)")
	linTimeout := fs.Duration("lin-timeout", sim.DefaultLinTimeout, "with --linearizability: wall time the check may spend per key; a key not decided in time counts as a timeout, neither pass nor violation")
	bankWork := fs.Bool("bank", false, "the clients open accounts, deposit and transfer among them, and the agreed ledger is replayed: every transfer at most once, every result a money-conserving bank's (not with --linearizability)")
	swarm := fs.Bool("swarm", false, "swarm mode: every seed draws its own run (protocol, n, m, policy, batch, timeouts, network, faults within the budget, workload) and is checked for safety and liveness; a failing seed prints its configuration and the command that replays it (with --seed, --seeds, --json, -v only)")
	if stop, err := parseFlags(fs, args); stop {
		return err
	}
	if *swarm {
		var other []string
		fs.Visit(func(f *flag.Flag) {
			if !slices.Contains([]string{"swarm", "seed", "seeds", "json", "v"}, f.Name) {
				other = append(other, "--"+f.Name)
			}
		})
		if len(other) > 0 {
			return fmt.Errorf("--swarm draws every setting from the seed: %s cannot be given with it", strings.Join(other, ", "))
		}
		if *seeds < 1 {
			return fmt.Errorf("--seeds %d: need at least 1", *seeds)
		}
		return runSwarm(*seed, *seeds, *asJSON, *verbose, stdout, stderr)
	}
	if *list {
		for _, name := range sim.ScenarioNames() {
			fmt.Fprintf(stdout, "%-22s %s\n", name, sim.About(name))
		}
		return nil
	}
	if *seeds < 1 {
		return fmt.Errorf("--seeds %d: need at least 1", *seeds)
	}
	names := []string{*scenario}
	if *scenario == "all" {
		names = sim.ScenarioNames()
	}
	failed := false
	progress := isTerminal(stderr) && !*verbose
	for _, name := range names {
		sum := simSummary{Scenario: name, Protocol: *protocol, N: *n, FirstSeed: *seed}
		start := time.Now()
		for i := 0; i < *seeds; i++ {
			s := *seed + uint64(i)
			res, err := sim.Run(sim.Options{Protocol: *protocol, Scenario: name, N: *n, Seed: s,
				M: *m, Clients: *clients, RequestsPerClient: *requests, Byzantine: *byz, Liveness: *liveness, LivenessBound: *bound,
				Linearizability: *lin, LinTimeout: *linTimeout, Bank: *bankWork})
			if err != nil {
				return err
			}
			sum.Runs++
			sum.Violations += len(res.Violations)
			sum.Add(res.Totals)
			if len(res.Violations) > 0 {
				sum.FailedSeeds = append(sum.FailedSeeds, s)
				if !*asJSON {
					fmt.Fprintf(stdout, "VIOLATION %s n=%d seed=%d:\n  %s\n", name, *n, s, strings.Join(res.Violations, "\n  "))
				}
			}
			if *verbose {
				fmt.Fprintf(stderr, "%s seed=%d completed=%d/%d view_changes=%d virtual=%.2fs violations=%d trace=%s\n",
					name, s, res.Completed, res.Submitted, res.ViewChanges, res.VirtualSeconds, len(res.Violations), res.TraceHash[:16])
			} else if progress {
				fmt.Fprintf(stderr, "\r%s: %d/%d seeds, %d violations", name, i+1, *seeds, sum.Violations)
			}
		}
		if progress {
			fmt.Fprintln(stderr)
		}
		sum.WallSeconds = time.Since(start).Seconds()
		if sum.Violations > 0 {
			failed = true
		}
		if *asJSON {
			b, _ := json.Marshal(sum)
			fmt.Fprintln(stdout, string(b))
			continue
		}
		status := "ok"
		if sum.Violations > 0 {
			status = fmt.Sprintf("FAILED on seeds %v", sum.FailedSeeds)
		}
		fmt.Fprintf(stdout, "%-22s %s n=%d seeds %d..%d: %s\n", name, *protocol, *n, *seed, *seed+uint64(*seeds)-1, status)
		fmt.Fprintf(stdout, "  requests completed %d/%d, decided %d, view changes %d, virtual time %.1fs, wall %.1fs\n",
			sum.Completed, sum.Submitted, sum.DecidedRequests, sum.ViewChanges, sum.VirtualSeconds, sum.WallSeconds)
		if l := sum.Lin; l != nil {
			fmt.Fprintf(stdout, "  linearizability: %d operations (%d pending) over %d key histories: %d not linearizable, %d timed out, check %.2fs\n",
				l.Operations, l.Pending, l.Keys, l.Illegal, l.Timeouts, l.CheckSeconds)
		}
		if b := sum.Bank; b != nil {
			fmt.Fprintf(stdout, "  bank: %d operations replayed from the ledger, %d transfers moved money, %d runs not replayable (incomplete ledger), money at the end %d\n",
				b.Operations, b.Transfers, b.Incomplete, b.Money)
		}
		fmt.Fprintf(stdout, "  trace hash (seed %d): %s\n", *seed+uint64(*seeds)-1, sum.TraceHash)
	}
	if failed {
		return exitCode(1)
	}
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
