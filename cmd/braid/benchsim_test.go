package main

import (
	"bytes"
	"encoding/json"
	"io"
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
		{[]string{"--sim", "--calibrate"}, "--calibrate and --sim"},
		{[]string{"--sim", "--compare-m", "1"}, "--sim runs the simulator"},
		{[]string{"--sim", "--costs", "/nonexistent/costs.json"}, "no such file"},
	} {
		err := runBench(tc.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one containing %q", tc.args, err, tc.want)
		}
	}
}
