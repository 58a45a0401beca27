package sim

import (
	"testing"

	"github.com/braid-bft/braid/byzantine"
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
