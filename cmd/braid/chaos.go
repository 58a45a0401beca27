package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/braid-bft/braid/chaos"
)

const chaosUsage = `Usage: braid chaos --duration D [--json] [--seed S] [--n N] [--byzantine-count K] [--byzantine-kinds LIST] [--faulty F] [--clients C] [--dir DIR] [--keep]

Runs a real cluster of N replica processes of this binary on loopback and,
for D, injects random faults into it: kill -9 and restart from the data
directory, SIGSTOP/SIGCONT, partitions and one-way cuts (made at loopback
TCP proxies braid chaos owns, one per link; no privileges needed), while
C clients run gets, puts and compare-and-sets on a few shared keys and
bank transfers. K ≤ f replicas are Byzantine, each drawing from the seed a
braid replica --byzantine behaviour (test-only) or, for at most one, "twin":
two processes with its id and key, each serving half of the correct
replicas and clients. At the end every fault is healed, every
key read once more, and braid chaos checks: results no correct store
returns, each key's history for linearizability (porcupine), that
transfers conserved money, and that every correct replica's ledger
verifies offline and agrees with the others. K = f+1 is the negative
control: f+1 replicas run as twins (two processes, same id and key, one
per half of the cluster), and the checks must report violations.

With --json the last line is one JSON object: operations,
faults_injected, violations, faults_by_kind, violations_by_kind, seed,
duration_seconds and more (docs/chaos.md). The exit status is 1 when
violations > 0. Replica logs are kept with --keep (or under --dir).

Flags:
`

// runChaos is `braid chaos`.
func runChaos(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("braid chaos", chaosUsage, stderr)
	duration := fs.Duration("duration", 30*time.Second, "how long to inject faults")
	asJSON := fs.Bool("json", false, "print the result as one JSON object on the last line")
	seed := fs.Uint64("seed", 0, "seed for the fault schedule, the Byzantine choices and the workload (default: from the clock; printed)")
	n := fs.Int("n", 4, "replicas (n ≥ 4)")
	byzCount := fs.Int("byzantine-count", -1, "Byzantine replicas, 0…f (−1: f); f+1 runs the twinned negative control")
	kinds := fs.String("byzantine-kinds", strings.Join(chaos.ByzantineKinds, ","), "comma-separated kinds the Byzantine replicas draw from: braid replica --byzantine behaviours and twin")
	clients := fs.Int("clients", 4, "concurrent SDK clients")
	faulty := fs.Int("faulty", 0, "correct replicas faults may affect at once (default max(1, f − K); more stalls the cluster while they last, and safety must hold regardless)")
	dir := fs.String("dir", "", "working directory for configurations, keys, data and logs (default: a temporary one, removed afterwards)")
	keep := fs.Bool("keep", false, "keep the temporary working directory")
	if stop, err := parseFlagsOnly(fs, args, "braid chaos"); stop {
		return err
	}
	f := (*n - 1) / 3
	switch {
	case *duration <= 0:
		return fmt.Errorf("--duration %v: must be positive", *duration)
	case *n < 4 || *n > 16:
		return fmt.Errorf("--n %d: need 4 ≤ n ≤ 16 on one machine", *n)
	case *byzCount < -1 || *byzCount > f+1:
		return fmt.Errorf("--byzantine-count %d: need 0 ≤ K ≤ f+1 = %d (f+1: the twinned negative control)", *byzCount, f+1)
	case *faulty < 0 || *faulty > *n:
		return fmt.Errorf("--faulty %d: need 0 ≤ F ≤ n", *faulty)
	case *clients < 1 || *clients > 64:
		return fmt.Errorf("--clients %d: need 1 ≤ C ≤ 64", *clients)
	}
	if *byzCount < 0 {
		*byzCount = f
	}
	var kindList []string
	for _, k := range strings.Split(*kinds, ",") {
		if k = strings.TrimSpace(k); !slices.Contains(chaos.ByzantineKinds, k) {
			return fmt.Errorf("--byzantine-kinds: %q is not one of %s", k, strings.Join(chaos.ByzantineKinds, ", "))
		}
		kindList = append(kindList, k)
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find this binary to start replicas: %w", err)
	}
	work := *dir
	if work == "" {
		if work, err = os.MkdirTemp("", "braid-chaos-"); err != nil {
			return err
		}
		if !*keep {
			defer os.RemoveAll(work)
		}
	} else {
		if ents, err := os.ReadDir(work); err == nil && len(ents) > 0 {
			return fmt.Errorf("--dir %s is not empty: braid chaos writes a fresh cluster there", work)
		}
		if err := os.MkdirAll(work, 0o755); err != nil {
			return err
		}
	}
	if work, err = filepath.Abs(work); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	tty := isTerminal(stdout)
	fmt.Fprintf(stdout, "braid chaos: n = %d (f = %d), %d clients, faults for %v, seed %d, in %s\n", *n, f, *clients, *duration, *seed, work)
	if *byzCount > f {
		fmt.Fprintf(stdout, "negative control: %d twinned replicas (more than f = %d): violations are expected\n", *byzCount, f)
	}
	pending := false // a progress line without its newline
	logLine := func(format string, args ...any) {
		if pending {
			fmt.Fprintln(stdout)
			pending = false
		}
		fmt.Fprintf(stdout, format+"\n", args...)
	}
	lastPlain := time.Time{}
	res, err := chaos.Run(ctx, chaos.Options{
		Binary: bin, Dir: work, N: *n, Clients: *clients, Duration: *duration, Seed: *seed, Byzantine: *byzCount, Kinds: kindList, Faulty: *faulty,
		Log: writerFunc(func(p []byte) { logLine("  %s", strings.TrimRight(string(p), "\n")) }),
		Progress: func(p chaos.Progress) {
			line := fmt.Sprintf("t=%4.0fs  acknowledged %6d  gave up %4d  faults %3d  now: %s", p.Elapsed.Seconds(), p.Operations, p.GaveUp, p.Faults, orNone(p.Active))
			if tty {
				fmt.Fprintf(stdout, "\r%-120s", line)
				pending = true
			} else if time.Since(lastPlain) >= 5*time.Second {
				lastPlain = time.Now()
				logLine("%s", line)
			}
		},
	})
	if pending {
		fmt.Fprintln(stdout)
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("interrupted (replicas stopped)")
		}
		if *keep || *dir != "" {
			return fmt.Errorf("%w (logs in %s)", err, filepath.Join(work, "logs"))
		}
		return err
	}
	fmt.Fprintf(stdout, "operations %d acknowledged, %d gave up; faults %d %v; ledgers verified at heights %v, compared at %d\n",
		res.Operations, res.Pending, res.FaultsInjected, res.FaultsByKind, res.LedgerHeights, res.ComparedAtHeight)
	for _, note := range res.Notes {
		fmt.Fprintf(stdout, "note: %s\n", note)
	}
	for _, d := range res.Details {
		fmt.Fprintf(stdout, "VIOLATION %s\n", d)
	}
	fmt.Fprintf(stdout, "violations: %d %v\n", res.Violations, res.ViolationsByKind)
	if *asJSON {
		b, err := json.Marshal(res)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", b)
	}
	if res.Violations > 0 {
		return exitCode(1)
	}
	return nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "no fault"
	}
	return strings.Join(slices.Clone(s), "; ")
}

// writerFunc is an io.Writer calling f with each write.
type writerFunc func(p []byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }
