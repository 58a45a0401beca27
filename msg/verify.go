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

// Signature is one signature a message carries: a replica's over a
// protocol message, or a client's over its request.
type Signature struct {
	Client   bool      // a client request's signature; else a replica's
	Replica  ReplicaID // the signer, when !Client
	ClientID ClientID  // the signer, when Client
	Kind     Kind      // what was signed (KindRequest for a client request)
	Payload  []byte    // the signed bytes
	Sig      []byte
}

// Check verifies the signature with v.
func (g *Signature) Check(v Verifier) bool {
	if g.Client {
		return v.Client(g.ClientID, g.Payload, g.Sig)
	}
	return v.Replica(g.Replica, g.Payload, g.Sig)
}

// Err is the error for a signature that did not verify.
func (g *Signature) Err() error {
	if g.Client {
		return fmt.Errorf("%w: request of client %d", ErrBadSignature, g.ClientID)
	}
	return fmt.Errorf("%w: %v from replica %d", ErrBadSignature, g.Kind, g.Replica)
}

// Signatures lists every signature m carries, including those of the
// messages nested inside its certificates and of the client requests in
// its batches, outermost first. Commits and Status messages carry none: the
// link they arrive on authenticates them. The caller verifies them however
// it likes — one by one, in a batch, or skipping ones it verified before.
func Signatures(m Message) []Signature {
	return appendSignatures(nil, m)
}

func appendSignatures(out []Signature, m Message) []Signature {
	switch m := m.(type) {
	case *ClientRequest:
		return appendRequest(out, &m.Request)
	case *PrePrepare:
		return appendPrePrepare(out, m)
	case *Prepare:
		return appendOne(out, m, m.From, m.Sig)
	case *Checkpoint:
		return appendOne(out, m, m.From, m.Sig)
	case *ViewChange:
		return appendViewChange(out, m)
	case *NewView:
		out = appendOne(out, m, m.From, m.Sig)
		for i := range m.ViewChanges {
			out = appendViewChange(out, &m.ViewChanges[i])
		}
		for i := range m.PrePrepares {
			out = appendPrePrepare(out, &m.PrePrepares[i])
		}
	}
	return out
}

func appendOne(out []Signature, m Message, from ReplicaID, sig []byte) []Signature {
	return append(out, Signature{Replica: from, Kind: m.Kind(), Payload: SignedBytes(m), Sig: sig})
}

func appendRequest(out []Signature, r *Request) []Signature {
	return append(out, Signature{Client: true, ClientID: r.Client, Kind: KindRequest, Payload: r.SignedBytes(), Sig: r.Sig})
}

func appendPrePrepare(out []Signature, m *PrePrepare) []Signature {
	out = appendOne(out, m, m.From, m.Sig)
	for i := range m.Batch.Requests {
		out = appendRequest(out, &m.Batch.Requests[i])
	}
	return out
}

func appendViewChange(out []Signature, m *ViewChange) []Signature {
	out = appendOne(out, m, m.From, m.Sig)
	for i := range m.CheckpointProof {
		c := &m.CheckpointProof[i]
		out = appendOne(out, c, c.From, c.Sig)
	}
	for i := range m.Prepared {
		p := &m.Prepared[i]
		out = appendPrePrepare(out, &p.PrePrepare)
		for j := range p.Prepares {
			q := &p.Prepares[j]
			out = appendOne(out, q, q.From, q.Sig)
		}
	}
	return out
}

// Verify checks every signature m carries (see Signatures), one by one.
// Run it, or an equivalent check of Signatures(m), before handing m to a
// protocol core.
func Verify(m Message, v Verifier) error {
	for _, g := range Signatures(m) {
		if !g.Check(v) {
			return g.Err()
		}
	}
	return nil
}
