package pbft

// Requests and proposals: admitting client requests, relaying them to the
// primary, and cutting them into batches.

import (
	"github.com/braid-bft/braid/msg"
)

// Request hands the instance a client request the shell received directly
// from its client (signature already verified). The primary queues it; a
// backup relays it to the primary and starts watching it: if it is not
// decided in time (timer.go), the backup suspects the primary.
func (n *Node) Request(r msg.Request) {
	if !n.acceptableRequest(&r) {
		return
	}
	if n.IsPrimary() {
		n.enqueue(r, false)
		return
	}
	key := r.Key()
	if _, ok := n.watching[key]; ok {
		// The client retried: our relay may have been lost, so relay again,
		// but keep its place in the timer's order.
		n.relay(r)
		n.stats.Dropped["duplicate-request"]++
		return
	}
	if len(n.watching) >= n.cfg.MaxPending {
		n.drop("watch-full")
		return
	}
	n.watch(r)
	n.relay(r)
}

func (n *Node) acceptableRequest(r *msg.Request) bool {
	if len(r.Op) > msg.MaxOpSize {
		n.drop("oversized-request")
		return false
	}
	if r.Number <= n.decided[r.Client] {
		n.drop("already-decided")
		return false
	}
	return true
}

func (n *Node) onRelayedRequest(m *msg.ClientRequest) {
	if !n.IsPrimary() {
		n.drop("relay-to-non-primary")
		return
	}
	if n.acceptableRequest(&m.Request) {
		n.enqueue(m.Request, true)
	}
}

// enqueue queues r at the primary; relayed: a backup relayed it and times
// it, so it goes in the lane proposed first (queue.go).
func (n *Node) enqueue(r msg.Request, relayed bool) {
	key := r.Key()
	if inRelayed, ok := n.queued[key]; ok {
		if relayed && !inRelayed && n.queue.relayed.len() < n.cfg.MaxPending {
			// A backup times it now: move it up. The copy left in the
			// direct lane is skipped when cut (already proposed).
			n.queued[key] = true
			n.queue.relayed.push(r)
			return
		}
		n.drop("duplicate-request")
		return
	}
	if _, ok := n.proposed[key]; ok {
		n.drop("duplicate-request")
		return
	}
	l := &n.queue.direct
	if relayed {
		l = &n.queue.relayed
	}
	if l.len() >= n.cfg.MaxPending {
		n.drop("queue-full")
		return
	}
	if n.queue.len() == 0 {
		n.queuedAt = n.tick
	}
	l.push(r)
	n.queued[key] = relayed
	n.maybePropose(false)
}

// maybePropose cuts batches while the window has room: a full batch at
// once, a partial one when BatchTicks have passed (force).
func (n *Node) maybePropose(force bool) {
	if !n.IsPrimary() || n.transferring != 0 || n.tick < n.holdUntil {
		return
	}
	for n.queue.len() > 0 && n.nextSeq <= n.high() {
		if n.nextSeq < n.resumeAt {
			// Requests proposed in rounds the paradigm layer skips would be
			// lost: fill those rounds with empty batches first.
			n.fillEmpty(n.resumeAt - 1)
			continue
		}
		if n.queue.len() < n.cfg.MaxBatch && !force {
			return
		}
		batch := n.cut()
		n.queuedAt = n.tick
		if len(batch.Requests) == 0 {
			continue
		}
		n.propose(batch)
	}
}

// cut takes the next batch off the queue: up to MaxBatch requests, less
// those decided meanwhile and the copies of requests moved up to the
// relayed lane (enqueue) that were proposed already.
func (n *Node) cut() msg.Batch {
	taken := n.queue.take(n.cfg.MaxBatch)
	batch := msg.Batch{Requests: make([]msg.Request, 0, len(taken))}
	for _, r := range taken {
		key := r.Key()
		delete(n.queued, key)
		if _, dup := n.proposed[key]; dup || r.Number <= n.decided[r.Client] {
			continue
		}
		n.proposed[key] = struct{}{}
		batch.Requests = append(batch.Requests, r)
	}
	return batch
}

