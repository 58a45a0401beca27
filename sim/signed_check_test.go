package sim

import (
	"strings"
	"testing"

	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/sim/simnet"
)

// The no-equivocation invariant itself: a second, different message for the
// same key by the same signer is a violation (standalone or nested in a
// NewView); identical re-sends, other signers and relayed messages are not.
func TestCheckerCatchesEquivocation(t *testing.T) {
	c := newChecker(&world{s: simnet.New(1)})
	pp := func(from msg.ReplicaID, seq uint64, client msg.ClientID) *msg.PrePrepare {
		p := &msg.PrePrepare{View: 2, Seq: seq, From: from, Batch: msg.Batch{Requests: []msg.Request{{Client: client, Number: 1}}}}
		p.Digest = p.Batch.Digest()
		return p
	}
	c.signedBy(1, pp(1, 5, 7))
	c.signedBy(1, pp(1, 5, 7))                                                   // the same message again
	c.signedBy(2, pp(2, 5, 8))                                                   // another signer
	c.signedBy(1, pp(2, 6, 8))                                                   // relayed: not replica 1's signature
	c.signedBy(1, &msg.Prepare{View: 2, Seq: 5, Digest: msg.Digest{9}, From: 1}) // another kind
	if len(c.violations) != 0 {
		t.Fatalf("violations for legitimate messages: %v", c.violations)
	}
	c.signedBy(1, pp(1, 5, 9))
	if len(c.violations) != 1 || !strings.Contains(c.violations[0], "equivocation") {
		t.Fatalf("second pre-prepare for (view 2, seq 5) by replica 1: violations %v", c.violations)
	}
	// Nested: replica 3's NewView for view 4 carries its pre-prepare for
	// seq 1; a standalone one for (4, 1) with another batch contradicts it.
	inner := pp(3, 1, 1)
	inner.View = 4
	c.signedBy(3, &msg.NewView{View: 4, From: 3, PrePrepares: []msg.PrePrepare{*inner}})
	other := pp(3, 1, 2)
	other.View = 4
	c.signedBy(3, other)
	if len(c.violations) != 2 {
		t.Fatalf("pre-prepare contradicting the one in the replica's NewView not caught: %v", c.violations)
	}
	// Checkpoints and view changes are keyed by (seq) and (new view).
	c.signedBy(0, &msg.Checkpoint{Seq: 8, State: msg.Digest{1}, From: 0})
	c.signedBy(0, &msg.Checkpoint{Seq: 8, State: msg.Digest{2}, From: 0})
	c.signedBy(0, &msg.ViewChange{NewView: 3, StableSeq: 0, From: 0})
	c.signedBy(0, &msg.ViewChange{NewView: 3, StableSeq: 0, Resume: 4, From: 0})
	if len(c.violations) != 4 {
		t.Fatalf("conflicting checkpoint / view change not caught: %v", c.violations)
	}
}

// Negative control through the whole simulator: view 0's primary sends two
// validly signed batches for the same (view, seq), but the checker is told
// it is correct. The hook on delivery must see both and report it. (It
// adds a scenario to the package's table for its duration: not parallel.)
func TestCheckerCatchesEquivocatingReplicaMarkedCorrect(t *testing.T) {
	const name = "signed-equivocator-marked-correct"
	scenarios[name] = scenario{
		about:   "negative control: an equivocating primary the checker believes correct",
		corrupt: func(w *world, byz int) { w.faulty[0] = "equivocate" },
		// After the replicas are built with their behaviours: forget that
		// replica 0 is faulty, so the checker holds it to correct behaviour.
		schedule: func(w *world) { delete(w.faulty, 0) },
	}
	defer delete(scenarios, name)
	for _, protocol := range []string{"pbft", "rcc"} {
		caught := false
		for seed := uint64(1); seed <= 3 && !caught; seed++ {
			res, err := Run(Options{Protocol: protocol, Scenario: name, N: 4, Seed: seed})
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range res.Violations {
				if strings.Contains(v, "equivocation: correct replica 0") {
					caught = true
					t.Logf("%s seed %d: %s", protocol, seed, v)
					break
				}
			}
		}
		if !caught {
			t.Errorf("%s: an equivocating primary marked correct went unnoticed in 3 seeds", protocol)
		}
	}
}
