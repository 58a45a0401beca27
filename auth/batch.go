package auth

import (
	"crypto/ed25519"

	"filippo.io/edwards25519"
	"github.com/hdevalence/ed25519consensus"
)

// BatchItem is one signature to verify in a batch: Sig should be
// Sign(priv, Context, Msg) for the private key of Key.
type BatchItem struct {
	Key     PublicKey
	Context string
	Msg     []byte
	Sig     []byte
}

// Stats counts verification work. The counters let callers see, and bill,
// the extra cost that invalid signatures cause: a batch that fails falls
// back to locating the bad items, which costs more than the batch itself.
type Stats struct {
	// Batches is the number of batches verified (VerifyBatch calls, or
	// chunks processed by a Pool).
	Batches uint64
	// Signatures is the number of items submitted in those batches.
	Signatures uint64
	// Fallbacks is the number of batches whose combined check failed, so
	// that the invalid items had to be located individually.
	Fallbacks uint64
	// Invalid is the number of items found invalid.
	Invalid uint64
	// BatchChecks is the number of batch equations evaluated, including
	// those of the initial checks and of bisection during fallback.
	BatchChecks uint64
	// SingleChecks is the number of single signature verifications done
	// during fallback (and for batches of one).
	SingleChecks uint64
}

// leafSize is the size at or below which a set known to contain an invalid
// signature is resolved by single verification instead of further
// bisection: for small sets, batch checks cost about as much per signature
// as single ones, so splitting further only adds work.
const leafSize = 4

// VerifyBatch verifies items and reports, for each, whether it is valid.
// The result is exactly what Verify returns for each item: validity is
// decided by ZIP-215 in both cases (see the package documentation).
//
// It first checks all well-formed items with one batch equation, which is
// cheaper per signature than single verification (about 0.5x at 16
// signatures, 0.35x at 256). If that fails, it locates the invalid items:
// by bisection while they are rare, by single verification once they are
// not (see resolve). A batch with invalid signatures therefore costs more
// than a clean one — up to about two more batch passes plus one single
// verification per item, several times the clean cost — so callers should
// charge the senders of the invalid items (see InvalidBySigner and Stats).
//
// Malformed items (wrong key or signature length, invalid context,
// non-canonical s) are rejected up front without touching the batch.
// VerifyBatch never panics and returns a non-nil slice of len(items).
func VerifyBatch(items []BatchItem) []bool {
	valid, _ := VerifyBatchStats(items)
	return valid
}

// VerifyBatchStats is VerifyBatch that also reports the work done, so that
// callers without a Pool can still account for fallbacks.
func VerifyBatchStats(items []BatchItem) ([]bool, Stats) {
	out := make([]bool, len(items))
	st := verifyInto(items, out)
	return out, st
}

// InvalidBySigner counts, per signer, the items that valid marks invalid,
// keyed by MarshalPublicKey of the item's key. valid must be the result of
// VerifyBatch (or Pool.Verify) for items. It exists so that a replica can
// charge each client for the extra verification work its bad signatures
// caused. Items beyond len(valid) are ignored.
func InvalidBySigner(items []BatchItem, valid []bool) map[string]int {
	counts := make(map[string]int)
	for i := range items {
		if i < len(valid) && !valid[i] {
			counts[MarshalPublicKey(items[i].Key)]++
		}
	}
	return counts
}

// batchVerifier holds the state of one VerifyBatch run.
type batchVerifier struct {
	items []BatchItem
	msgs  [][]byte // signed messages (context-prefixed), per item
	out   []bool
	st    Stats
	// budget is how many more items the fallback may put through batch
	// checks before it switches to single verification, bounding the cost
	// of a batch full of invalid signatures.
	budget int
}

// verifyInto verifies items, writing results into out (len(out) ==
// len(items)), and returns the work done.
func verifyInto(items []BatchItem, out []bool) Stats {
	v := &batchVerifier{items: items, msgs: make([][]byte, len(items)), out: out}
	v.st.Batches = 1
	v.st.Signatures = uint64(len(items))
	idx := make([]int, 0, len(items))
	for i := range items {
		out[i] = false
		if m, ok := wellFormed(&items[i]); ok {
			v.msgs[i] = m
			idx = append(idx, i)
		}
	}
	switch {
	case len(idx) == 0:
	case len(idx) == 1:
		v.single(idx)
	case v.check(idx):
		v.markValid(idx)
	default:
		v.st.Fallbacks++
		v.budget = 2 * len(idx)
		v.resolve(idx)
	}
	for _, ok := range out {
		if !ok {
			v.st.Invalid++
		}
	}
	return v.st
}

// wellFormed returns the signed message for it and true if it passes the
// cheap structural checks that Verify also applies (so rejecting here
// never disagrees with Verify): key and signature lengths, context length,
// and s < L.
func wellFormed(it *BatchItem) ([]byte, bool) {
	if len(it.Key) != PublicKeySize || len(it.Sig) != SignatureSize {
		return nil, false
	}
	if _, err := new(edwards25519.Scalar).SetCanonicalBytes(it.Sig[32:]); err != nil {
		return nil, false
	}
	return signedMessage(it.Context, it.Msg)
}

// check evaluates one batch equation over the items in idx.
func (v *batchVerifier) check(idx []int) bool {
	v.st.BatchChecks++
	bv := ed25519consensus.NewPreallocatedBatchVerifier(len(idx))
	for _, i := range idx {
		bv.Add(ed25519.PublicKey(v.items[i].Key), v.msgs[i], v.items[i].Sig)
	}
	return bv.Verify()
}

// single verifies each item in idx on its own. This is the only place an
// item is ever marked invalid, and it uses the same function as Verify.
func (v *batchVerifier) single(idx []int) {
	for _, i := range idx {
		v.st.SingleChecks++
		v.out[i] = ed25519consensus.Verify(ed25519.PublicKey(v.items[i].Key), v.msgs[i], v.items[i].Sig)
	}
}

func (v *batchVerifier) markValid(idx []int) {
	for _, i := range idx {
		v.out[i] = true
	}
}

// resolve determines each item of idx, a set whose batch check failed and
// which therefore contains at least one invalid item (a batch of valid
// signatures always passes). It bisects: if the left half passes, the
// failure is all in the right half, which then needs no check of its own;
// if the right half passes, it is all in the left. If both halves fail,
// invalid items are not rare, so bisecting further would cost more than it
// saves: both halves are verified singly. The budget (two passes over the
// batch) is enough to isolate one invalid item by bisection in any
// position, and bounds the extra work of a batch full of invalid items to
// about two batch passes plus one single verification per item.
//
// resolve's correctness does not depend on these assumptions: an item is
// only ever marked valid by a passing batch check and invalid by single
// verification.
func (v *batchVerifier) resolve(idx []int) {
	if len(idx) <= leafSize || v.budget < len(idx) {
		v.single(idx)
		return
	}
	v.budget -= len(idx)
	left, right := idx[:len(idx)/2], idx[len(idx)/2:]
	if v.check(left) {
		v.markValid(left)
		v.resolve(right)
		return
	}
	if v.check(right) {
		v.markValid(right)
		v.resolve(left)
		return
	}
	v.single(left)
	v.single(right)
}
