package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	kvapp "github.com/braid-bft/braid/app/kv"
	"github.com/braid-bft/braid/byzantine"
	"github.com/braid-bft/braid/config"
	"github.com/braid-bft/braid/httpapi"
	"github.com/braid-bft/braid/internal/loopback"
	"github.com/braid-bft/braid/ledger"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/storage"
)

// `braid replica --byzantine KIND` on a valid cluster file is refused —
// exit status 2 and an error naming the opt-in — unless --unsafe-byzantine
// or BRAID_UNSAFE_BYZANTINE=1 says so; an unknown kind is refused even then.
// (A refused replica would otherwise run until a signal: the run is given
// a bound, and a replica that started fails the test.)
func TestReplicaRefusesByzantineWithoutOptIn(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := runCmd(runInit, "--dir", dir); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "cluster.json")
	run := func(args ...string) (string, error) {
		type result struct {
			stderr string
			err    error
		}
		done := make(chan result, 1)
		go func() {
			_, stderr, err := runCmd(runReplica, args...)
			done <- result{stderr, err}
		}()
		select {
		case r := <-done:
			return r.stderr, r.err
		case <-time.After(20 * time.Second):
			t.Fatalf("braid replica %s: still running after 20 s: it started instead of refusing", strings.Join(args, " "))
			return "", nil
		}
	}
	for _, env := range []string{"", "0", "yes"} {
		t.Setenv(byzantine.UnsafeEnv, env)
		for _, kind := range []string{"equivocate", "silent", "lie-checkpoint"} {
			stderr, err := run("--config", cfg, "--id", "0", "--byzantine", kind)
			if err != exitCode(2) || !strings.Contains(stderr, "--unsafe-byzantine") || !strings.Contains(stderr, byzantine.UnsafeEnv+"=1") {
				t.Errorf("%s=%q --byzantine %s: err %v, stderr %q; want exit status 2 naming the opt-in", byzantine.UnsafeEnv, env, kind, err, stderr)
			}
		}
	}
	// With an opt-in the check passes: replica 99 is then refused by the
	// config instead (so nothing starts).
	t.Setenv(byzantine.UnsafeEnv, "")
	if stderr, err := run("--config", cfg, "--id", "99", "--byzantine", "equivocate", "--unsafe-byzantine"); err == nil || !strings.Contains(err.Error(), "not in the cluster config") {
		t.Errorf("--unsafe-byzantine: err %v, stderr %q; want the opt-in accepted and id 99 refused", err, stderr)
	}
	t.Setenv(byzantine.UnsafeEnv, "1")
	if stderr, err := run("--config", cfg, "--id", "99", "--byzantine", "silent"); err == nil || !strings.Contains(err.Error(), "not in the cluster config") {
		t.Errorf("%s=1: err %v, stderr %q; want the opt-in accepted and id 99 refused", byzantine.UnsafeEnv, err, stderr)
	}
	if stderr, err := run("--config", cfg, "--id", "0", "--byzantine", "bogus", "--unsafe-byzantine"); err != exitCode(2) || !strings.Contains(stderr, `unknown Byzantine behaviour "bogus"`) {
		t.Errorf("--byzantine bogus: err %v, stderr %q; want exit status 2 and the kinds", err, stderr)
	}
	// The usage text documents the flags and the test-only warning.
	_, help, _ := runCmd(runReplica, "--help")
	for _, want := range []string{"-byzantine", "-unsafe-byzantine", "TEST ONLY", "BRAID_UNSAFE_BYZANTINE=1"} {
		if !strings.Contains(help, want) {
			t.Errorf("braid replica --help lacks %q", want)
		}
	}
}

