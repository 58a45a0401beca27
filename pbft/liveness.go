package pbft

// Ticks and liveness: timers, suspicion, Status beacons and the answers to
// them, Announce.

import (
	"github.com/braid-bft/braid/msg"
)

// Tick advances the instance's notion of time by one tick.
func (n *Node) Tick() {
	n.tick++
	n.weakTransfer()
	if n.changing {
		if n.tick >= n.vcDeadline {
			if n.viewChangeQuorum() {
				n.startViewChange(n.view+1, "view-change-timeout")
				return
			}
			// Fewer than a quorum want this view yet (PBFT starts the
			// view-change timer only on 2f+1 view changes): climbing
			// further alone would only put us more views ahead of
			// replicas that still run the current one — a replica that
			// timed out alone, e.g. while it caught up after a restart,
			// would otherwise be ladders of doubling timeouts away from
			// the others' next view change. Wait, and keep beaconing.
			n.vcDeadline = n.tick + int64(n.cfg.ViewChangeTimeout)
		}
		if n.tick-n.lastBeacon >= int64(n.cfg.RetransmitTicks) && n.ownVC != nil {
			n.lastBeacon = n.tick
			n.broadcast(n.ownVC)
			// And a Status: a replica waiting alone in a view change (the
			// others stayed in the view it left) must still learn what they
			// decide meanwhile, from their commits and pre-prepares (see
			// tryLearn); otherwise it stays behind until a stable checkpoint
			// above it — never, once the cluster is idle.
			n.broadcast(n.status())
		}
		return
	}
	if n.IsPrimary() {
		if n.tick == n.holdUntil {
			n.nextSeq = max(n.nextSeq, n.lastDecided+1)
			n.maybePropose(true)
		}
		if n.queue.len() > 0 && n.tick-n.queuedAt >= int64(n.cfg.BatchTicks) {
			n.maybePropose(true)
		}
		n.padToCheckpoint()
	} else if why := n.primarySuspect(); why != "" {
		n.stats.Timeouts++
		n.startViewChange(n.view+1, why)
		return
	}
	// Beacon only when stalled: outstanding work, and for a retransmit
	// period no decision and nothing new for the next slot to decide
	// (noteActivity): a slow round is still moving. Under load there is
	// always outstanding work, and every peer answers a beacon with each
	// pre-prepare above the asker's last decision — batches it mostly has
	// already — so beaconing on outstanding work alone made answers the
	// largest traffic of a busy cluster (a simulated n = 16, m = 11: 89%
	// of all bytes sent). Faulty peers cannot hold a beacon back for long:
	// each has one pre-prepare, prepare and commit per slot and view to
	// spend (duplicates are dropped before they count), so they delay it
	// by at most a few retransmit periods per slot.
	//
	// And through an announcement's hold period, outstanding work or not:
	// if the answers to the announcement were lost (it could not hear yet),
	// nothing else would make a lagging replica ask again in an idle
	// cluster, and a question repeated too soon is refused (onStatus).
	if n.tick-n.lastBeacon >= int64(n.cfg.RetransmitTicks) &&
		(n.tick <= n.holdUntil || (n.tick-max(n.decidedTick, n.nextActiveTick) >= int64(n.cfg.RetransmitTicks) && n.outstanding())) {
		n.lastBeacon = n.tick
		n.broadcast(n.status())
	}
}

// viewChangeQuorum: a quorum (us included) asked for the view we are
// changing to or a later one, so the view change is under way everywhere
// and only its new primary can be failing.
func (n *Node) viewChangeQuorum() bool {
	k := 0
	for _, vc := range n.vcs {
		if vc.NewView >= n.view {
			k++
		}
	}
	return k >= n.q
}

// primarySuspect says why the primary is suspected ("" if it is not): the
// timed request or an accepted pre-prepare has waited too long, or the
// instance idles off a checkpoint.
func (n *Node) primarySuspect() string {
	if n.requestOverdue() {
		return "request-timeout"
	}
	if n.progressOverdue() {
		return "progress-timeout"
	}
	if n.padOverdue() {
		return "idle-off-checkpoint"
	}
	return ""
}

