package testseed

import "testing"

func TestEnvFixesTheSeed(t *testing.T) {
	t.Setenv(Env, "42")
	if got := New(t); got != 42 {
		t.Fatalf("seed %d with %s=42", got, Env)
	}
}

func TestFreshSeedsDiffer(t *testing.T) {
	t.Setenv(Env, "")
	if a, b := New(t), New(t); a == b {
		t.Fatalf("two fresh seeds were both %d", a)
	}
}
