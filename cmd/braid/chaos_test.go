package main

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/braid-bft/braid/chaos"
	"github.com/braid-bft/braid/internal/testseed"
)

// runChaosE2E runs the built binary's braid chaos with args and decodes
// the JSON object on its last line. The context bounds it: on a hang the
// process is killed, and its replicas die with it (Pdeathsig).
func runChaosE2E(t *testing.T, bin string, args ...string) (*chaos.Result, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"chaos", "--json"}, args...)...)
	out, err := cmd.Output()
	text := string(out)
	lines := strings.Split(strings.TrimSpace(text), "\n")
	var res chaos.Result
	if jerr := json.Unmarshal([]byte(lines[len(lines)-1]), &res); jerr != nil {
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			text += "\nstderr:\n" + string(ee.Stderr)
		}
		t.Fatalf("last line is not a JSON result (%v; run: %v):\n%s", jerr, err, text)
	}
	return &res, text, err
}

// A short chaos run on real processes: faults are injected, operations
// are acknowledged, the histories and ledgers are checked, and nothing is
// wrong. Up to f replicas run a --byzantine behaviour (n = 4: one).
func TestChaosEndToEnd(t *testing.T) {
	bin := buildBraidE2E(t)
	seed := testseed.New(t)
	res, text, err := runChaosE2E(t, bin, "--duration", "8s", "--seed", strconv.FormatUint(seed, 10))
	t.Logf("braid chaos output:\n%s", text)
	if err != nil {
		t.Fatalf("braid chaos: %v", err)
	}
	if res.Seed != seed || res.N != 4 || res.F != 1 || len(res.Byzantine)+len(res.Twinned) != 1 {
		t.Errorf("result: seed %d n %d f %d byzantine %v twinned %v, want seed %d, n 4, f 1, one byzantine replica", res.Seed, res.N, res.F, res.Byzantine, res.Twinned, seed)
	}
	if res.Operations == 0 || res.FaultsInjected == 0 || res.LinKeys == 0 {
		t.Errorf("operations %d, faults %d, keys checked %d: want all > 0", res.Operations, res.FaultsInjected, res.LinKeys)
	}
	sum := 0
	for _, k := range res.FaultsByKind {
		sum += k
	}
	if sum != res.FaultsInjected {
		t.Errorf("faults_by_kind %v adds up to %d, faults_injected is %d", res.FaultsByKind, sum, res.FaultsInjected)
	}
	if res.Violations != 0 || len(res.ViolationsByKind) != 0 {
		t.Errorf("violations %d %v: %q", res.Violations, res.ViolationsByKind, res.Details)
	}
	if len(res.LedgerHeights) != 3 || res.ComparedAtHeight == 0 {
		t.Errorf("ledgers verified: %v, compared at %d; want the 3 correct replicas' at a height > 0", res.LedgerHeights, res.ComparedAtHeight)
	}
}

// The negative control: f+1 twinned replicas let the two halves decide
// differently, and the checks must see it — braid chaos exits 1 with
// violations (a ledger mismatch among correct replicas, or histories that
// are not linearizable).
func TestChaosNegativeControl(t *testing.T) {
	bin := buildBraidE2E(t)
	seed := testseed.New(t)
	res, text, err := runChaosE2E(t, bin, "--duration", "5s", "--byzantine-count", "2", "--seed", strconv.FormatUint(seed, 10))
	t.Logf("braid chaos output:\n%s", text)
	if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("braid chaos with f+1 twins: %v, want exit status 1", err)
	}
	if len(res.Twinned) != 2 {
		t.Errorf("twinned %v, want 2 replicas", res.Twinned)
	}
	split := res.ViolationsByKind["ledger_mismatch"] + res.ViolationsByKind["linearizability"]
	if res.Violations == 0 || split == 0 {
		t.Errorf("violations %d %v: want a ledger mismatch or a linearizability failure", res.Violations, res.ViolationsByKind)
	}
}

// Every braid command docs/chaos.md shows exists with the flags it passes,
// and the README's braid chaos line too.
func TestChaosDocCommands(t *testing.T) {
	for _, path := range []string{"../../docs/chaos.md", "../../README.md"} {
		n := 0
		for _, line := range docCommands(t, path) {
			if !strings.HasPrefix(line, "chaos") {
				continue
			}
			n++
			if err := checkCommandLine(line); err != nil {
				t.Errorf("%s: %v", path, err)
			}
		}
		if n == 0 {
			t.Errorf("%s shows no braid chaos command", path)
		}
	}
}
