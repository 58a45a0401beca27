package rcc

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/braid-bft/braid/msg"
)

// Section 4.2: client c is served by instance id(c) mod m. Under in-place
// recovery an instance whose primary is faulty may ignore its clients
// forever, so a client may ask another instance to take it over; the move
// takes effect at an agreed round, and an instance refuses it once it
// serves ⌈|C|/(n−f)⌉ clients, which keeps the load balanced.

var instanceChangeTag = []byte("\x00braid/instance-change/v1")

// InstanceChangeOp is the operation a client submits (to the target
// instance's primary) to be served by instance target from now on.
func InstanceChangeOp(target uint32) []byte {
	return binary.BigEndian.AppendUint32(append([]byte(nil), instanceChangeTag...), target)
}

// ParseInstanceChange recognises an instance-change operation.
func ParseInstanceChange(op []byte) (target uint32, ok bool) {
	if len(op) != len(instanceChangeTag)+4 || !bytes.HasPrefix(op, instanceChangeTag) {
		return 0, false
	}
	return binary.BigEndian.Uint32(op[len(instanceChangeTag):]), true
}

// Control is the outcome of an instance-change request, replicated like
// any result so the client can match f+1 of them.
type Control struct {
	Request msg.Request
	Result  []byte
}

type move struct {
	instance uint32
	from     uint64 // first round the old instance stops serving the client
	prev     uint32 // the instance before
	at       uint64 // round the move was executed: the new instance serves from the next one
}

type assignment struct {
	m       int
	clients int
	cap     int
	moves   map[msg.ClientID]move
}

func newAssignment(m, clients, nonFaulty int) *assignment {
	a := &assignment{m: m, clients: clients, moves: map[msg.ClientID]move{}}
	if nonFaulty > 0 {
		a.cap = (clients + nonFaulty - 1) / nonFaulty
	}
	return a
}

// instanceOf is the instance serving c in round.
func (a *assignment) instanceOf(c msg.ClientID, round uint64) uint32 {
	if mv, ok := a.moves[c]; ok {
		if round >= mv.from {
			return mv.instance
		}
		return mv.prev
	}
	return uint32(uint64(c) % uint64(a.m))
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
	return uint32(uint64(c) % uint64(a.m))
}

// load counts the admitted clients (ids below |C|) instance j serves or will.
func (a *assignment) load(j uint32) int {
	n := 0
	for c := 0; c < a.clients; c++ {
		if a.final(msg.ClientID(c)) == j {
			n++
		}
	}
	return n
}

// change executes an instance-change request ordered by instance via in
// round; the move is effective from effective on.
func (a *assignment) change(c msg.ClientID, target, via uint32, round, effective uint64) []byte {
	switch {
	case a.clients == 0:
		return []byte("refused: instance changes are disabled")
	case int(target) >= a.m:
		return []byte(fmt.Sprintf("refused: no instance %d", target))
	case via != target:
		return []byte("refused: send the instance change to the instance you want")
	case uint64(c) >= uint64(a.clients):
		return []byte("refused: unknown client")
	case a.final(c) == target:
		return []byte(fmt.Sprintf("ok: already served by instance %d", target))
	case a.load(target) >= a.cap:
		return []byte(fmt.Sprintf("refused: instance %d serves %d clients, the cap ⌈|C|/(n−f)⌉", target, a.cap))
	}
	a.moves[c] = move{instance: target, from: effective, prev: a.instanceOf(c, round), at: round}
	return []byte(fmt.Sprintf("ok: served by instance %d from round %d", target, effective))
}

func (a *assignment) encode(b []byte) []byte {
	keys := make([]msg.ClientID, 0, len(a.moves))
	for c := range a.moves {
		keys = append(keys, c)
	}
	slices.Sort(keys)
	b = binary.BigEndian.AppendUint32(b, uint32(len(keys)))
	for _, c := range keys {
		mv := a.moves[c]
		b = binary.BigEndian.AppendUint64(b, uint64(c))
		b = binary.BigEndian.AppendUint32(b, mv.instance)
		b = binary.BigEndian.AppendUint64(b, mv.from)
		b = binary.BigEndian.AppendUint32(b, mv.prev)
		b = binary.BigEndian.AppendUint64(b, mv.at)
	}
	return b
}

func (a *assignment) decode(d *reader) error {
	k := d.count(32)
	moves := make(map[msg.ClientID]move, k)
	for j := 0; j < k; j++ {
		c := msg.ClientID(d.u64())
		moves[c] = move{instance: d.u32(), from: d.u64(), prev: d.u32(), at: d.u64()}
	}
	if d.err != nil {
		return d.err
	}
	for c, mv := range moves {
		if int(mv.instance) >= a.m || int(mv.prev) >= a.m {
			return fmt.Errorf("rcc state: client %d moved to instance %d of %d", c, mv.instance, a.m)
		}
	}
	a.moves = moves
	return nil
}
