// Package ledgertest builds valid ledgers for tests and simulations: a fake
// (keyed-hash) verifier, deterministic chains of signed blocks with
// certificates, and the matching re-execution function.
package ledgertest

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/braid-bft/braid/ledger"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/quorum"
)

// Verifier accepts exactly the signatures SignReplica and SignClient make.
// It is a keyed hash, not cryptography: anyone can forge it.
type Verifier struct{}

func fakeSig(kind byte, id uint64, payload []byte) []byte {
	h := sha256.New()
	h.Write([]byte{'f', 'a', 'k', 'e', kind})
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], id)
	h.Write(b[:])
	h.Write(payload)
	return h.Sum(nil)
}

// SignReplica returns replica id's fake signature over payload.
func SignReplica(id msg.ReplicaID, payload []byte) []byte { return fakeSig('r', uint64(id), payload) }

// SignClient returns client id's fake signature over payload.
func SignClient(id msg.ClientID, payload []byte) []byte { return fakeSig('c', uint64(id), payload) }

func (Verifier) Replica(id msg.ReplicaID, payload, sig []byte) bool {
	return string(SignReplica(id, payload)) == string(sig)
}

func (Verifier) Client(id msg.ClientID, payload, sig []byte) bool {
	return string(SignClient(id, payload)) == string(sig)
}

// Chain is an in-memory ledger; it implements ledger.Source.
type Chain struct {
	Blocks []*ledger.Block // Blocks[h-1]
	Certs  map[uint64]*ledger.Certificate
}

func (c *Chain) Height() (uint64, error) { return uint64(len(c.Blocks)), nil }

func (c *Chain) Block(h uint64) (*ledger.Block, error) {
	if h == 0 || h > uint64(len(c.Blocks)) {
		return nil, fmt.Errorf("ledgertest: no block %d", h)
	}
	return c.Blocks[h-1], nil
}

func (c *Chain) Certificate(h uint64) (*ledger.Certificate, error) { return c.Certs[h], nil }

// Op returns the operation NewChain puts in request i of block h: unique
// bytes, so tests can find a block inside a file.
func Op(h uint64, i int) []byte { return fmt.Appendf(nil, "op-h%06d-i%03d-payload", h, i) }

// Request returns a client-signed request.
func Request(client msg.ClientID, number uint64, op []byte) msg.Request {
	r := msg.Request{Client: client, Number: number, Op: op}
	r.Sig = SignClient(client, r.SignedBytes())
	return r
}

// Machine is the toy state machine NewChain's digests come from: the result
// of an op is its SHA-256, the state digest after a block is
// SHA-256(previous state || results digest).
type Machine struct{ State msg.Digest }

// Execute runs b and returns its state and results digests.
func (m *Machine) Execute(b *ledger.Block) (state, results msg.Digest, err error) {
	rs := make([][]byte, len(b.Requests))
	for i := range b.Requests {
		sum := sha256.Sum256(b.Requests[i].Op)
		rs[i] = sum[:]
	}
	results = ledger.ResultsDigest(rs)
	m.State = sha256.Sum256(append(m.State[:], results[:]...))
	return m.State, results, nil
}

// NewChain builds a valid chain of height blocks (block h holds h%4 requests)
// with a certificate signed by a quorum of n replicas on every certEvery-th
// block (none if certEvery is 0).
func NewChain(height uint64, n, certEvery int) *Chain {
	c := &Chain{Certs: make(map[uint64]*ledger.Certificate)}
	var m Machine
	var prev msg.Digest
	for h := uint64(1); h <= height; h++ {
		b := &ledger.Block{Height: h, Prev: prev, Round: h}
		for i := 0; i < int(h%4); i++ {
			b.Requests = append(b.Requests, Request(msg.ClientID(i+1), h, Op(h, i)))
		}
		b.StateDigest, b.ResultsDigest, _ = m.Execute(b)
		c.Blocks = append(c.Blocks, b)
		if certEvery > 0 && h%uint64(certEvery) == 0 {
			c.Certs[h] = Certify(b, Signers(quorum.Size(n)))
		}
		prev = b.Hash()
	}
	return c
}

// Signers returns replica ids 0..k-1.
func Signers(k int) []msg.ReplicaID {
	ids := make([]msg.ReplicaID, k)
	for i := range ids {
		ids[i] = msg.ReplicaID(i)
	}
	return ids
}

// Certify returns b's certificate signed by signers.
func Certify(b *ledger.Block, signers []msg.ReplicaID) *ledger.Certificate {
	hash := b.Hash()
	c := &ledger.Certificate{Round: b.Round, BlockHash: hash, StateDigest: b.StateDigest}
	for _, id := range signers {
		c.Signatures = append(c.Signatures, Checkpoint(id, b.Round, ledger.CheckpointDigest(hash, b.StateDigest)))
	}
	return c
}

// Checkpoint returns replica id's signed checkpoint.
func Checkpoint(id msg.ReplicaID, round uint64, state msg.Digest) msg.Checkpoint {
	cp := msg.Checkpoint{Seq: round, State: state, From: id}
	cp.Sig = SignReplica(id, msg.SignedBytes(&cp))
	return cp
}

// Prefix returns the chain's first h blocks and their certificates.
func (c *Chain) Prefix(h uint64) *Chain {
	p := &Chain{Blocks: c.Blocks[:h], Certs: make(map[uint64]*ledger.Certificate)}
	for k, v := range c.Certs {
		if k <= h {
			p.Certs[k] = v
		}
	}
	return p
}
