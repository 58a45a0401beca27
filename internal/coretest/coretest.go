// Package coretest holds what the consensus cores' unit tests share. The
// cores never verify signatures (the shell does), so a test signer only has
// to be deterministic and distinct per replica.
package coretest

import (
	"crypto/sha256"

	"github.com/braid-bft/braid/msg"
)

// Signer signs as replica ID with 8 bytes of SHA-256(ID || payload).
type Signer struct{ ID msg.ReplicaID }

// Sign implements the cores' Signer.
func (s Signer) Sign(p []byte) []byte {
	h := sha256.Sum256(append([]byte{byte(s.ID)}, p...))
	return h[:8]
}
