package auth

import (
	"crypto/hmac"
	"crypto/sha256"
)

// MACSize is the length of a MAC tag in bytes.
const MACSize = sha256.Size

// MAC returns HMAC-SHA256(key, msg). It authenticates point-to-point
// messages between two replicas that share key, which is much cheaper than
// a signature but, unlike a signature, cannot be shown to a third party.
// Keys should be 32 uniformly random bytes; any length is accepted.
func MAC(key, msg []byte) [MACSize]byte {
	h := hmac.New(sha256.New, key)
	h.Write(msg)
	var tag [MACSize]byte
	h.Sum(tag[:0])
	return tag
}

// CheckMAC reports whether tag is MAC(key, msg). The comparison is
// constant-time so that a forger cannot learn the correct tag byte by byte
// from response timing. A tag of the wrong length is rejected.
func CheckMAC(key, msg, tag []byte) bool {
	want := MAC(key, msg)
	return hmac.Equal(want[:], tag)
}
