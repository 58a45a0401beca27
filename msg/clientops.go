package msg

import (
	"bytes"
	"encoding/binary"
)

// What a client needs to talk to a Braid cluster besides the messages
// themselves: the initial primary rule and the instance-change operation
// (paper Section 4.2; docs/protocol.md §R6). They live here, not in the
// paradigm package, so a client depends on the wire schema only.

// PrimaryOf is the initial primary rule of the parallel paradigm: instance
// i's view v starts with replica (i+v) mod n, so the m initial primaries are
// distinct. Agreed primary changes (failures) override it; a client uses it
// only until a reply hints at the current primary.
func PrimaryOf(n int, instance uint32, view uint64) ReplicaID {
	return ReplicaID((uint64(instance) + view) % uint64(n))
}

// HomeInstance is the client assignment rule of the parallel paradigm
// (Section 4.2): client c is served by instance id(c) mod m, until an
// agreed instance change moves it.
func HomeInstance(c ClientID, m int) uint32 { return uint32(uint64(c) % uint64(m)) }

var instanceChangeTag = []byte("\x00braid/instance-change/v2")

// InstanceChangeOverhead is how many bytes InstanceChangeOp adds to the
// operation it carries: an operation of at most MaxOpSize −
// InstanceChangeOverhead bytes fits in an instance change.
const InstanceChangeOverhead = 25 + 4

// InstanceChangeOp is the operation of an instance-change request: the
// client asks instance target to serve it from now on, and carries op, the
// operation it is waiting for. A client sends it under the same request
// number as the request op went out with, so whichever of the two executes
// first is the one execution of op and the other is a duplicate. The
// change executes op whether or not the move is granted (Reply.Outcome
// says which).
//
// The encoding is the 25-byte tag "\x00braid/instance-change/v2", target
// as a big-endian uint32, then op.
func InstanceChangeOp(target uint32, op []byte) []byte {
	b := make([]byte, 0, InstanceChangeOverhead+len(op))
	b = append(b, instanceChangeTag...)
	b = binary.BigEndian.AppendUint32(b, target)
	return append(b, op...)
}

// ParseInstanceChange recognises an instance-change operation and returns
// the instance it asks for and the operation it carries (nil if empty;
// inner aliases op).
func ParseInstanceChange(op []byte) (target uint32, inner []byte, ok bool) {
	if len(op) < InstanceChangeOverhead || !bytes.HasPrefix(op, instanceChangeTag) {
		return 0, nil, false
	}
	target = binary.BigEndian.Uint32(op[len(instanceChangeTag):])
	if rest := op[InstanceChangeOverhead:]; len(rest) > 0 {
		inner = rest
	}
	return target, inner, true
}

// Outcome is what executing a request did besides producing its Result.
// It is part of what a client matches: a result is accepted once f+1
// replicas sent replies equal in Outcome, Instance and Result.
type Outcome uint8

const (
	// Executed: an ordinary request; its operation executed.
	Executed Outcome = iota
	// Moved: an instance change that was granted: the operation it carries
	// executed, and the client is served by Reply.Instance from now on
	// (or already was).
	Moved
	// NotMoved: an instance change that was refused (the target is at the
	// load cap, does not exist, or is not the instance that ordered the
	// change; or instance changes are disabled): the operation it carries
	// executed all the same, and the client stays where it was.
	NotMoved

	maxOutcome = NotMoved
)

func (o Outcome) String() string {
	switch o {
	case Executed:
		return "executed"
	case Moved:
		return "moved"
	case NotMoved:
		return "not-moved"
	}
	return "unknown"
}
