package auth

import (
	"crypto/ed25519"

	"github.com/hdevalence/ed25519consensus"
)

// MaxContextLen is the longest allowed domain-separation context; its
// length must fit the one-byte prefix.
const MaxContextLen = 255

// signedMessage returns the bytes actually signed: len(context) || context
// || msg. The length prefix makes the mapping from (context, msg) to bytes
// injective, so no choice of context and message collides with another.
// ok is false if context is empty or longer than MaxContextLen.
func signedMessage(context string, msg []byte) (m []byte, ok bool) {
	if len(context) == 0 || len(context) > MaxContextLen {
		return nil, false
	}
	m = make([]byte, 0, 1+len(context)+len(msg))
	m = append(m, byte(len(context)))
	m = append(m, context...)
	m = append(m, msg...)
	return m, true
}

// Sign signs msg under the domain-separation tag context (see the package
// documentation). It returns nil, rather than panicking, if priv is not a
// 64-byte key or context is empty or longer than MaxContextLen; a nil
// signature never verifies.
func Sign(priv PrivateKey, context string, msg []byte) []byte {
	if len(priv) != PrivateKeySize {
		return nil
	}
	m, ok := signedMessage(context, msg)
	if !ok {
		return nil
	}
	return ed25519.Sign(ed25519.PrivateKey(priv), m)
}

// Verify reports whether sig is a valid signature by pub of msg under
// context, according to ZIP-215 (see the package documentation). It is the
// one verification rule in Braid: VerifyBatch and Pool agree with it on
// every input. Malformed input of any length yields false, never a panic.
func Verify(pub PublicKey, context string, msg, sig []byte) bool {
	if len(pub) != PublicKeySize || len(sig) != SignatureSize {
		return false
	}
	m, ok := signedMessage(context, msg)
	if !ok {
		return false
	}
	return ed25519consensus.Verify(ed25519.PublicKey(pub), m, sig)
}
