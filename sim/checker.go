package sim

import (
	"bytes"
	"fmt"
	"github.com/braid-bft/braid/ledger"

	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/pbft"
)

const maxReported = 20

// checker enforces the safety and liveness invariants as the run goes, over the
// correct replicas only (a Byzantine replica's outputs prove nothing).
type checker struct {
	w          *world
	violations []string
	suppressed int
	decidedAt  map[uint64]msg.Digest
	headAt     map[uint64]msg.Digest
	results    map[msg.RequestKey]msg.Digest
	execBy     map[msg.RequestKey]map[msg.ReplicaID]uint64 // round it executed in
	accepts    map[msg.RequestKey][]byte
	acceptKeys []msg.RequestKey
	// signed maps every signed message a correct replica sent (by
	// pbft.SignedKey, which names its signer) to the digest of its signed
	// bytes. It belongs to the checker, so it outlives the replica's crashes
	// and restarts.
	signed map[string]msg.Digest
	// recent, older: payloads from correct replicas checked lately (two
	// generations, so memory stays bounded): the copies of a broadcast
	// arrive close together and need checking once.
	recent, older map[sentKey]struct{}
	// history is the linearizability workload's operations, in
	// invocation order (Options.Linearizability).
	history []linOp
	// The bank workload (Options.Bank): what each bank request was, and
	// the agreed ledger, each height's entries as the first correct
	// replica executed them.
	bankOps map[msg.RequestKey]bankOp
	ledger  map[uint64][]ledgerEntry
}

type sentKey struct {
	from    msg.ReplicaID
	payload msg.Digest
}

const recentPayloads = 4096

func newChecker(w *world) *checker {
	return &checker{
		w: w, decidedAt: map[uint64]msg.Digest{}, headAt: map[uint64]msg.Digest{},
		results: map[msg.RequestKey]msg.Digest{}, execBy: map[msg.RequestKey]map[msg.ReplicaID]uint64{},
		accepts: map[msg.RequestKey][]byte{}, signed: map[string]msg.Digest{},
		recent: map[sentKey]struct{}{}, older: map[sentKey]struct{}{},
	}
}

func (c *checker) violate(format string, args ...any) {
	if len(c.violations) >= maxReported {
		c.suppressed++
		return
	}
	c.report(format, args...)
}

// report records a violation even past maxReported (for the few,
// per-key, end-of-run findings that a flood of earlier ones must not hide).
func (c *checker) report(format string, args ...any) {
	c.violations = append(c.violations, fmt.Sprintf("t=%v: ", c.w.s.Now())+fmt.Sprintf(format, args...))
}

func (c *checker) isCorrect(r *replica) bool {
	return c.w.correct(r.id) && r.twinSide == 0
}

func (c *checker) violateIfCorrect(r *replica, format string, args ...any) {
	if c.isCorrect(r) {
		c.violate(format, args...)
	}
}

// sent: no equivocation. A correct replica never sends two different signed
// messages for the same (kind, instance, view, sequence) — see
// pbft.SignedKey — across crashes and restarts. payload is one encoded
// message the network delivered from r; it is checked with every signed
// message nested in it that r signed itself (its NewView's pre-prepares, its
// own prepares and checkpoints inside its view changes). Messages r relays
// for others are theirs to answer for; identical re-sends are fine.
//
// No message kind is exempt: a correct replica re-broadcasts its view change
// unchanged (the stored ownVC), signs one NewView per view (it leaves the
// view-changing state doing so), and its checkpoint for seq depends only on
// the agreed state at seq.
func (c *checker) sent(r *replica, payload []byte, digest [32]byte) {
	if !c.isCorrect(r) {
		return
	}
	// Keyed by sender and payload digest: nothing is skipped that was not
	// checked already.
	key := sentKey{r.id, digest}
	if _, ok := c.recent[key]; ok {
		return
	}
	if _, ok := c.older[key]; ok {
		return
	}
	if len(c.recent) >= recentPayloads {
		c.older, c.recent = c.recent, make(map[sentKey]struct{}, recentPayloads)
	}
	c.recent[key] = struct{}{}
	m, err := msg.Unmarshal(payload)
	if err != nil {
		return
	}
	c.signedBy(r.id, m)
}

// signedBy records the signed messages in m that id signed, and reports any
// that contradicts one recorded before.
func (c *checker) signedBy(id msg.ReplicaID, m msg.Message) {
	for _, part := range pbft.SignedMessages(m) {
		if from, _ := msg.Sender(part); from != id {
			continue
		}
		key, _ := pbft.SignedKey(part)
		d := digestOf(msg.SignedBytes(part))
		if have, ok := c.signed[key]; !ok {
			c.signed[key] = d
		} else if have != d {
			c.violate("equivocation: correct replica %d signed two different messages for %s (%x, then %x)", id, key, have[:4], d[:4])
		}
	}
}