// progressOverdue: a pre-prepare we accepted waits, and the instance has
// decided nothing for ProgressTimeout since it was accepted. The clock is
// the instance's last decision, not each slot's acceptance: a pipeline of
// Window slots decided one after another by a busy cluster has its last
// slot wait for all before it, and timing each slot from its acceptance
// suspects a correct primary as soon as the pipeline holds more than
// ProgressTimeout of work — then every instance changes view at once and
// the re-proposals cost more work still (the overload storm in
// docs/benchmarks.md). A primary that stops its instance is still
// suspected within ProgressTimeout; one that decides slowly but steadily
// is the σ detector's to catch in RCC (rcc/failures.go), as a throttler.
func (n *Node) progressOverdue() bool {
	for seq, s := range n.slots {
		if s.pp != nil && !s.committed && seq > n.lastDecided && n.tick-max(s.acceptedAt, n.decidedTick) >= int64(n.cfg.ProgressTimeout) {
			return true
		}
	}
	return false
}

// padOverdue: the instance has been idle off a checkpoint for longer than
// a correct primary takes to pad it (padToCheckpoint waits two retransmit
// periods; its pre-prepares then fall under the progress timeout). Padding
// is a primary's duty, not a courtesy: a correct replica that the primary
// kept in the dark (a twin serving the other correct replicas) can learn
// the last decisions only from a stable checkpoint above them — commits
// are not signed, so nobody can relay the primary's — and an idle cluster
// never makes one unless it pads. A backup that is itself behind (others
// vouch for a checkpoint above what it decided, or a quorum committed a
// slot it has not) is catching up, not suspecting.
func (n *Node) padOverdue() bool {
	if !n.cfg.PadToCheckpoint || n.lastDecided%n.cfg.CheckpointInterval == 0 || n.transferring != 0 || n.tick < n.holdUntil {
		return false
	}
	quiet := 2*int64(n.cfg.RetransmitTicks) + int64(n.cfg.ProgressTimeout) + int64(n.cfg.RequestTimeout)
	if n.tick-max(n.decidedTick, n.viewTick) < quiet || n.Behind() {
		return false
	}
	for id, list := range n.ckpts {
		if id != n.cfg.ID && len(list) > 0 && list[len(list)-1].Seq > n.lastDecided {
			return false
		}
	}
	for seq, s := range n.slots {
		if seq > n.lastDecided && s.pp != nil {
			return false // the progress timeout watches it
		}
	}
	return true
}

// Behind reports whether this replica sees the instance progressing
// elsewhere without it: some sequence number above what it decided already
// has a quorum of commits. Then the fault is in what reached us, not in the
// primary, and the cure is catching up (Status), not suspicion.
func (n *Node) Behind() bool {
	for seq, s := range n.slots {
		if seq > n.lastDecided && len(s.commits) >= n.q {
			return true
		}
	}
	return false
}

// outstanding: this replica knows of work it has not finished.
func (n *Node) outstanding() bool {
	if len(n.watching) > 0 {
		return true
	}
	// Any activity above what we delivered is unfinished work for us: an
	// uncommitted slot, or a committed one stuck behind a gap we never heard of.
	for seq, s := range n.slots {
		if seq > n.lastDecided && (s.pp != nil || s.seenAnyVote) {
			return true
		}
	}
	// Commits of another view for a sequence number we have not decided:
	// a decision we are learning (answers trimmed to a budget come in parts).
	for seq, l := range n.learned {
		if seq > n.lastDecided && len(l.votes) > 0 {
			return true
		}
	}
	return false
}

// status is this replica's beacon: what it has decided, and how far past
// that it already holds the pre-prepares (so answers skip them). A slot
// whose votes name another body than the pre-prepare we hold ends the run:
// our primary may have equivocated, and we need the decided body from the
// answers to learn it (tryLearn).
func (n *Node) status() *msg.Status {
	st := &msg.Status{Instance: n.cfg.Instance, View: n.view, StableSeq: n.low, NextSeq: n.lastDecided + 1, From: n.cfg.ID}
	if !n.changing {
		for seq := n.lastDecided + 1; ; seq++ {
			s := n.slots[seq]
			if s == nil || s.pp == nil || s.view != n.view || contested(s) || n.learned[seq] != nil {
				break
			}
			st.Accepted = seq
		}
	}
	return st
}

// contested: a vote in s names another body than its pre-prepare.
func contested(s *slot) bool {
	for _, p := range s.prepares {
		if p.Digest != s.pp.Digest {
			return true
		}
	}
	for _, d := range s.commits {
		if d != s.pp.Digest {
			return true
		}
	}
	return false
}

