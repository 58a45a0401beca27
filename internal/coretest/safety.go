package coretest

import (
	"crypto/sha256"
	"fmt"

	"github.com/braid-bft/braid/msg"
)

// Safety checks, as a run goes, what correct replicas decide and sign.
// Positions are a pbft sequence number or an rcc round; the digest of a
// position is whatever the harness binds the decision by. It checks
//
//   - agreement: no two correct replicas decide different digests at a position;
//   - order: each correct replica decides each position once, in order
//     (Transferred skips it ahead, as a state transfer does), so it never
//     contradicts its own earlier decision;
//   - validity: every request decided was submitted by its client, as signed;
//   - non-equivocation: a correct replica never signs two different messages
//     for the same slot (the key names it: pbft.SignedKey).
//
// It knows nothing of the cores, so the pbft and rcc harnesses share it;
// the simulator's checker (sim/checker.go) does the same over whole
// replicas and needs its world.
type Safety struct {
	agreed    map[uint64]decided
	last      map[msg.ReplicaID]uint64
	submitted map[requestSig]bool // (key, digest of what the client signed)
	signed    map[string]msg.Digest
}

type decided struct {
	by     msg.ReplicaID
	digest msg.Digest
}

// NewSafety returns a checker that has seen nothing.
func NewSafety() *Safety {
	return &Safety{agreed: map[uint64]decided{}, last: map[msg.ReplicaID]uint64{},
		submitted: map[requestSig]bool{}, signed: map[string]msg.Digest{}}
}

// requestSig names one request a client signed: a client may sign two
// under one number (an instance change carrying a request it sent before).
type requestSig struct {
	key    msg.RequestKey
	digest msg.Digest
}

// Submit records a request its client signed and sent.
func (s *Safety) Submit(r msg.Request) {
	s.submitted[requestSig{r.Key(), requestDigest(&r)}] = true
}

func requestDigest(r *msg.Request) msg.Digest {
	return sha256.Sum256(append(r.SignedBytes(), r.Sig...))
}

// Decide checks correct replica id's decision of digest at pos, covering
// reqs.
func (s *Safety) Decide(id msg.ReplicaID, pos uint64, digest msg.Digest, reqs []msg.Request) error {
	if last := s.last[id]; pos != last+1 {
		return fmt.Errorf("order: replica %d decided position %d after %d", id, pos, last)
	}
	s.last[id] = pos
	if d, ok := s.agreed[pos]; ok && d.digest != digest {
		return fmt.Errorf("agreement: replica %d decided %x at position %d, replica %d decided %x", id, digest[:4], pos, d.by, d.digest[:4])
	} else if !ok {
		s.agreed[pos] = decided{id, digest}
	}
	for i := range reqs {
		r := &reqs[i]
		if !s.submitted[requestSig{r.Key(), requestDigest(r)}] {
			return fmt.Errorf("validity: replica %d decided request %v at position %d, which its client never sent", id, r.Key(), pos)
		}
	}
	return nil
}

// Transferred records that correct replica id installed the state at pos
// by state transfer: its next decision is pos+1.
func (s *Safety) Transferred(id msg.ReplicaID, pos uint64) error {
	if last := s.last[id]; pos <= last {
		return fmt.Errorf("order: replica %d transferred to position %d, having decided %d", id, pos, last)
	}
	s.last[id] = pos
	return nil
}

// Last is the last position correct replica id decided or transferred to.
func (s *Safety) Last(id msg.ReplicaID) uint64 { return s.last[id] }

// Signed checks that correct replica id, signing signedBytes for slot key,
// signed nothing else there before.
func (s *Safety) Signed(id msg.ReplicaID, key string, signedBytes []byte) error {
	d := msg.Digest(sha256.Sum256(signedBytes))
	if have, ok := s.signed[key]; ok && have != d {
		return fmt.Errorf("equivocation: replica %d signed two different messages for %s", id, key)
	}
	s.signed[key] = d
	return nil
}
