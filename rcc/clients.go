package rcc

import (
	"fmt"
	"math"
	"slices"

	"github.com/braid-bft/braid/internal/enum"
	"github.com/braid-bft/braid/internal/wire"
	"github.com/braid-bft/braid/msg"
)

// Section 4.2: client c is served by instance id(c) mod m. Under in-place
// recovery an instance whose primary is faulty may ignore its clients
// forever, so a client may ask another instance to take it over; the move
// takes effect at an agreed round, and an instance refuses it once it
// serves ⌈|C|/(m−f)⌉ clients, which keeps the load balanced. The paper has
// m = n and writes ⌈|C|/(n−f)⌉; with fewer instances than replicas only m−f
// of them are sure to have correct primaries, and those must be able to
// take every client between them, so the cap divides by m−f (and there is
// none when m ≤ f).
//
// An instance change carries the operation the client is waiting for and
// goes out under that operation's request number (msg.InstanceChangeOp):
// it executes the operation whether or not the move is granted, so
// whichever of the original request and the change executes first is the
// operation's one execution, and the shell skips the other as a duplicate.

// Refusal is why an instance change did not move its client.
type Refusal uint8

const (
	NotRefused           Refusal = iota
	RefusedDisabled              // no admitted clients configured: instance changes are off
	RefusedNoInstance            // the target instance does not exist
	RefusedWrongInstance         // ordered by an instance other than the target
	RefusedUnknownClient         // the client is not admitted
	RefusedFull                  // the target already serves ⌈|C|/(m−f)⌉ clients
)

var refusalNames = []string{
	NotRefused:           "not refused",
	RefusedDisabled:      "instance changes are disabled",
	RefusedNoInstance:    "no such instance",
	RefusedWrongInstance: "ordered by another instance than the one asked for",
	RefusedUnknownClient: "client not admitted",
	RefusedFull:          "target instance at the load cap ⌈|C|/(m−f)⌉",
}

func (r Refusal) String() string { return enum.Name(refusalNames, r, "refusal") }

type move struct {
	instance uint32
	from     uint64 // first round the old instance stops serving the client
	prev     uint32 // the instance before
	at       uint64 // round the move was executed: the new instance serves from the next one
}

type assignment struct {
	m        int
	admitted []msg.ClientID // sorted, distinct
	cap      int
	moves    map[msg.ClientID]move
}

// newAssignment takes the admitted client ids (any order, duplicates
// ignored) and f, the replicas that may be faulty.
func newAssignment(m int, clients []msg.ClientID, f int) *assignment {
	admitted := slices.Compact(slices.Sorted(slices.Values(clients)))
	a := &assignment{m: m, admitted: admitted, moves: map[msg.ClientID]move{}, cap: len(admitted)}
	if working := m - f; working > 0 {
		a.cap = (len(admitted) + working - 1) / working
	}
	return a
}

func (a *assignment) isAdmitted(c msg.ClientID) bool {
	_, ok := slices.BinarySearch(a.admitted, c)
	return ok
}

// instanceOf is the instance serving c in round.
func (a *assignment) instanceOf(c msg.ClientID, round uint64) uint32 {
	if mv, ok := a.moves[c]; ok {
		if round >= mv.from {
			return mv.instance
		}
		return mv.prev
	}
	return msg.HomeInstance(c, int(a.m))
}

// serves reports whether instance inst may order c's requests in round.
// The new instance serves a moved client from the round after the move
// executed — at once, rather than at ρ+2σ as in the paper, so a client whose
// old instance ignores it is not left waiting — and the old one keeps
// serving it until ρ+2σ, so its in-flight proposals are not lost. Both may
// order the client's requests meanwhile; per-client request numbers keep
// execution exactly-once and in the client's order.
func (a *assignment) serves(c msg.ClientID, inst uint32, round uint64) bool {
	if a.instanceOf(c, round) == inst {
		return true
	}
	mv, ok := a.moves[c]
	return ok && mv.instance == inst && round > mv.at
}

// final is where c ends up once pending moves take effect.
func (a *assignment) final(c msg.ClientID) uint32 {
	if mv, ok := a.moves[c]; ok {
		return mv.instance
	}
	return msg.HomeInstance(c, int(a.m))
}

// load counts the admitted clients instance j serves or will.
func (a *assignment) load(j uint32) int {
	n := 0
	for _, c := range a.admitted {
		if a.final(c) == j {
			n++
		}
	}
	return n
}

// change executes an instance-change request of c for target, ordered by
// instance via in round; a granted move is effective from effective on.
// moved is true also when c already ends up at target (nothing changes).
func (a *assignment) change(c msg.ClientID, target, via uint32, round, effective uint64) (moved bool, why Refusal) {
	switch {
	case len(a.admitted) == 0:
		return false, RefusedDisabled
	case int(target) >= a.m:
		return false, RefusedNoInstance
	case via != target:
		return false, RefusedWrongInstance
	case !a.isAdmitted(c):
		return false, RefusedUnknownClient
	case a.final(c) == target:
		return true, NotRefused
	case a.load(target) >= a.cap:
		return false, RefusedFull
	}
	a.moves[c] = move{instance: target, from: effective, prev: a.instanceOf(c, round), at: round}
	return true, NotRefused
}

func (a *assignment) encode(b []byte) []byte {
	keys := make([]msg.ClientID, 0, len(a.moves))
	for c := range a.moves {
		keys = append(keys, c)
	}
	slices.Sort(keys)
	b = wire.AppendU32(b, uint32(len(keys)))
	for _, c := range keys {
		mv := a.moves[c]
		b = wire.AppendU64(b, uint64(c))
		b = wire.AppendU32(b, mv.instance)
		b = wire.AppendU64(b, mv.from)
		b = wire.AppendU32(b, mv.prev)
		b = wire.AppendU64(b, mv.at)
	}
	return b
}

func (a *assignment) decode(d *wire.Reader) error {
	k := d.Count(math.MaxInt32, 32, "client moves")
	moves := make(map[msg.ClientID]move, k)
	for j := 0; j < k; j++ {
		c := msg.ClientID(d.U64())
		moves[c] = move{instance: d.U32(), from: d.U64(), prev: d.U32(), at: d.U64()}
	}
	if d.Err() != nil {
		return d.Err()
	}
	for c, mv := range moves {
		if int(mv.instance) >= a.m || int(mv.prev) >= a.m {
			return fmt.Errorf("rcc state: client %d moved to instance %d of %d", c, mv.instance, a.m)
		}
	}
	a.moves = moves
	return nil
}