// onStatus answers a stuck replica with what it may have missed, to it alone.
func (n *Node) onStatus(st *msg.Status) {
	to := st.From
	a := n.budget(to)
	// Repeating a question within a retransmit period gets no answer; a
	// beacon that reports progress since our last answer (a state transfer
	// completed, say) is a new question. Whatever a peer asks, it draws on
	// its byte budget (Config.AnswerBytes), so a Byzantine one reporting a
	// different number every time cannot turn beacons into amplification.
	if a.asked && n.tick-a.tick < int64(n.cfg.RetransmitTicks) &&
		a.next == st.NextSeq && a.stable == st.StableSeq {
		n.drop("status-too-frequent")
		return
	}
	a.asked, a.tick, a.next, a.stable = true, n.tick, st.NextSeq, st.StableSeq
	if st.StableSeq < n.low {
		for i := range n.stableProof {
			if !n.answer(a, to, &n.stableProof[i]) {
				return
			}
		}
	}
	// Our latest checkpoint, if the asker has not decided that far: what
	// makes the weak certificate it may need (see weakTransfer) when no
	// stable checkpoint forms above it. It may have missed the broadcast.
	if own := n.ckpts[n.cfg.ID]; len(own) > 0 && own[len(own)-1].Seq >= st.NextSeq && own[len(own)-1].Seq > n.low {
		if !n.answer(a, to, &own[len(own)-1]) {
			return
		}
	}
	if st.View < n.view {
		if n.changing {
			if n.ownVC != nil {
				n.answer(a, to, n.ownVC)
			}
			return
		}
		if n.newView != nil {
			// The asker enters our view first (messages on a link arrive in
			// order), then gets the slots below.
			if !n.answer(a, to, n.newView) {
				return
			}
		}
	}
	if n.changing {
		return
	}
	// Whatever the asker's view — even one it moved to alone — it can
	// learn decisions from our pre-prepares and commits (see tryLearn).
	// Lowest first: what the asker needs next comes first when the budget
	// trims the answer. But first our vote for the highest slot: a trimmed
	// answer must still show the asker there is more, or it would stop
	// asking (it beacons only while it sees outstanding work).
	seqs := sortedSeqs(n.slots)
	hint := uint64(0)
	for i := len(seqs) - 1; i >= 0 && seqs[i] >= st.NextSeq; i-- {
		s := n.slots[seqs[i]]
		if v := ownVote(s, n.cfg.ID); v != nil {
			if !n.answer(a, to, v) {
				return
			}
			hint = seqs[i]
			break
		}
	}
	for _, seq := range seqs {
		if seq < st.NextSeq {
			continue
		}
		s := n.slots[seq]
		// Our votes before the pre-prepare: they are small, and the slot is
		// complete for the asker even if the budget ends right after the
		// pre-prepare (it asks from the same NextSeq again otherwise, and
		// would get the same prefix every time).
		if s.ownCommit != nil && seq != hint {
			if !n.answer(a, to, s.ownCommit) {
				return
			}
		}
		if p := s.prepares[n.cfg.ID]; p != nil && !(seq == hint && s.ownCommit == nil) {
			if !n.answer(a, to, p) {
				return
			}
		}
		if s.pp != nil && !(st.View == n.view && s.view == n.view && seq <= st.Accepted) {
			// Forward the pre-prepare whoever proposed it: it is signed, so
			// the asker can verify it, and a primary that keeps some
			// replicas in the dark cannot stop the others from lighting them.
			if !n.answer(a, to, s.pp) {
				return
			}
		}
	}
}

// ownVote is our commit for a slot, or else our prepare, or nil.
func ownVote(s *slot, id msg.ReplicaID) msg.Message {
	if s.ownCommit != nil {
		return s.ownCommit
	}
	if p := s.prepares[id]; p != nil {
		return p
	}
	return nil
}

// Announce broadcasts this replica's progress once (a Status beacon), so
// peers answer with what it is missing: stable checkpoint proofs, the
// current NewView, and their messages above what it decided. The shell calls
// it after a restart and when a peer connection is (re)established — the
// moments a replica may have silently fallen behind.
//
// Until the answers are in (two retransmit periods), the replica proposes
// nothing: a primary that lost its disk must first relearn its own earlier
// proposals (peers hand them back), or it would contradict them. It asks
// again once per retransmit period meanwhile, in case the answers were lost.
func (n *Node) Announce() {
	n.holdUntil = n.tick + 2*int64(n.cfg.RetransmitTicks)
	n.lastBeacon = n.tick
	n.broadcast(n.status())
}

// Suspect starts a view change on external evidence: the RCC layer's
// soft-failure detector says this instance lags too far behind the others.
func (n *Node) Suspect() {
	if n.changing {
		return
	}
	n.stats.Suspicions++
	n.startViewChange(n.view+1, "lagging-instance")
}