// head: non-divergence of ledger heads at equal heights (a block's hash
// binds its requests, their order, results and state). Over the correct
// replicas, and a wiped one once it rejoins: a twin's copies each follow
// their own side, and their ledgers prove nothing.
func (c *checker) head(r *replica, seq uint64, head msg.Digest) {
	if !c.isCorrect(r) && r.behaviour != "wiped" {
		return
	}
	if have, ok := c.headAt[seq]; ok && have != head {
		c.violate("non-divergence: replica %d has ledger head %x at height %d, another correct replica %x", r.id, head[:4], seq, have[:4])
	} else if !ok {
		c.headAt[seq] = head
	}
}

func (c *checker) transferred(r *replica, seq uint64, head msg.Digest) {
	if c.isCorrect(r) {
		c.head(r, seq, head)
	}
}

// executed: no request executes twice on a replica, and correct replicas
// compute the same result for it.
func (c *checker) executed(r *replica, key msg.RequestKey, result msg.Digest, round uint64) {
	if !c.isCorrect(r) {
		return
	}
	by := c.execBy[key]
	if by == nil {
		by = map[msg.ReplicaID]uint64{}
		c.execBy[key] = by
	}
	if _, twice := by[r.id]; twice {
		c.violate("validity: replica %d executed request %v twice", r.id, key)
	}
	by[r.id] = round
	if have, ok := c.results[key]; ok && have != result {
		c.violate("non-divergence: replica %d computed a different result for %v", r.id, key)
	} else if !ok {
		c.results[key] = result
	}
}

// reverted: the replica lost its executed state above round (a crash that
// lost unsynced writes, or a wiped disk); re-executing those rounds is
// recovery, not double execution.
func (c *checker) reverted(r *replica, round uint64) {
	for _, by := range c.execBy {
		if at, ok := by[r.id]; ok && at > round {
			delete(by, r.id)
		}
	}
}

// converged reports whether every up, correct-or-recovering replica has
// the same ledger head.
func (c *checker) converged() (bool, string) {
	var ref *replica
	for _, r := range c.w.replicas {
		if !r.up || (!c.w.correct(r.id) && r.behaviour != "wiped") {
			continue
		}
		if ref == nil {
			ref = r
			continue
		}
		if r.sh.Round() != ref.sh.Round() || r.sh.Head() != ref.sh.Head() {
			return false, fmt.Sprintf("replica %d at height %d, replica %d at height %d (%d: %s; %d: %s)", r.id, r.sh.Round(), ref.id, ref.sh.Round(),
				r.id, r.sh.Describe(), ref.id, ref.sh.Describe())
		}
	}
	return true, ""
}

func (c *checker) accepted(key msg.RequestKey, result []byte) {
	if _, dup := c.accepts[key]; dup {
		c.violate("client %d accepted request %d twice", key.Client, key.Number)
		return
	}
	d := digestOf(result)
	c.accepts[key] = d[:]
	c.acceptKeys = append(c.acceptKeys, key)
}

// ledgers checks that every correct replica's ledger verifies as `braid
// ledger verify` checks a real one: the hash chain, every request's client
// signature, and every stored checkpoint certificate — a quorum of valid
// signatures on the block's own checkpoint digest, so a certificate that
// let in a lying replica's checkpoint is caught here.
func (c *checker) ledgers() {
	for _, r := range c.w.replicas {
		if !c.w.correct(r.id) {
			continue
		}
		if _, err := ledger.Verify(r.disk, c.w.keys, c.w.n, ledger.VerifyOptions{}); err != nil {
			c.violate("ledger: replica %d's ledger does not verify: %v", r.id, err)
		}
	}
}

// finish checks client safety and liveness once the run is over.
func (c *checker) finish() {
	for _, key := range c.acceptKeys {
		want, ok := c.results[key]
		if !ok {
			c.violate("client safety: client %d accepted a result for request %d that no correct replica produced", key.Client, key.Number)
			continue
		}
		if !bytes.Equal(want[:], c.accepts[key]) {
			c.violate("client safety: client %d accepted a wrong result for request %d", key.Client, key.Number)
		}
	}
	done, total := 0, 0
	for _, cl := range c.w.clients {
		done += cl.completed()
		total += cl.total
	}
	if c.w.load != nil && !c.w.load.spec.Window {
		done += len(c.w.load.done)
		total += int(c.w.load.seq)
	}
	if done < total {
		c.violate("liveness: only %d of %d requests completed by the deadline %v", done, total, c.w.opts.MaxVirtual)
	}
	c.ledgers()
	if c.suppressed > 0 {
		c.violations = append(c.violations, fmt.Sprintf("... and %d more violations", c.suppressed))
	}
}
