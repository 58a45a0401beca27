package pbft

// Checkpoints: signing, stability, garbage collection and state transfer
// (stable and weak certificates).

import (
	"cmp"
	"maps"
	"slices"

	"github.com/braid-bft/braid/msg"
)

// Checkpoint tells the instance that the application's state after seq
// (a multiple of CheckpointInterval) has digest state. The instance signs
// and broadcasts a checkpoint; 2f+1 matching ones make it stable.
func (n *Node) Checkpoint(seq uint64, state msg.Digest) {
	if seq == 0 || seq%n.cfg.CheckpointInterval != 0 || seq <= n.low {
		return
	}
	if have, dup := n.own[seq]; dup {
		if have != state {
			// We signed another state for seq before (a restart re-executed
			// differently: the application is not deterministic). Our word
			// stands; count it.
			n.drop("checkpoint-differs-from-signed")
		}
		return
	}
	n.own[seq] = state
	c := &msg.Checkpoint{Instance: n.cfg.Instance, Seq: seq, State: state, From: n.cfg.ID}
	n.sign(c)
	n.persist(c) // restored on restart, so we never sign another state for seq
	n.broadcast(c)
	n.addCheckpoint(c)
}

// maxCheckpointsPerSender bounds what one replica can make us hold: a
// lagging replica still sees far-ahead checkpoints (to learn it is behind),
// a Byzantine one can only evict its own.
func (n *Node) maxCheckpointsPerSender() int {
	return int(n.cfg.Window/n.cfg.CheckpointInterval) + 2
}

func (n *Node) onCheckpoint(c *msg.Checkpoint) {
	if c.Seq == 0 || c.Seq%n.cfg.CheckpointInterval != 0 {
		n.drop("bad-checkpoint-seq")
		return
	}
	if c.Seq <= n.low {
		n.drop("stale-checkpoint")
		return
	}
	for _, have := range n.ckpts[c.From] {
		if have.Seq == c.Seq {
			if have.State != c.State {
				n.drop("conflicting-checkpoint")
			} else {
				n.drop("duplicate")
			}
			return
		}
	}
	n.addCheckpoint(c)
}

func (n *Node) addCheckpoint(c *msg.Checkpoint) {
	list := append(n.ckpts[c.From], *c)
	slices.SortFunc(list, func(a, b msg.Checkpoint) int { return cmpU64(a.Seq, b.Seq) })
	if over := len(list) - n.maxCheckpointsPerSender(); over > 0 {
		list = slices.Delete(list, 0, over)
	}
	n.ckpts[c.From] = list
	var proof []msg.Checkpoint
	for _, id := range sortedIDs(n.ckpts) {
		for _, have := range n.ckpts[id] {
			if have.Seq == c.Seq && have.State == c.State {
				proof = append(proof, have)
			}
		}
	}
	if len(proof) >= n.q {
		n.makeStable(c.Seq, c.State, proof[:n.q])
		return
	}
	if len(proof) > n.f && c.Seq > n.lastDecided && (n.weak == nil || c.Seq > n.weak.seq) {
		n.weak = &weakCert{seq: c.Seq, state: c.State, proof: proof, since: n.tick}
	}
}

// weakTransfer fetches the state at a checkpoint only f+1 replicas vouch
// for, once this replica has been stuck below it for a while. A stable
// checkpoint needs a quorum of signatures, and correct replicas sign only
// what they executed: with f Byzantine replicas withholding theirs and a
// correct one kept in the dark by them (a twin primary, say), the other
// correct replicas stay one signature short of the quorum forever, and
// the one in the dark, whose signature would complete it, cannot get
// there by itself (seed 1 of the
// simulator's twin sweep at n = 4, m = 4: two correct replicas at 176,
// one at 145). Castro and Liskov's PBFT fetches on f+1 checkpoints for
// this reason. Once installed, our own checkpoint completes the quorum.
func (n *Node) weakTransfer() {
	w := n.weak
	if w == nil {
		return
	}
	if w.seq <= n.lastDecided || w.seq <= n.low {
		n.weak = nil
		return
	}
	quiet := 2*int64(n.cfg.RetransmitTicks) + int64(n.cfg.ProgressTimeout)
	if n.transferring != 0 || n.tick-max(w.since, n.decidedTick) < quiet {
		return
	}
	n.weak = nil
	n.transferring = w.seq
	n.ready.StateTransfer = &StateTransfer{Seq: w.seq, State: w.state, Proof: w.proof}
	n.pendingReady = true
	n.stats.StateTransfers++
	n.stats.WeakTransfers++
}

