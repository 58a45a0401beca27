// Package ledger defines Braid's tamper-evident ledger: hash-chained blocks,
// one per executed round, and the stable checkpoint certificates stored with
// the blocks they cover. Verify checks a ledger offline with nothing but the
// replicas' and clients' public keys (through a msg.Verifier) and names the
// first height where it breaks.
//
// Height and round. For now every executed round produces exactly one block
// and Height == Round, starting at 1; the genesis "block 0" does not exist and
// block 1's Prev is the zero digest. The two fields are kept apart so that a
// later change (several blocks per round, or rounds that produce no block) only
// relaxes one check in Verify.
//
// What a checkpoint signs. A replica's msg.Checkpoint for round ρ carries
// State = CheckpointDigest(hash of block ρ, application state digest after ρ),
// so one signature binds both the ledger head and the application state. A
// Certificate is 2f+1 (⌊(n+f)/2⌋+1 in general) such matching checkpoints.
package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/braid-bft/braid/internal/wire"

	"github.com/braid-bft/braid/msg"
)

// Decoding limits. A block holds the requests of at most one batch per
// instance, and there are at most msg.MaxQuorumMsgs replicas (so instances).
const (
	MaxBlockRequests = msg.MaxBatchSize * msg.MaxQuorumMsgs
	// MaxBlockBytes bounds one encoded block (eight maximal messages' worth).
	// The replica layer must keep m × (bytes per batch) below it.
	MaxBlockBytes = 8 * msg.MaxMessageBytes
	// MaxCertificateBytes bounds one encoded certificate.
	MaxCertificateBytes = 64 + msg.MaxQuorumMsgs*(4+maxCheckpointBytes)

	maxCheckpointBytes = 1 + 4 + 8 + 32 + 4 + 4 + msg.MaxSigSize
	minRequestBytes    = 8 + 8 + 4 + 4 + 4 + 1
)

// ErrMalformed wraps every decoding failure.
var ErrMalformed = errors.New("ledger: malformed")

// Block is the record of one executed round.
type Block struct {
	Height uint64     // position in the chain, from 1; equals Round for now
	Prev   msg.Digest // Hash of block Height-1; zero for block 1
	Round  uint64     // the round whose decided batches this block executes
	// Requests in execution order, each with its client's signature, so a
	// verifier needs no one's word that a client asked for it.
	Requests []msg.Request
	// Orderings, parallel to Requests, say which instance ordered each
	// request and what executing it did: the parts of a client's reply that
	// re-executing the operation cannot reproduce, so a replica restoring or
	// transferring state rebuilds its reply cache from the block alone. Nil
	// means every request was an ordinary one ordered by instance 0.
	Orderings     []Ordering
	ResultsDigest msg.Digest // ResultsDigest of the results, in request order
	StateDigest   msg.Digest // application state digest after the round
}

// Ordering is how one request of a block was ordered and what it did.
type Ordering struct {
	Instance uint32
	Outcome  msg.Outcome
}

// ordering returns request i's ordering (the zero value when Orderings is nil).
func (b *Block) ordering(i int) Ordering {
	if i < len(b.Orderings) {
		return b.Orderings[i]
	}
	return Ordering{}
}

// Ordering returns request i's ordering.
func (b *Block) Ordering(i int) Ordering { return b.ordering(i) }

const (
	blockTag      = "braid/block/v2"
	checkpointTag = "braid/ledger-checkpoint/v1"
	resultsTag    = "braid/results/v1"
)

// Hash is SHA-256 over a domain tag and the block's canonical encoding, so
// it binds every field, client signatures included.
func (b *Block) Hash() msg.Digest {
	h := sha256.New()
	h.Write([]byte(blockTag))
	h.Write(b.Encode())
	var d msg.Digest
	h.Sum(d[:0])
	return d
}

// Encode returns the canonical encoding: big-endian integers, every
// variable-length field prefixed by its length.
//
//	height u64 | prev [32] | round u64 | count u32 |
//	count × (client u64 | number u64 | len u32 | op | len u32 | sig |
//	         instance u32 | outcome u8) |
//	results [32] | state [32]
func (b *Block) Encode() []byte {
	n := 8 + 32 + 8 + 4 + 64
	for i := range b.Requests {
		n += minRequestBytes + len(b.Requests[i].Op) + len(b.Requests[i].Sig)
	}
	e := make([]byte, 0, n)
	e = wire.AppendU64(e, b.Height)
	e = append(e, b.Prev[:]...)
	e = wire.AppendU64(e, b.Round)
	e = wire.AppendU32(e, uint32(len(b.Requests)))
	for i := range b.Requests {
		r := &b.Requests[i]
		e = wire.AppendU64(e, uint64(r.Client))
		e = wire.AppendU64(e, r.Number)
		e = wire.AppendU32(e, uint32(len(r.Op)))
		e = append(e, r.Op...)
		e = wire.AppendU32(e, uint32(len(r.Sig)))
		e = append(e, r.Sig...)
		o := b.ordering(i)
		e = wire.AppendU32(e, o.Instance)
		e = append(e, byte(o.Outcome))
	}
	e = append(e, b.ResultsDigest[:]...)
	return append(e, b.StateDigest[:]...)
}

