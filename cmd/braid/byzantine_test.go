package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/braid-bft/braid/byzantine"
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
