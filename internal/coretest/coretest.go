// Package coretest holds what the consensus cores' unit tests share. The
// cores never verify signatures (the shell does), so a test signer only has
// to be deterministic and distinct per replica.
package coretest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"

	"github.com/braid-bft/braid/msg"
)

// Signer signs as replica ID with 8 bytes of SHA-256(ID || payload).
type Signer struct{ ID msg.ReplicaID }

// Sign implements the cores' Signer.
func (s Signer) Sign(p []byte) []byte {
	h := sha256.Sum256(append([]byte{byte(s.ID)}, p...))
	return h[:8]
}

// SignRequest signs r as its client, in a domain apart from the replicas'
// so that no replica signature is ever a client's.
func SignRequest(r *msg.Request) {
	r.Sig = clientSig(r.Client, r.SignedBytes())
}

func clientSig(c msg.ClientID, p []byte) []byte {
	b := binary.BigEndian.AppendUint64([]byte("client/"), uint64(c))
	h := sha256.Sum256(append(b, p...))
	return h[:8]
}

// Verifier checks the signatures Signer and SignRequest make. A harness
// runs msg.Verify with it where the shell would, so a forged message that
// the shell would drop never reaches a core in a test either.
type Verifier struct{}

// Replica implements msg.Verifier.
func (Verifier) Replica(id msg.ReplicaID, payload, sig []byte) bool {
	return id <= 255 && bytes.Equal(sig, Signer{ID: id}.Sign(payload))
}

// Client implements msg.Verifier.
func (Verifier) Client(id msg.ClientID, payload, sig []byte) bool {
	return bytes.Equal(sig, clientSig(id, payload))
}