// DecodeBlock decodes a block, bounding every length before allocating and
// rejecting trailing bytes. It never panics.
func DecodeBlock(p []byte) (*Block, error) {
	if len(p) > MaxBlockBytes {
		return nil, fmt.Errorf("%w block: %d bytes exceeds limit %d", ErrMalformed, len(p), MaxBlockBytes)
	}
	d := wire.NewReader(p).Kind(ErrMalformed, "block")
	b := &Block{Height: d.U64(), Prev: d.Digest(), Round: d.U64()}
	n := d.Count(MaxBlockRequests, minRequestBytes, "requests")
	if n > 0 {
		b.Requests = make([]msg.Request, 0, n)
	}
	for i := 0; i < n && d.Err() == nil; i++ {
		r := msg.Request{Client: msg.ClientID(d.U64()), Number: d.U64()}
		r.Op = d.Bytes(msg.MaxOpSize, "op")
		r.Sig = d.Bytes(msg.MaxSigSize, "request signature")
		b.Requests = append(b.Requests, r)
		o := Ordering{Instance: d.U32()}
		if out := msg.Outcome(d.U8()); out > msg.NotMoved {
			d.Fail("outcome %d", out)
		} else {
			o.Outcome = out
		}
		if o != (Ordering{}) && b.Orderings == nil {
			b.Orderings = make([]Ordering, i, n)
		}
		if b.Orderings != nil {
			b.Orderings = append(b.Orderings, o)
		}
	}
	b.ResultsDigest = d.Digest()
	b.StateDigest = d.Digest()
	if err := d.Done(); err != nil {
		return nil, err
	}
	return b, nil
}

// Certificate is a stable checkpoint for Round, stored with the block it
// covers: a quorum of replica checkpoints whose State is
// CheckpointDigest(BlockHash, StateDigest).
type Certificate struct {
	Round       uint64
	BlockHash   msg.Digest
	StateDigest msg.Digest
	Signatures  []msg.Checkpoint
}

// CheckpointDigest is what replicas put in msg.Checkpoint.State for a round:
// SHA-256(tag || blockHash || stateDigest). The round itself is bound twice,
// by the checkpoint's Seq and by the block (whose hash covers its height).
func CheckpointDigest(blockHash, stateDigest msg.Digest) msg.Digest {
	h := sha256.New()
	h.Write([]byte(checkpointTag))
	h.Write(blockHash[:])
	h.Write(stateDigest[:])
	var d msg.Digest
	h.Sum(d[:0])
	return d
}

// ResultsDigest is the digest a block carries of its round's results, in
// execution order: SHA-256(tag || count || each result length-prefixed).
func ResultsDigest(results [][]byte) msg.Digest {
	h := sha256.New()
	h.Write([]byte(resultsTag))
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(results)))
	h.Write(n[:])
	for _, r := range results {
		binary.BigEndian.PutUint64(n[:], uint64(len(r)))
		h.Write(n[:])
		h.Write(r)
	}
	var d msg.Digest
	h.Sum(d[:0])
	return d
}

// Encode returns the canonical encoding:
//
//	round u64 | block hash [32] | state [32] | count u32 |
//	count × (len u32 | msg.Marshal(checkpoint))
func (c *Certificate) Encode() []byte {
	e := make([]byte, 0, 8+64+4+len(c.Signatures)*(4+120))
	e = wire.AppendU64(e, c.Round)
	e = append(e, c.BlockHash[:]...)
	e = append(e, c.StateDigest[:]...)
	e = wire.AppendU32(e, uint32(len(c.Signatures)))
	for i := range c.Signatures {
		m := msg.Marshal(&c.Signatures[i])
		e = wire.AppendU32(e, uint32(len(m)))
		e = append(e, m...)
	}
	return e
}

// DecodeCertificate decodes a certificate with the same discipline as
// DecodeBlock.
func DecodeCertificate(p []byte) (*Certificate, error) {
	if len(p) > MaxCertificateBytes {
		return nil, fmt.Errorf("%w certificate: %d bytes exceeds limit %d", ErrMalformed, len(p), MaxCertificateBytes)
	}
	d := wire.NewReader(p).Kind(ErrMalformed, "certificate")
	c := &Certificate{Round: d.U64(), BlockHash: d.Digest(), StateDigest: d.Digest()}
	n := d.Count(msg.MaxQuorumMsgs, 4+1, "signatures")
	for i := 0; i < n && d.Err() == nil; i++ {
		raw := d.Bytes(maxCheckpointBytes, "checkpoint")
		if d.Err() != nil {
			break
		}
		m, err := msg.Unmarshal(raw)
		if err != nil {
			d.Fail("signature %d: %v", i, err)
			break
		}
		cp, ok := m.(*msg.Checkpoint)
		if !ok {
			d.Fail("signature %d: %v message, want checkpoint", i, m.Kind())
			break
		}
		c.Signatures = append(c.Signatures, *cp)
	}
	if err := d.Done(); err != nil {
		return nil, err
	}
	return c, nil
}
