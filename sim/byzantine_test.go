package sim

import (
	"strings"
	"testing"

	"github.com/braid-bft/braid/byzantine"
	"github.com/braid-bft/braid/ledger"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/storage"
)

// The scenarios that wrap replicas in a Byzantine filter (package
// byzantine, shared with `braid replica --byzantine`) must really attack:
// in every one the faulty replicas' filters alter, withhold, add or drop
// frames, for both protocols. A scenario whose filter did nothing would
// pass its invariants vacuously.
func TestByzantineScenariosAttack(t *testing.T) {
	kinds := map[string]byzantine.Kind{
		"silent-primary": byzantine.Silent, "equivocating-primary": byzantine.Equivocate, "replay": byzantine.Replay,
		"forged-sender": byzantine.Forge, "garbage": byzantine.Garbage, "throttling-primary": byzantine.Throttle,
		"in-the-dark": byzantine.Dark, "lying-checkpoint": byzantine.LieCheckpoint, "flood": byzantine.Flood,
	}
	for sc, kind := range kinds {
		for _, protocol := range []string{"pbft", "rcc"} {
			w, res, err := runWorld(Options{Protocol: protocol, Scenario: sc, N: 4, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Violations) > 0 {
				t.Errorf("%s %s: %v", protocol, sc, res.Violations)
			}
			filters := 0
			for id := range w.faulty {
				r := w.replicas[id]
				if r.byz.Kind() != kind {
					t.Errorf("%s %s: replica %d runs %q; want %q", protocol, sc, id, r.byz.Kind(), kind)
					continue
				}
				filters++
				if r.byz.Tampered() == 0 {
					t.Errorf("%s %s: replica %d's %s filter never altered, withheld, added or dropped a frame", protocol, sc, id, kind)
				}
			}
			if filters == 0 {
				t.Errorf("%s %s: no replica runs a filter", protocol, sc)
			}
		}
	}
}

// Negative control for the checker's ledger check: a correct replica's
// stored certificate with one signature on another checkpoint digest (what
// a core that let a lying checkpoint into its proof would store) is a
// violation.
func TestCheckerCatchesBadCertificate(t *testing.T) {
	w, res, err := runWorld(Options{Protocol: "rcc", Scenario: "fault-free", N: 4, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Violations) > 0 {
		t.Fatalf("fault-free: %v", res.Violations)
	}
	d := w.replicas[1].disk
	height, err := d.Height()
	if err != nil {
		t.Fatal(err)
	}
	var cert *ledger.Certificate
	for h := height; h > 0 && cert == nil; h-- {
		if cert, err = d.Certificate(h); err != nil {
			t.Fatal(err)
		}
	}
	if cert == nil {
		t.Fatalf("replica 1 stored no certificate in %d blocks", height)
	}
	bad := *cert
	bad.Signatures = append([]msg.Checkpoint(nil), cert.Signatures...)
	bad.Signatures[0].State[0] ^= 1
	if err := d.Memory.Apply(&storage.Batch{Certificates: []*ledger.Certificate{&bad}}); err != nil {
		t.Fatal(err)
	}
	w.chk.violations = nil
	w.chk.ledgers()
	if len(w.chk.violations) != 1 || !strings.Contains(w.chk.violations[0], "replica 1's ledger does not verify") {
		t.Fatalf("violations %q; want replica 1's ledger reported", w.chk.violations)
	}
	t.Log(w.chk.violations[0])
}
