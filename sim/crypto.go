package sim

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"

	"github.com/braid-bft/braid/msg"
)

// The simulator replaces ed25519 with a keyed hash: as unforgeable within
// the simulation (a Byzantine wrapper only ever holds its own replica's
// key) and a hundred times cheaper, so thousands of seeds run in CI.

// simKeys derives every key of a run from its seed. A world runs on one
// goroutine, so the derived keys and their keyed hashes are cached without
// locks (deriving and keying them was a tenth of the simulator's CPU).
type simKeys struct {
	seed  uint64
	cache *keyCache
}

type keyCache struct {
	secrets map[[9]byte][]byte
	macs    map[string]hash.Hash
}

func newSimKeys(seed uint64) simKeys {
	return simKeys{seed: seed, cache: &keyCache{secrets: map[[9]byte][]byte{}, macs: map[string]hash.Hash{}}}
}

func (k simKeys) secret(kind byte, id uint64) []byte {
	var key [9]byte
	key[0] = kind
	binary.BigEndian.PutUint64(key[1:], id)
	if s, ok := k.cache.secrets[key]; ok {
		return s
	}
	var b [17]byte
	copy(b[:9], key[:])
	binary.BigEndian.PutUint64(b[9:], k.seed)
	s := sha256.Sum256(b[:])
	k.cache.secrets[key] = s[:]
	return s[:]
}

func (k simKeys) mac(secret, payload []byte) []byte {
	h, ok := k.cache.macs[string(secret)]
	if !ok {
		h = hmac.New(sha256.New, secret)
		k.cache.macs[string(secret)] = h
	}
	h.Reset()
	h.Write(payload)
	return h.Sum(nil)[:16]
}

type replicaSigner struct {
	keys   simKeys
	secret []byte
}

func (s replicaSigner) Sign(p []byte) []byte { return s.keys.mac(s.secret, p) }

func (k simKeys) replicaSigner(id msg.ReplicaID) replicaSigner {
	return replicaSigner{k, k.secret('r', uint64(id))}
}

func (k simKeys) signRequest(r *msg.Request) {
	r.Sig = k.mac(k.secret('c', uint64(r.Client)), r.SignedBytes())
}

// Replica and Client make simKeys a msg.Verifier.
func (k simKeys) Replica(id msg.ReplicaID, payload, sig []byte) bool {
	return hmac.Equal(k.mac(k.secret('r', uint64(id)), payload), sig)
}

func (k simKeys) Client(id msg.ClientID, payload, sig []byte) bool {
	return hmac.Equal(k.mac(k.secret('c', uint64(id)), payload), sig)
}
