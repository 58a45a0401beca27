package ledger

import (
	"errors"
	"fmt"

	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/quorum"
)

// Source is random access to a ledger: a replica's store, or an export.
type Source interface {
	// Height is the height of the last block (0 for an empty ledger).
	Height() (uint64, error)
	// Block returns the block at height h, 1 ≤ h ≤ Height(). An error
	// (missing, unreadable, undecodable) is reported by Verify as a break at h.
	Block(h uint64) (*Block, error)
	// Certificate returns the certificate stored with block h, or nil, nil if
	// block h has none.
	Certificate(h uint64) (*Certificate, error)
}

// BreakError says where a ledger stops being valid: the first bad height and
// why. Err, when set, is the underlying read or decode error.
type BreakError struct {
	Height uint64
	Reason string
	Err    error
}

func (e *BreakError) Error() string {
	return fmt.Sprintf("ledger breaks at height %d: %s", e.Height, e.Reason)
}

func (e *BreakError) Unwrap() error { return e.Err }

// VerifyOptions are Verify's optional checks.
type VerifyOptions struct {
	// Reexecute, if set, is called for every block in height order and must
	// return the state and results digests that executing b's requests on
	// the state left by the previous blocks produces. Any difference from
	// the block's digests is a break.
	Reexecute func(b *Block) (stateDigest msg.Digest, resultsDigest msg.Digest, err error)
}

// Report summarises a valid ledger.
type Report struct {
	Height       uint64     // last block
	Head         msg.Digest // hash of the last block (zero if empty)
	Certificates int        // certificates checked
	// Certified is the highest height covered by a certificate. Blocks
	// above it are hash-chained but not yet signed by a quorum: anyone
	// holding the file could have rewritten them.
	Certified uint64
}

// Verify checks src from height 1 to its height: heights and rounds, Prev
// links, every request's client signature (v.Client), every certificate
// (≥ quorum distinct replicas < n, each signature valid under v.Replica, each
// checkpoint for the block's round with State = CheckpointDigest(block hash,
// block state digest)), and, if opts.Reexecute is set, every block's digests.
// A certificate must be entirely valid: one bad or duplicate signature
// breaks it even if a quorum of good ones remains, since an honest writer
// never stores one.
//
// The first failure is returned as a *BreakError. Other errors (bad n,
// unreadable height) are returned as plain errors.
func Verify(src Source, v msg.Verifier, n int, opts VerifyOptions) (Report, error) {
	var rep Report
	if n < 1 || n > msg.MaxQuorumMsgs {
		return rep, fmt.Errorf("ledger verify: replica count %d out of range [1, %d]", n, msg.MaxQuorumMsgs)
	}
	height, err := src.Height()
	if err != nil {
		return rep, fmt.Errorf("ledger verify: reading height: %w", err)
	}
	brk := func(h uint64, err error, format string, args ...any) (Report, error) {
		return rep, &BreakError{Height: h, Reason: fmt.Sprintf(format, args...), Err: err}
	}
	var prev msg.Digest
	for h := uint64(1); h <= height; h++ {
		b, err := src.Block(h)
		if err != nil {
			return brk(h, err, "reading block: %v", err)
		}
		if b == nil {
			return brk(h, nil, "block missing")
		}
		if b.Height != h {
			return brk(h, nil, "block claims height %d", b.Height)
		}
		if b.Round != h {
			return brk(h, nil, "block round %d, want %d (one block per round)", b.Round, h)
		}
		if b.Prev != prev {
			return brk(h, nil, "prev %x does not match hash %x of block %d", b.Prev[:8], prev[:8], h-1)
		}
		for i := range b.Requests {
			r := &b.Requests[i]
			if !v.Client(r.Client, r.SignedBytes(), r.Sig) {
				return brk(h, msg.ErrBadSignature, "request %d (client %d, number %d): bad client signature", i, r.Client, r.Number)
			}
		}
		if opts.Reexecute != nil {
			state, results, err := opts.Reexecute(b)
			if err != nil {
				return brk(h, err, "re-execution failed: %v", err)
			}
			if state != b.StateDigest {
				return brk(h, nil, "re-execution gives state digest %x, block says %x", state[:8], b.StateDigest[:8])
			}
			if results != b.ResultsDigest {
				return brk(h, nil, "re-execution gives results digest %x, block says %x", results[:8], b.ResultsDigest[:8])
			}
		}
		hash := b.Hash()
		c, err := src.Certificate(h)
		if err != nil {
			return brk(h, err, "reading certificate: %v", err)
		}
		if c != nil {
			if err := checkCertificate(c, b, hash, v, n); err != nil {
				return brk(h, err, "certificate: %v", err)
			}
			rep.Certificates++
			rep.Certified = h
		}
		prev = hash
		rep.Height, rep.Head = h, hash
	}
	return rep, nil
}

// errBadCertificate is wrapped by every certificate failure.
var errBadCertificate = errors.New("bad certificate")

func checkCertificate(c *Certificate, b *Block, hash msg.Digest, v msg.Verifier, n int) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", errBadCertificate, fmt.Sprintf(format, args...))
	}
	if c.Round != b.Round {
		return bad("round %d, block round %d", c.Round, b.Round)
	}
	if c.BlockHash != hash {
		return bad("block hash %x, block hashes to %x", c.BlockHash[:8], hash[:8])
	}
	if c.StateDigest != b.StateDigest {
		return bad("state digest %x, block says %x", c.StateDigest[:8], b.StateDigest[:8])
	}
	want := CheckpointDigest(hash, c.StateDigest)
	seen := make(map[msg.ReplicaID]bool, len(c.Signatures))
	for i := range c.Signatures {
		cp := &c.Signatures[i]
		switch {
		case int64(cp.From) >= int64(n):
			return bad("signature %d from replica %d, but n = %d", i, cp.From, n)
		case seen[cp.From]:
			return bad("signature %d: duplicate signer %d", i, cp.From)
		case cp.Seq != c.Round:
			return bad("signature %d (replica %d) is for round %d", i, cp.From, cp.Seq)
		case cp.State != want:
			return bad("signature %d (replica %d) signs checkpoint digest %x, want %x", i, cp.From, cp.State[:8], want[:8])
		case !v.Replica(cp.From, msg.SignedBytes(cp), cp.Sig):
			return bad("signature %d (replica %d) does not verify", i, cp.From)
		}
		seen[cp.From] = true
	}
	if q := quorum.Size(n); len(seen) < q {
		return bad("%d signatures, quorum is %d of n = %d", len(seen), q, n)
	}
	return nil
}
