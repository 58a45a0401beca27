package sim

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"

	"github.com/braid-bft/braid/msg"
)

// The simulator replaces ed25519 with a keyed hash: as unforgeable within
// the simulation (a Byzantine wrapper only ever holds its own replica's
// key) and a hundred times cheaper, so thousands of seeds run in CI.

type simKeys struct{ seed uint64 }

func (k simKeys) secret(kind byte, id uint64) []byte {
	var b [17]byte
	b[0] = kind
	binary.BigEndian.PutUint64(b[1:], id)
	binary.BigEndian.PutUint64(b[9:], k.seed)
	s := sha256.Sum256(b[:])
	return s[:]
}

func mac(secret, payload []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write(payload)
	return h.Sum(nil)[:16]
}

type replicaSigner struct{ secret []byte }

func (s replicaSigner) Sign(p []byte) []byte { return mac(s.secret, p) }

func (k simKeys) replicaSigner(id msg.ReplicaID) replicaSigner {
	return replicaSigner{k.secret('r', uint64(id))}
}

func (k simKeys) signRequest(r *msg.Request) {
	r.Sig = mac(k.secret('c', uint64(r.Client)), r.SignedBytes())
}

// Replica and Client make simKeys a msg.Verifier.
func (k simKeys) Replica(id msg.ReplicaID, payload, sig []byte) bool {
	return hmac.Equal(mac(k.secret('r', uint64(id)), payload), sig)
}

func (k simKeys) Client(id msg.ClientID, payload, sig []byte) bool {
	return hmac.Equal(mac(k.secret('c', uint64(id)), payload), sig)
}
