package main

import (
	"encoding/json"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestBenchFlagDefaults(t *testing.T) {
	o, done, err := parseBenchFlags(nil, io.Discard)
	if err != nil || done {
		t.Fatalf("no flags: done=%v err=%v", done, err)
	}
	want := benchOptions{n: 4, m: 0, batch: 100, payload: 64, clients: 64, duration: 10 * time.Second,
		warmup: 2 * time.Second, workload: "write", costs: defaultCosts, nicGbps: 1, scenario: "fault-free",
		out: "docs/sim", maxN: 128, maxMemory: 8 << 30}
	if *o != want {
		t.Fatalf("defaults %+v, want %+v", *o, want)
	}
}

func TestBenchFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // substring of the error; "" = valid
	}{
		{[]string{"--workload", "ycsb-d"}, `--workload "ycsb-d": want one of write, ycsb-a, ycsb-b, ycsb-c, bank`},
		{[]string{"--n", "3"}, "--n 3: need n ≥ 4"},
		{[]string{"--n", "1"}, "--n 1: need n ≥ 4"},
		{[]string{"--n", "2000"}, "--n 2000: need n ≤ 1024"},
		{[]string{"--n", "4", "--m", "5"}, "--m 5: need 1 ≤ m ≤ n = 4"},
		{[]string{"--m", "-1"}, "--m -1: need 1 ≤ m ≤ n = 4"},
		{[]string{"--batch", "0"}, "--batch 0: need 1 ≤ batch ≤ 4096"},
		{[]string{"--batch", "5000"}, "--batch 5000"},
		{[]string{"--payload", "-1"}, "--payload -1"},
		{[]string{"--payload", "70000"}, "--payload 70000: need 0 ≤ payload ≤ 65536"},
		{[]string{"--clients", "0"}, "--clients 0: need 1 ≤ clients"},
		{[]string{"--clients", "10001"}, "--clients 10001: need 1 ≤ clients ≤ 10000"},
		{[]string{"--sim", "--clients", "34400"}, ""},
		{[]string{"--sim", "--clients", "200001"}, "--clients 200001: need 1 ≤ clients ≤ 200000"},
		{[]string{"--duration", "0s"}, "--duration 0s: must be positive"},
		{[]string{"--warmup", "-1s"}, "--warmup -1s: cannot be negative"},
		{[]string{"--open-loop-rate", "-5"}, "--open-loop-rate -5"},
		{[]string{"--compare-m", "7"}, "--compare-m 7: need 1 ≤ m ≤ n = 4"},
		{[]string{"--config", "c.json", "--n", "7"}, "--n cannot be used with --config"},
		{[]string{"--config", "c.json", "--compare-m", "1"}, "--compare-m cannot be used with --config"},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"--n", "7", "--m", "7", "--compare-m", "1", "--workload", "ycsb-b"}, ""},
		{[]string{"--config", "c.json", "--clients", "8", "--workload", "bank", "--json"}, ""},
		{[]string{"--open-loop-rate", "500", "--warmup", "0s"}, ""},
		{[]string{"--plain", "--n", "7"}, "--n cannot be used with --plain"},
		{[]string{"--plain", "--m", "1"}, "--m cannot be used with --plain"},
		{[]string{"--plain", "--compare-m", "1"}, "--compare-m cannot be used with --plain"},
		{[]string{"--plain", "--config", "c.json"}, "--config cannot be used with --plain"},
		{[]string{"--plain", "--sim"}, "--sim cannot be used with --plain"},
		{[]string{"--plain", "--batch", "0"}, "--batch 0: need 1 ≤ batch ≤ 4096"},
		{[]string{"--plain", "--workload", "bank", "--clients", "8", "--batch", "10", "--json"}, ""},
	} {
		_, _, err := parseBenchFlags(tc.args, io.Discard)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: unexpected error %v", tc.args, err)
		case tc.want != "" && err == nil:
			t.Errorf("%v: no error, want %q", tc.args, tc.want)
		case tc.want != "" && !strings.Contains(err.Error(), tc.want):
			t.Errorf("%v: error %q, want it to contain %q", tc.args, err, tc.want)
		}
	}
	// An unknown flag is a usage error (exit status 2), as for every command.
	if _, _, err := parseBenchFlags([]string{"--nope"}, io.Discard); err != exitCode(2) {
		t.Errorf("unknown flag: %v, want exit status 2", err)
	}
}

