package main

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/braid-bft/braid/sim"
)

func TestSimSwarmJSON(t *testing.T) {
	stdout, stderr, err := runCmd(runSim, "--swarm", "--seed", "5", "--seeds", "3", "--json")
	if err != nil {
		t.Fatalf("%v\n%s%s", err, stdout, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var sum swarmSummary
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatalf("last line %q: %v", lines[len(lines)-1], err)
	}
	if sum.Seeds != 3 || sum.FirstSeed != 5 || sum.Failures == nil || len(sum.Failures) != 0 || sum.WallSeconds <= 0 || sum.Completed == 0 {
		t.Errorf("summary %+v", sum)
	}
	for _, key := range []string{`"seeds":3`, `"failures":[]`, `"linearizability_violations":0`, `"wall_seconds":`} {
		if !strings.Contains(lines[len(lines)-1], key) {
			t.Errorf("JSON line lacks %s: %s", key, lines[len(lines)-1])
		}
	}
	if !strings.Contains(stderr, "swarm: 3/3 seeds, 0 failures") {
		t.Errorf("no final progress line on stderr: %q", stderr)
	}
}

// A failing seed is reported with its configuration and the command that
// replays it, and the exit status is 1; the others still run, in order.
func TestSimSwarmReportsFailures(t *testing.T) {
	defer func(f func(uint64) (sim.SwarmConfig, sim.Result, error)) { runSwarmSeed = f }(runSwarmSeed)
	runSwarmSeed = func(seed uint64) (sim.SwarmConfig, sim.Result, error) {
		c := sim.DrawSwarm(seed)
		switch seed {
		case 8:
			return c, sim.Result{Violations: []string{"liveness: made up"}, Totals: sim.Totals{TraceHash: strings.Repeat("0", 64)}}, nil
		case 9:
			return c, sim.Result{}, errors.New("made-up error")
		}
		return c, sim.Result{Totals: sim.Totals{TraceHash: strings.Repeat("0", 64)}}, nil
	}
	stdout, _, err := runCmd(runSim, "--swarm", "--seed", "7", "--seeds", "4")
	if err == nil || err.Error() != "exit status 1" {
		t.Fatalf("err %v; want exit status 1\n%s", err, stdout)
	}
	for _, want := range []string{
		"FAILED seed 8: ", "liveness: made up", "replay: braid sim --swarm --seed 8 --seeds 1 -v",
		"FAILED seed 9: ", "made-up error", "replay: braid sim --swarm --seed 9 --seeds 1 -v",
		"swarm seeds 7..10: 2 FAILED (seeds 8 9)",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Index(stdout, "seed 8") > strings.Index(stdout, "seed 9") || strings.Contains(stdout, "FAILED seed 7") {
		t.Errorf("failures out of order or a passing seed reported:\n%s", stdout)
	}
	if !strings.Contains(stdout, "faults") || !strings.Contains(stdout, "n=") {
		t.Errorf("a failure's configuration is not printed:\n%s", stdout)
	}
	stdout, _, _ = runCmd(runSim, "--swarm", "--seed", "8", "--seeds", "1", "--json")
	var sum swarmSummary
	if err := json.Unmarshal([]byte(strings.TrimSpace(stdout)), &sum); err != nil {
		t.Fatal(err)
	}
	if len(sum.Failures) != 1 || sum.Failures[0].Seed != 8 || sum.Failures[0].Replay != sim.SwarmReplay(8) || sum.Failures[0].Config.N == 0 || sum.Failures[0].Error == "" {
		t.Errorf("--json failures %+v", sum.Failures)
	}
}

func TestSimSwarmRefusesScenarioFlags(t *testing.T) {
	_, _, err := runCmd(runSim, "--swarm", "--n", "7", "--protocol", "rcc")
	if err == nil || !strings.Contains(err.Error(), "--n") || !strings.Contains(err.Error(), "--protocol") {
		t.Fatalf("err %v; want --n and --protocol refused", err)
	}
}
