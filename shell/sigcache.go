package shell

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"

	"github.com/braid-bft/braid/msg"
)

// sigCache remembers signatures that verified, so a signature is paid for
// once however many messages carry it. Every view change re-carries the
// pre-prepares (with their client requests) and prepares a replica already
// verified one by one in the normal case, and a stuck instance re-sends its
// view change for every higher view: under load that is thousands of
// signatures per message, and the ten-minute benchmark halted with every
// core verifying the same nested signatures over and over while the view
// changes they belonged to timed out.
//
// An entry is the digest of (signer, payload, signature), so a hit means
// this exact signature over these exact bytes by this signer verified
// before. It is bounded: two generations of at most limit entries each.
// Workers share it, hence the lock.
type sigCache struct {
	mu            sync.Mutex
	limit         int
	recent, older map[[32]byte]struct{}
}

// verifiedSignatures bounds the signature cache per generation: about the
// signatures of a full watermark window of every instance, several times.
const verifiedSignatures = 1 << 17

func newSigCache(limit int) *sigCache {
	return &sigCache{limit: limit, recent: map[[32]byte]struct{}{}, older: map[[32]byte]struct{}{}}
}

func sigKey(g *msg.Signature) [32]byte {
	var head [10]byte
	if g.Client {
		head[0] = 'c'
		binary.BigEndian.PutUint64(head[1:9], uint64(g.ClientID))
	} else {
		head[0] = 'r'
		binary.BigEndian.PutUint64(head[1:9], uint64(g.Replica))
	}
	head[9] = byte(len(g.Sig))
	h := sha256.New()
	h.Write(head[:])
	h.Write(g.Sig)
	h.Write(g.Payload)
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// fresh returns the signatures among sigs not verified before, and their
// keys.
func (c *sigCache) fresh(sigs []msg.Signature) ([]msg.Signature, [][32]byte) {
	keys := make([][32]byte, len(sigs))
	for i := range sigs {
		keys[i] = sigKey(&sigs[i])
	}
	var out []msg.Signature
	var outKeys [][32]byte
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, k := range keys {
		_, recent := c.recent[k]
		_, older := c.older[k]
		if !recent && !older {
			out, outKeys = append(out, sigs[i]), append(outKeys, k)
		}
	}
	return out, outKeys
}

func (c *sigCache) add(keys [][32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		if len(c.recent) >= c.limit {
			c.older, c.recent = c.recent, make(map[[32]byte]struct{}, c.limit)
		}
		c.recent[k] = struct{}{}
	}
}

// remember adds the signatures among items that verified (valid[i]).
func (c *sigCache) remember(items []msg.Signature, valid []bool) {
	var good [][32]byte
	for i := range items {
		if valid[i] {
			good = append(good, sigKey(&items[i]))
		}
	}
	c.add(good)
}