func TestBenchWorkloadMix(t *testing.T) {
	const seed, draws = 20240601, 100000
	t.Logf("seed %d, %d draws per workload", seed, draws)
	for _, tc := range []struct {
		workload       string
		kind           opKind // the kind counted
		lo, hi         float64
		onlyReadUpdate bool
	}{
		{"ycsb-a", opRead, 0.49, 0.51, true},
		{"ycsb-b", opRead, 0.945, 0.955, true},
		{"ycsb-c", opRead, 1, 1, true},
		{"write", opWrite, 1, 1, false},
		{"bank", opTransfer, 1, 1, false},
	} {
		rng := mrand.New(mrand.NewPCG(seed, 0))
		count := map[opKind]int{}
		for range draws {
			count[drawOp(tc.workload, rng)]++
		}
		frac := float64(count[tc.kind]) / draws
		t.Logf("%s: %v fraction %.4f (%v)", tc.workload, tc.kind, frac, count)
		if frac < tc.lo || frac > tc.hi {
			t.Errorf("%s: %v fraction %.4f, want %.3f…%.3f", tc.workload, tc.kind, frac, tc.lo, tc.hi)
		}
		if tc.onlyReadUpdate && count[opRead]+count[opUpdate] != draws {
			t.Errorf("%s: drew kinds other than read and update: %v", tc.workload, count)
		}
	}
	// The mix is a function of the seed.
	a, b := mrand.New(mrand.NewPCG(7, 1)), mrand.New(mrand.NewPCG(7, 1))
	for range 1000 {
		if drawOp("ycsb-b", a) != drawOp("ycsb-b", b) {
			t.Fatal("same seed, different mix")
		}
	}
}

func TestBenchPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	if got := benchPercentile(nil, 50); got != 0 {
		t.Errorf("empty: %v", got)
	}
	one := ms(7)
	for _, q := range []float64{1, 50, 99, 100} {
		if got := benchPercentile(one, q); got != 7*time.Millisecond {
			t.Errorf("one sample, p%v = %v", q, got)
		}
	}
	// 1…100 ms: the nearest-rank p-th percentile is p ms.
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	h := ms(hundred...)
	for _, q := range []float64{1, 50, 95, 99, 100} {
		if got, want := benchPercentile(h, q), time.Duration(q)*time.Millisecond; got != want {
			t.Errorf("1…100: p%v = %v, want %v", q, got, want)
		}
	}
	// Four samples: p50 is the 2nd, p95 and p99 the 4th.
	four := ms(10, 20, 30, 40)
	for q, want := range map[float64]int{25: 10, 50: 20, 51: 30, 75: 30, 95: 40, 99: 40} {
		if got := benchPercentile(four, q); got != time.Duration(want)*time.Millisecond {
			t.Errorf("four: p%v = %v, want %d ms", q, got, want)
		}
	}
}

func TestBenchProcStat(t *testing.T) {
	// Field 2 may hold spaces and parentheses; utime and stime are fields 14, 15.
	line := "4242 (braid (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 7 0 12345 0 0\n"
	got, err := parseProcStatCPU(line)
	if err != nil || got != 3.25 {
		t.Fatalf("got %v, %v; want 3.25 s", got, err)
	}
	if _, err := parseProcStatCPU("4242 (x) S 1"); err == nil {
		t.Fatal("short line accepted")
	}
	// This process's own stat parses.
	if _, err := procCPU([]int{os.Getpid()}); err != nil {
		t.Fatal(err)
	}
}

