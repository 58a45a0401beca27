package msg

import (
	"errors"
	"fmt"
)

// Verifier checks signatures. It is the seam between the pure protocol core
// and real cryptography: the simulator plugs in a cheap keyed hash, replicas
// plug in ed25519. Implementations must be deterministic.
type Verifier interface {
	// Replica reports whether sig is replica id's signature over payload.
	Replica(id ReplicaID, payload, sig []byte) bool
	// Client reports whether sig is client id's signature over payload.
	Client(id ClientID, payload, sig []byte) bool
}

// Signer produces this node's signatures. Signing is deterministic (ed25519
// is), so a core holding a Signer stays a pure function of its inputs.
type Signer interface {
	Sign(payload []byte) []byte
}

// ErrBadSignature is wrapped by every verification failure.
var ErrBadSignature = errors.New("bad signature")

// Verify checks every signature m carries, including those of the messages
// nested inside its certificates and of the client requests in its batches.
// Commits and Status messages carry none: the link they arrive on
// authenticates them. Run it before handing m to a protocol core.
func Verify(m Message, v Verifier) error {
	switch m := m.(type) {
	case *ClientRequest:
		return verifyRequest(&m.Request, v)
	case *PrePrepare:
		return verifyPrePrepare(m, v)
	case *Prepare:
		return verifyOne(m, m.From, m.Sig, v)
	case *Checkpoint:
		return verifyOne(m, m.From, m.Sig, v)
	case *ViewChange:
		return verifyViewChange(m, v)
	case *NewView:
		if err := verifyOne(m, m.From, m.Sig, v); err != nil {
			return err
		}
		for i := range m.ViewChanges {
			if err := verifyViewChange(&m.ViewChanges[i], v); err != nil {
				return fmt.Errorf("new-view: view change %d: %w", i, err)
			}
		}
		for i := range m.PrePrepares {
			if err := verifyPrePrepare(&m.PrePrepares[i], v); err != nil {
				return fmt.Errorf("new-view: pre-prepare %d: %w", i, err)
			}
		}
	}
	return nil
}

func verifyOne(m Message, from ReplicaID, sig []byte, v Verifier) error {
	if !v.Replica(from, SignedBytes(m), sig) {
		return fmt.Errorf("%w: %v from replica %d", ErrBadSignature, m.Kind(), from)
	}
	return nil
}

func verifyRequest(r *Request, v Verifier) error {
	if !v.Client(r.Client, r.SignedBytes(), r.Sig) {
		return fmt.Errorf("%w: request %d of client %d", ErrBadSignature, r.Number, r.Client)
	}
	return nil
}

func verifyPrePrepare(m *PrePrepare, v Verifier) error {
	if err := verifyOne(m, m.From, m.Sig, v); err != nil {
		return err
	}
	for i := range m.Batch.Requests {
		if err := verifyRequest(&m.Batch.Requests[i], v); err != nil {
			return fmt.Errorf("pre-prepare seq %d: %w", m.Seq, err)
		}
	}
	return nil
}

func verifyViewChange(m *ViewChange, v Verifier) error {
	if err := verifyOne(m, m.From, m.Sig, v); err != nil {
		return err
	}
	for i := range m.CheckpointProof {
		c := &m.CheckpointProof[i]
		if err := verifyOne(c, c.From, c.Sig, v); err != nil {
			return fmt.Errorf("view change checkpoint proof: %w", err)
		}
	}
	for i := range m.Prepared {
		p := &m.Prepared[i]
		if err := verifyPrePrepare(&p.PrePrepare, v); err != nil {
			return fmt.Errorf("view change prepared proof: %w", err)
		}
		for j := range p.Prepares {
			q := &p.Prepares[j]
			if err := verifyOne(q, q.From, q.Sig, v); err != nil {
				return fmt.Errorf("view change prepared proof: %w", err)
			}
		}
	}
	return nil
}
