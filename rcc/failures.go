package rcc

import (
	"fmt"
	"github.com/braid-bft/braid/internal/wire"
	"maps"
	"math"
	"slices"

	"github.com/braid-bft/braid/msg"
)

// primaries is the paradigm's agreed primary state: Figure 4's (failed,
// primary), plus which primary each instance's views got. It changes only
// when a round is executed — at the same point of the same sequence of
// rounds on every correct replica — so every correct replica holds the
// same state at the same round (Invariant 3.6).
type primaries struct {
	n        int
	policy   Policy
	current  []msg.ReplicaID            // primary[i]
	failed   []msg.ReplicaID            // earliest first
	assigned []map[uint64]msg.ReplicaID // instance → view → agreed primary
	failures []uint64                   // per instance, failures executed so far
	resume   []uint64                   // per instance, first round it contributes to again (0: never skipped)
}

func newPrimaries(n, m int, p Policy) *primaries {
	pr := &primaries{n: n, policy: p, assigned: make([]map[uint64]msg.ReplicaID, m), failures: make([]uint64, m), resume: make([]uint64, m)}
	for i := 0; i < m; i++ {
		pr.current = append(pr.current, msg.ReplicaID(i))
		pr.assigned[i] = map[uint64]msg.ReplicaID{}
	}
	return pr
}

// primary answers instance i's primary rule for view v: replica i in view 0;
// under in-place recovery always replica i (the skip is the penalty); under
// replacement, the primary Figure 4 chose when it executed the view's
// failure decision — unknown (NoReplica) until then.
func (pr *primaries) primary(i uint32, v uint64) msg.ReplicaID {
	if v == 0 || pr.policy == InPlace {
		return msg.ReplicaID(i)
	}
	if p, ok := pr.assigned[i][v]; ok {
		return p
	}
	return msg.NoReplica
}

// fail applies one failure decision of instance i (made in view v). Under
// replacement this is Figure 4, lines 4–9: the failed primary joins failed,
// and the smallest-id replica that is neither failed nor in use becomes the
// primary. When none is left, the earliest failed replicas are reconsidered
// (end of Section 4.1: soft failures are temporary).
func (pr *primaries) fail(i uint32, v uint64) msg.ReplicaID {
	pr.failures[i]++
	if pr.policy == InPlace {
		return msg.ReplicaID(i)
	}
	if old := pr.current[i]; !slices.Contains(pr.failed, old) {
		pr.failed = append(pr.failed, old)
	}
	for {
		if p, ok := pr.candidate(); ok {
			pr.current[i] = p
			pr.assigned[i][v] = p
			return p
		}
		if len(pr.failed) == 0 {
			// Every replica leads an instance (m = n with f = 0): there is
			// no one else, so the instance keeps its primary.
			pr.assigned[i][v] = pr.current[i]
			return pr.current[i]
		}
		pr.failed = pr.failed[1:] // reconsider the earliest failed replica
	}
}

func (pr *primaries) candidate() (msg.ReplicaID, bool) {
	for id := 0; id < pr.n; id++ {
		r := msg.ReplicaID(id)
		if !slices.Contains(pr.failed, r) && !slices.Contains(pr.current, r) {
			return r, true
		}
	}
	return 0, false
}

// encode serialises the state deterministically (for checkpoints and
// state transfer: the paradigm state is part of the replicated state).
func (pr *primaries) encode(b []byte) []byte {
	b = wire.AppendU32(b, uint32(len(pr.current)))
	for i, c := range pr.current {
		b = wire.AppendU32(b, uint32(c))
		b = wire.AppendU64(b, pr.failures[i])
		b = wire.AppendU64(b, pr.resume[i])
		views := slices.Sorted(maps.Keys(pr.assigned[i]))
		b = wire.AppendU32(b, uint32(len(views)))
		for _, v := range views {
			b = wire.AppendU64(b, v)
			b = wire.AppendU32(b, uint32(pr.assigned[i][v]))
		}
	}
	b = wire.AppendU32(b, uint32(len(pr.failed)))
	for _, f := range pr.failed {
		b = wire.AppendU32(b, uint32(f))
	}
	return b
}

func (pr *primaries) decode(d *wire.Reader) error {
	m := d.U32()
	if int(m) != len(pr.current) {
		return fmt.Errorf("rcc state: %d instances, want %d", m, len(pr.current))
	}
	cur := make([]msg.ReplicaID, m)
	fails := make([]uint64, m)
	resume := make([]uint64, m)
	assigned := make([]map[uint64]msg.ReplicaID, m)
	for i := range cur {
		cur[i] = msg.ReplicaID(d.U32())
		fails[i] = d.U64()
		resume[i] = d.U64()
		k := d.Count(math.MaxInt32, 12, "assigned views")
		assigned[i] = make(map[uint64]msg.ReplicaID, k)
		for j := 0; j < k; j++ {
			v := d.U64()
			assigned[i][v] = msg.ReplicaID(d.U32())
		}
	}
	k := d.Count(math.MaxInt32, 4, "failed primaries")
	var failed []msg.ReplicaID
	for j := 0; j < k; j++ {
		failed = append(failed, msg.ReplicaID(d.U32()))
	}
	if d.Err() != nil {
		return d.Err()
	}
	for _, c := range cur {
		if int(c) >= pr.n {
			return fmt.Errorf("rcc state: primary %d out of range", c)
		}
	}
	pr.current, pr.failures, pr.assigned, pr.failed, pr.resume = cur, fails, assigned, failed, resume
	return nil
}