// TestBenchEndToEnd builds braid and runs a short `braid bench --json`:
// four replica processes, four clients, a 2s window.
func TestBenchEndToEnd(t *testing.T) {
	bin := buildBraidE2E(t)
	cmd := exec.Command(bin, "bench", "--n", "4", "--clients", "4", "--duration", "2s", "--warmup", "1s", "--json")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	t.Logf("stderr:\n%s", strings.ReplaceAll(stderr.String(), "\r", "\n"))
	t.Logf("stdout:\n%s", out)
	if err != nil {
		t.Fatalf("braid bench: %v", err)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	var res map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("last stdout line is not JSON: %v", err)
	}
	for _, f := range []string{"executed_per_second", "p50_ms", "p95_ms", "p99_ms", "cpu_seconds_per_request",
		"floor_cpu_seconds_per_request", "n", "m", "batch", "payload", "clients", "workload", "duration_seconds", "executed"} {
		if _, ok := res[f]; !ok {
			t.Errorf("JSON lacks %q", f)
		}
	}
	if ex, _ := res["executed"].(float64); ex <= 0 {
		t.Fatalf("executed %v, want > 0", res["executed"])
	}
	if v, _ := res["cpu_seconds_per_request"].(float64); v <= 0 {
		t.Errorf("cpu_seconds_per_request %v, want > 0", res["cpu_seconds_per_request"])
	}
	if v, _ := res["floor_cpu_seconds_per_request"].(float64); v <= 0 {
		t.Errorf("floor_cpu_seconds_per_request %v, want > 0", res["floor_cpu_seconds_per_request"])
	}
	if res["mode"] != "bft" {
		t.Errorf("mode %v, want bft", res["mode"])
	}
	if res["n"] != 4.0 || res["clients"] != 4.0 || res["workload"] != "write" {
		t.Errorf("parameters not echoed: n=%v clients=%v workload=%v", res["n"], res["clients"], res["workload"])
	}
	if _, ok := res["instances"]; !ok {
		t.Errorf("no per-instance rounds")
	}
}

// TestBenchPlain builds braid and runs a short `braid bench --plain
// --json`: one non-replicated server process, the same clients and
// measurements, and output that says it is the baseline.
func TestBenchPlain(t *testing.T) {
	bin := buildBraidE2E(t)
	cmd := exec.Command(bin, "bench", "--plain", "--clients", "4", "--duration", "1s", "--warmup", "200ms", "--json")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	t.Logf("stderr:\n%s", strings.ReplaceAll(stderr.String(), "\r", "\n"))
	t.Logf("stdout:\n%s", out)
	if err != nil {
		t.Fatalf("braid bench --plain: %v", err)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	var res map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("last stdout line is not JSON: %v", err)
	}
	if res["mode"] != "plain" {
		t.Errorf("mode %v, want plain", res["mode"])
	}
	if ex, _ := res["executed"].(float64); ex <= 0 {
		t.Fatalf("executed %v, want > 0", res["executed"])
	}
	if res["failed"] != 0.0 || res["app_errors"] != 0.0 {
		t.Errorf("failed %v, app_errors %v, want 0 and 0", res["failed"], res["app_errors"])
	}
	if res["n"] != 1.0 || res["replica_processes"] != 1.0 || res["clients"] != 4.0 {
		t.Errorf("n %v, processes %v, clients %v; want 1, 1, 4", res["n"], res["replica_processes"], res["clients"])
	}
	if v, _ := res["cpu_seconds_per_request"].(float64); v <= 0 {
		t.Errorf("cpu_seconds_per_request %v, want > 0 (the server process's CPU)", res["cpu_seconds_per_request"])
	}
	if _, ok := res["instances"]; ok {
		t.Errorf("per-instance rounds reported for the baseline, which orders nothing")
	}
	if !strings.Contains(stderr.String(), "PLAIN NON-REPLICATED BASELINE") {
		t.Errorf("the readable summary does not say it is the non-replicated baseline")
	}
}
