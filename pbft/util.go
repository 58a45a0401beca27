package pbft

import (
	"cmp"
	"maps"
	"slices"

	"github.com/braid-bft/braid/msg"
)

// Map iteration order is random in Go; anything that reaches an output goes
// through these sorted views so that a run is a pure function of its inputs.

func sortedIDs[V any](m map[msg.ReplicaID]V) []msg.ReplicaID {
	return slices.Sorted(maps.Keys(m))
}

func sortedSeqs[V any](m map[uint64]V) []uint64 {
	return slices.Sorted(maps.Keys(m))
}

func sortedKeys[V any](m map[msg.RequestKey]V) []msg.RequestKey {
	return slices.SortedFunc(maps.Keys(m), func(a, b msg.RequestKey) int {
		if c := cmp.Compare(a.Client, b.Client); c != 0 {
			return c
		}
		return cmp.Compare(a.Number, b.Number)
	})
}

func cmpU64(a, b uint64) int { return cmp.Compare(a, b) }

// Stats counts what the instance did and, by reason, what it refused.
type Stats struct {
	Received           map[string]uint64
	Dropped            map[string]uint64
	Proposed           uint64
	Decided            uint64
	DecidedRequests    uint64
	ViewChanges        uint64
	NewViews           uint64
	Timeouts           uint64
	Suspicions         uint64
	StableCheckpoints  uint64
	StateTransfers     uint64
	WeakTransfers      uint64 // of those, to a checkpoint only f+1 replicas vouch for
	Learned            uint64 // decisions learned from commit quorums of another view
	IdlePads           uint64 // times an idle primary padded to the next checkpoint
	CheckpointMismatch uint64
}

func newStats() Stats {
	return Stats{Received: make(map[string]uint64), Dropped: make(map[string]uint64)}
}

func (s Stats) clone() Stats {
	c := s
	c.Received = maps.Clone(s.Received)
	c.Dropped = maps.Clone(s.Dropped)
	return c
}

// TotalDropped sums the drops over all reasons.
func (s Stats) TotalDropped() uint64 {
	var t uint64
	for _, v := range s.Dropped {
		t += v
	}
	return t
}