// makeStable moves the low watermark to seq and forgets everything below it.
func (n *Node) makeStable(seq uint64, state msg.Digest, proof []msg.Checkpoint) {
	if seq <= n.low {
		return
	}
	if d, ok := n.own[seq]; ok && d != state {
		n.stats.CheckpointMismatch++
	}
	n.low, n.stableState, n.stableProof = seq, state, proof
	n.forgetSigned()
	forgetThrough(n.slots, seq)
	forgetThrough(n.prepared, seq)
	forgetThrough(n.learned, seq)
	forgetThrough(n.own, seq)
	for id, list := range n.ckpts {
		n.ckpts[id] = slices.DeleteFunc(list, func(c msg.Checkpoint) bool { return c.Seq <= seq })
	}
	for _, c := range proof {
		n.persist(&c)
	}
	if !n.replaying {
		n.ready.Stable = seq
		n.ready.StableProof = proof
		n.pendingReady = true
	}
	n.stats.StableCheckpoints++
	if n.nextSeq <= seq {
		n.nextSeq = seq + 1
	}
	if n.lastDecided < seq {
		n.transferring = seq
		if !n.replaying {
			n.ready.StateTransfer = &StateTransfer{Seq: seq, State: state, Proof: proof}
		}
		n.stats.StateTransfers++
		return
	}
	n.maybePropose(false)
}

// StateTransferred tells the instance the shell installed the state of a
// stable checkpoint at or beyond the one it asked for; decisions resume
// after seq. executed is the highest
// executed request number per client in that state, so that requests decided
// in the range we skipped are not watched or re-proposed.
func (n *Node) StateTransferred(seq uint64, executed map[msg.ClientID]uint64) {
	if n.transferring == 0 || seq < n.transferring {
		return
	}
	n.transferring = 0
	n.learnExecuted(executed)
	if n.lastDecided < seq {
		n.lastDecided = seq
		n.decidedTick = n.tick
		n.forgetJumpedProposals()
	}
	if n.nextSeq <= seq {
		n.nextSeq = seq + 1
	}
	n.deliver()
}

// forgetJumpedProposals: a request proposed at a sequence number we just
// jumped over was decided there or lost with it (RCC checkpoints the rounds
// an instance sits out without the instance deciding them), so it no longer
// waits in any proposal. The primary must propose it again when its client
// retries, and a backup must time it again; a request that did execute is
// filtered by what the transfer reported executed. Otherwise a request
// proposed into a range that was then skipped would wait for good — and a
// faulty primary could censor a client by proposing it there.
func (n *Node) forgetJumpedProposals() {
	live := map[msg.RequestKey]bool{}
	for seq, s := range n.slots {
		if seq > n.lastDecided && s.pp != nil {
			for i := range s.pp.Batch.Requests {
				live[s.pp.Batch.Requests[i].Key()] = true
			}
		}
	}
	maps.DeleteFunc(n.proposed, func(k msg.RequestKey, _ struct{}) bool { return !live[k] })
	again := false
	for _, key := range sortedKeys(n.watching) {
		if w := n.watching[key]; w.proposed && !live[key] {
			w.proposed = false
			n.watching[key] = w
			n.watchOrder = append(n.watchOrder, watchEntry{key: key, since: w.since})
			again = true
		}
	}
	if again {
		slices.SortStableFunc(n.watchOrder, func(a, b watchEntry) int { return cmp.Compare(a.since, b.since) })
		n.restartTimer()
	}
}

// ClientExecuted reports that the request number of client c executed, so
// the instance stops watching or proposing it and anything older.
//
// Exactly-once has one owner, the execution layer above the instance
// (package rcc): it alone decides which decided requests execute. A decided
// batch does not by itself mark its requests done, because that layer may
// skip one (a round the instance sits out, a client it no longer serves, a
// number another instance ordered first), and a skipped request must stay
// proposable when its client retries. What the instance learns here only
// filters what it proposes and watches.
func (n *Node) ClientExecuted(c msg.ClientID, number uint64) {
	if number > n.decided[c] {
		n.decided[c] = number
	}
}

// learnExecuted merges the execution layer's per-client progress into ours.
func (n *Node) learnExecuted(executed map[msg.ClientID]uint64) {
	for c, num := range executed {
		if num > n.decided[c] {
			n.decided[c] = num
		}
	}
}

// forgetThrough drops the per-sequence-number state at or below a stable
// checkpoint's sequence number.
func forgetThrough[V any](m map[uint64]V, seq uint64) {
	maps.DeleteFunc(m, func(s uint64, _ V) bool { return s <= seq })
}