// ProposeQueued is called by the shell once per pass of its loop, after it
// handed the core every request of that pass: a primary with fewer than
// PipelineDepth proposals undecided cuts what is queued into a batch now
// rather than at the next tick, so the requests that arrived together
// form one batch and a lone request does not wait a tick. With the
// pipeline full, requests keep queueing into the next batch (full batches
// are cut at once regardless).
func (n *Node) ProposeQueued() {
	if n.queue.len() == 0 || n.nextSeq-1-min(n.nextSeq-1, n.lastDecided) >= uint64(n.cfg.PipelineDepth) {
		return
	}
	n.maybePropose(true)
}

// ProposeEmpty makes the primary fill sequence numbers up to seq (within
// the window) with whatever is queued, or empty batches. The RCC layer calls
// it when other instances are ahead, so an idle instance does not hold back
// execution; nothing else proposes empty batches, so an idle cluster is silent.
func (n *Node) ProposeEmpty(upTo uint64) {
	if !n.IsPrimary() || n.transferring != 0 || n.tick < n.holdUntil {
		return
	}
	for n.nextSeq <= upTo && n.nextSeq <= n.high() {
		if n.nextSeq < n.resumeAt {
			n.fillEmpty(min(upTo, n.resumeAt-1))
			continue
		}
		n.propose(n.cut())
	}
}

// padToCheckpoint: once the instance has been idle for two retransmit
// periods with its last decision short of a checkpoint, its primary fills
// the sequence numbers up to the next checkpoint with empty batches, once.
// A replica kept behind — by f Byzantine replicas that withhold their
// commits from it, say — cannot learn the last decisions from fewer than a
// quorum of commits, and commits are not signed, so they cannot be relayed;
// a stable checkpoint above them can, and brings it there by state
// transfer. So an idle cluster goes quiet at a stable checkpoint, never
// with a correct replica stranded below the last decision.
func (n *Node) padToCheckpoint() {
	k := n.cfg.CheckpointInterval
	if !n.cfg.PadToCheckpoint || n.lastDecided%k == 0 || n.nextSeq != n.lastDecided+1 || n.queue.len() > 0 ||
		n.tick-n.decidedTick < 2*int64(n.cfg.RetransmitTicks) || n.tick < n.holdUntil {
		return
	}
	n.stats.IdlePads++
	n.ProposeEmpty((n.lastDecided/k + 1) * k)
}

// fillEmpty proposes empty batches up to seq (within the window).
func (n *Node) fillEmpty(upTo uint64) {
	for n.nextSeq <= upTo && n.nextSeq <= n.high() {
		n.propose(msg.Batch{})
	}
}

// ResumeAt tells the instance the paradigm layer ignores its sequence
// numbers below seq (its penalty after a failure): the primary proposes
// only empty batches there, keeping client requests for later rounds.
func (n *Node) ResumeAt(seq uint64) {
	n.resumeAt = max(n.resumeAt, seq)
}

func (n *Node) propose(batch msg.Batch) {
	pp := &msg.PrePrepare{
		Instance: n.cfg.Instance, View: n.view, Seq: n.nextSeq,
		Digest: batch.Digest(), Batch: batch, From: n.cfg.ID,
	}
	n.nextSeq++
	if _, taken := n.signed[voteKey{msg.KindPrePrepare, pp.View, pp.Seq}]; taken {
		// Unreachable while nextSeq stays past our own pre-prepares
		// (skipOwnProposals); never sign over one. The requests go back to
		// being proposable when their clients retry.
		n.drop("would-equivocate")
		for _, r := range batch.Requests {
			delete(n.proposed, r.Key())
		}
		return
	}
	n.sign(pp)
	n.stats.Proposed++
	n.acceptPrePrepare(pp)
	n.broadcast(pp)
}
