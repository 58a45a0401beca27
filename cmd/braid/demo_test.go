package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDemoEndToEnd is the multi-process end-to-end test: it builds the
// braid binary and runs `braid demo`, which starts four replica processes
// on loopback, drives a workload through the client SDK, kill -9s the
// primary of instance 0 and restarts it, reads back every acknowledged
// write, and verifies every replica's ledger offline.
func TestDemoEndToEnd(t *testing.T) {
	bin := buildBraidE2E(t)
	out, err := exec.Command(bin, "demo", "--phase", "3s").CombinedOutput()
	text := strings.ReplaceAll(string(out), "\r", "\n")
	t.Logf("braid demo output:\n%s", text)
	if err != nil {
		t.Fatalf("braid demo: %v", err)
	}
	if !strings.Contains(text, "demo finished") || !strings.Contains(text, " 0 wrong") {
		t.Fatal("demo did not finish cleanly")
	}
	heads := regexp.MustCompile(`replica \d: ledger verified: height (\d+), head ([0-9a-f]+)`).FindAllStringSubmatch(text, -1)
	if len(heads) != 4 {
		t.Fatalf("%d of 4 ledgers verified", len(heads))
	}
	for _, h := range heads[1:] {
		if h[1] != heads[0][1] || h[2] != heads[0][2] {
			t.Fatalf("ledgers differ: %v", heads)
		}
	}
}

// buildBraidE2E builds this command into a temp dir for a multi-process
// end-to-end test, or skips the test unless BRAID_E2E is set. Four replica
// processes on two cores must run alone, not beside the simulator suite
// that `go test ./...` runs in parallel (under that load a restarted
// primary's rejoin stalled the cluster for minutes once — recorded as an
// open liveness problem); .ci/run runs them as their own step.
func buildBraidE2E(t *testing.T) string {
	t.Helper()
	if os.Getenv("BRAID_E2E") == "" {
		t.Skip("multi-process end-to-end test: set BRAID_E2E=1 (CI runs it as a separate step)")
	}
	bin := filepath.Join(t.TempDir(), "braid")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}