// TestByzantineReplicaEndToEnd runs four `braid replica` processes on
// loopback, replica 0 (view 0's primary of instance 0) with
// BRAID_UNSAFE_BYZANTINE=1 --byzantine equivocate: `braid kv` must still
// read back what it wrote, the Byzantine process must say what it is in
// its log at ERROR level, and the three correct replicas' ledgers must
// verify and agree block for block.
func TestByzantineReplicaEndToEnd(t *testing.T) {
	bin := buildBraidE2E(t)
	dir := t.TempDir()
	base, err := loopback.FreeBase(12)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "init", "--dir", dir, "--base-port", strconv.Itoa(base)).CombinedOutput(); err != nil {
		t.Fatalf("braid init: %v\n%s", err, out)
	}
	cfgPath := filepath.Join(dir, "cluster.json")
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	const byz = 0
	procs := make([]*exec.Cmd, cfg.N)
	logs := make([]string, cfg.N)
	waited := make([]chan error, cfg.N)
	for i := range procs {
		logs[i] = filepath.Join(dir, fmt.Sprintf("replica-%d.log", i))
		f, err := os.Create(logs[i])
		if err != nil {
			t.Fatal(err)
		}
		args := []string{"replica", "--config", cfgPath, "--id", strconv.Itoa(i)}
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), byzantine.UnsafeEnv+"=")
		if i == byz {
			cmd.Args = append(cmd.Args, "--byzantine", "equivocate")
			cmd.Env = append(os.Environ(), byzantine.UnsafeEnv+"=1")
		}
		cmd.Stdout, cmd.Stderr = f, f
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs[i], waited[i] = cmd, make(chan error, 1)
		go func() { waited[i] <- cmd.Wait(); f.Close() }()
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		for _, p := range procs {
			_ = p.Process.Signal(syscall.SIGTERM)
		}
		for i, p := range procs {
			select {
			case err := <-waited[i]:
				if err != nil {
					t.Errorf("replica %d: %v", i, err)
				}
			case <-time.After(10 * time.Second):
				_ = p.Process.Kill()
				<-waited[i]
				t.Errorf("replica %d did not stop within 10 s of SIGTERM", i)
			}
		}
	}
	t.Cleanup(stop)
	kv := func(args ...string) string {
		out, err := exec.Command(bin, append([]string{"kv", args[0], "--config", cfgPath, "--timeout", "30s"}, args[1:]...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("braid kv %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	k := uint64(cfg.CheckpointInterval)
	statusErr := func(i int) (httpapi.Status, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return httpapi.NewClient(cfg.Replicas[i].HTTPAddr, nil).Status(ctx)
	}
	status := func(i int) httpapi.Status {
		st, err := statusErr(i)
		if err != nil {
			t.Fatalf("replica %d status: %v", i, err)
		}
		return st
	}
	for i := range procs { // every process up and serving before the first request
		for deadline := time.Now().Add(30 * time.Second); ; {
			if _, err := statusErr(i); err == nil {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("replica %d not serving after 30 s: %v", i, err)
			}
			time.Sleep(50 * time.Millisecond) // a retry loop while the process starts, not synchronisation
		}
	}
	for i := range procs { // /v1/status says which replica is Byzantine
		if got, want := status(i).Byzantine, map[bool]string{true: "equivocate"}[i == byz]; got != want {
			t.Errorf("replica %d's /v1/status: byzantine %q; want %q", i, got, want)
		}
	}
	const puts = 10
	for i := 1; i <= puts; i++ {
		kv("put", fmt.Sprintf("k%d", i%4), fmt.Sprintf("v%d", i))
	}
	if got := kv("get", "k3"); got != "v7" {
		t.Fatalf("braid kv get k3 = %q; want v7", got)
	}
	// Every correct replica executes everything and certifies the
	// checkpoint above it (idle primaries pad to one) before the stop.
	var target uint64
	for i := range procs {
		if i != byz {
			target = max(target, status(i).Round)
		}
	}
	target = (target + k - 1) / k * k
	for deadline := time.Now().Add(30 * time.Second); ; {
		done := true
		for i := range procs {
			if i != byz && status(i).StableCheckpoint < target {
				done = false
			}
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the correct replicas did not all certify round %d within 30 s", target)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition with a deadline, not ordering events
	}
	if st := status(byz); st.ByzantineTampered == 0 {
		t.Errorf("replica %d's /v1/status: byzantine_tampered 0: the attack did not run", byz)
	}
	out, err := exec.Command(bin, "status", "--config", cfgPath).CombinedOutput()
	if err != nil {
		t.Fatalf("braid status: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == "up" && (f[0] == strconv.Itoa(byz)) != strings.Contains(line, "BYZANTINE (test only): equivocate") {
			t.Errorf("braid status line %q: want the Byzantine mark on replica %d's line only", line, byz)
		}
	}
	t.Logf("braid status:\n%s", out)
	stop()
	text, err := os.ReadFile(logs[byz])
	if err != nil {
		t.Fatal(err)
	}
	if want := "level=ERROR msg=\"" + byzantine.Warning(byzantine.Equivocate); !strings.Contains(string(text), want) {
		t.Errorf("replica %d's log lacks %q:\n%s", byz, want, text)
	}
	if m := regexp.MustCompile(`msg="Byzantine replica stopped" .*tampered=(\d+)`).FindSubmatch(text); m == nil || string(m[1]) == "0" {
		t.Errorf("replica %d's log does not show its filter tampering with frames (%q):\n%s", byz, m, text)
	} else {
		t.Logf("replica %d: %s frames tampered with", byz, m[1])
	}
	ring, err := cfg.Keyring()
	if err != nil {
		t.Fatal(err)
	}
	var chains [][]msg.Digest
	for i := range procs {
		if i == byz {
			continue
		}
		st, err := storage.Open(cfg.ReplicaDataDir(i), storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := ledger.Verify(st, ring, cfg.N, ledger.VerifyOptions{})
		var chain []msg.Digest
		requests := 0
		seen := map[string]int{} // each put's operation, by its encoding
		for h := uint64(1); err == nil && h <= rep.Height; h++ {
			var b *ledger.Block
			if b, err = st.Block(h); err == nil {
				chain = append(chain, b.Hash())
				requests += len(b.Requests)
				for _, r := range b.Requests {
					seen[string(r.Op)]++
				}
			}
		}
		st.Close()
		if err != nil {
			t.Fatalf("replica %d's ledger: %v", i, err)
		}
		for j := 1; j <= puts; j++ {
			if c := seen[string(kvapp.Put(fmt.Appendf(nil, "k%d", j%4), fmt.Appendf(nil, "v%d", j)))]; c != 1 {
				t.Errorf("replica %d's ledger holds put %d %d times; want once", i, j, c)
			}
		}
		chains = append(chains, chain)
		t.Logf("replica %d: %d blocks, %d requests, verified", i, len(chain), requests)
	}
	lo := len(chains[0])
	for _, c := range chains {
		lo = min(lo, len(c))
	}
	for j, c := range chains {
		if !slices.Equal(c[:lo], chains[0][:lo]) {
			t.Fatalf("correct replica #%d's ledger differs from the first's within %d blocks", j, lo)
		}
	}
}
