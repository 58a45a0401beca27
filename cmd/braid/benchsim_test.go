package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/braid-bft/braid/calibrate"
	"github.com/braid-bft/braid/sim"
)

// A simulated figure is a function of its flags, seed and cost file: two
// runs print the same JSON (but for the wall time they took).
func TestBenchSimIsDeterministic(t *testing.T) {
	costs := filepath.Join(t.TempDir(), "costs.json")
	m := sim.Machine{Cores: 2, Verification: 40 * time.Microsecond, Batch16: 24 * time.Microsecond, Batch64: 21 * time.Microsecond,
		Batch256: 20 * time.Microsecond, PerByte: 1, Fsync: 200 * time.Microsecond, Sign: 25 * time.Microsecond,
		Message: 200, Record: 100, RecordByte: 1, Source: "test"}
	if err := calibrate.Write(costs, m); err != nil {
		t.Fatal(err)
	}
	run := func() simBenchResult {
		var out bytes.Buffer
		args := []string{"--sim", "--costs", costs, "--n", "4", "--m", "4", "--warmup", "300ms", "--duration", "700ms",
			"--open-loop-rate", "2000", "--scenario", "crash-primary", "--json"}
		if err := runBench(args, &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		var r simBenchResult
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
			t.Fatal(err)
		}
		r.WallSeconds = 0
		return r
	}
	a, b := run(), run()
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if !bytes.Equal(ja, jb) {
		t.Fatalf("two runs differ:\n%s\n%s", ja, jb)
	}
	if a.ExecutedPerSec <= 0 || a.Model != m || a.ModelSource != costs {
		t.Fatalf("executed %.0f/s, model %+v from %q; want > 0 under the file's model", a.ExecutedPerSec, a.Model, a.ModelSource)
	}
}

func TestBenchSimFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--sim", "--scenario", "nope"}, "--scenario"},
		{[]string{"--sim", "--nic", "0"}, "--nic"},
		{[]string{"--sim", "--cores", "-1"}, "--cores"},
		{[]string{"--sim", "--cores", "257"}, "--cores"},
		{[]string{"--sim", "--calibrate"}, "--calibrate and --sim"},
		{[]string{"--sim", "--compare-m", "1"}, "--sim runs the simulator"},
		{[]string{"--sim", "--costs", "/nonexistent/costs.json"}, "no such file"},
		{[]string{"--wan"}, "add --sim"},
		{[]string{"--experiment", "scale"}, "add --sim"},
		{[]string{"--sim", "--experiment", "scale", "--max-n", "2"}, "--max-n"},
	} {
		err := runBench(tc.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one containing %q", tc.args, err, tc.want)
		}
	}
}

func TestAttributeNamesTheBusiestResource(t *testing.T) {
	groups, b := attribute([]sim.Usage{
		{Replica: 0, Leads: 1, Loop: 0.2, Workers: 0.5, NIC: 0.97, Disk: 0.3},
		{Replica: 1, Workers: 0.6, NIC: 0.1},
		{Replica: 2, Workers: 0.7, Disk: 0.4},
	})
	if len(groups) != 2 || groups[0].Role != "primary" || groups[0].Replicas != 1 || groups[1].Replicas != 2 || groups[1].Workers != 0.7 || groups[1].Disk != 0.4 {
		t.Fatalf("groups %+v", groups)
	}
	if b != "primary NIC (replica 0) at 97%" {
		t.Fatalf("bottleneck %q", b)
	}
	if _, b := attribute([]sim.Usage{{Replica: 0, Leads: 1, Workers: 0.6, ClientLane: 0.96}}); b != "primary client-verification lane (replica 0) at 96%" {
		t.Fatalf("a saturated client lane: %q", b)
	}
	if _, b := attribute([]sim.Usage{{Replica: 3, Workers: 0.5}}); !strings.HasPrefix(b, "none saturated; busiest: backup verification cores (replica 3) at 50%") {
		t.Fatalf("unsaturated: %q", b)
	}
}

// An experiment keeps its results one per line and refuses a damaged file
// rather than silently re-running or dropping what it holds.
func TestExperimentResultsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.jsonl")
	if got, err := readResults(path); err != nil || len(got) != 0 {
		t.Fatalf("missing file: %v, %v", got, err)
	}
	for _, k := range []string{"a", "b"} {
		if err := appendResult(path, simBenchResult{Key: k, ExecutedPerSec: 7}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := readResults(path)
	if err != nil || len(got) != 2 || got["b"].ExecutedPerSec != 7 {
		t.Fatalf("read back %v, %v", got, err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("{truncated\n")
	f.Close()
	if _, err := readResults(path); err == nil || !strings.Contains(err.Error(), ":3:") {
		t.Fatalf("damaged line: err %v; want its line number", err)
	}
	var out bytes.Buffer
	if err := runBench([]string{"--sim", "--experiment", "nope", "--out", t.TempDir()}, &out, io.Discard); err == nil || !strings.Contains(err.Error(), "scale, failures, wan, scale-16core, batch") {
		t.Fatalf("unknown experiment: %v", err)
	}
}

// --cores replaces the cost file's core count, and the figure says so; more
// cores relieve a run bound by its signature checks.
func TestBenchSimCores(t *testing.T) {
	costs := filepath.Join(t.TempDir(), "costs.json")
	m := sim.Machine{Cores: 1, Verification: 400 * time.Microsecond, PerByte: 1, Fsync: 100 * time.Microsecond, Source: "test"}
	if err := calibrate.Write(costs, m); err != nil {
		t.Fatal(err)
	}
	run := func(extra ...string) simBenchResult {
		var out bytes.Buffer
		args := append([]string{"--sim", "--costs", costs, "--n", "4", "--m", "4", "--warmup", "200ms", "--duration", "300ms", "--clients", "800", "--json"}, extra...)
		if err := runBench(args, &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		var r simBenchResult
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	one, four := run(), run("--cores", "4")
	if four.Model.Cores != 4 || !strings.Contains(four.ModelSource, "--cores") {
		t.Fatalf("--cores 4: model cores %d from %q; want 4, and the source to say --cores", four.Model.Cores, four.ModelSource)
	}
	if four.ExecutedPerSec < 1.5*one.ExecutedPerSec {
		t.Fatalf("1 core: %.0f req/s, 4 cores: %.0f; a run bound by 400 µs checks should gain from the cores", one.ExecutedPerSec, four.ExecutedPerSec)
	}
}
