// Package pbft is one PBFT instance as a deterministic state machine.
//
// The core never starts a goroutine, reads a clock, draws a random number or
// touches a socket or disk. Its inputs are method calls — a message arrived
// (Step), a client request arrived (Request), a tick elapsed (Tick), the
// application reached a checkpoint (Checkpoint) — and its outputs accumulate
// in a Ready that the shell drains: records to persist before anything is
// sent, messages to send, batches decided in sequence order. Signatures are
// checked by the shell (msg.Verify) before a message reaches Step; the core
// still checks the structure, senders, views, windows, digests and quorum
// arithmetic of everything, certificates included. docs/protocol.md states
// each rule with its safety argument.
package pbft

import (
	"fmt"
	"github.com/braid-bft/braid/quorum"
	"slices"

	"github.com/braid-bft/braid/msg"
)

// Decision is a batch the instance decided for Seq. Null marks a no-op a
// view change filled in for a sequence number nobody proved prepared.
type Decision struct {
	Instance uint32
	Seq      uint64
	View     uint64
	Digest   msg.Digest
	Null     bool
	Failure  bool // the instance's failure decision (see msg.PrePrepare.Failure)
	// FailureView is the view whose NewView made the failure decision (it
	// may be decided in a later view; this is the agreed part).
	FailureView uint64
	Batch       msg.Batch
}

// Outbound is a message to send: to one replica, or to all others.
type Outbound struct {
	To        msg.ReplicaID
	Broadcast bool
	Msg       msg.Message
}

// StateTransfer asks the shell to fetch the state at a stable checkpoint the
// replica has not reached by itself (it fell behind or lost its disk). The
// shell verifies what it fetches against State and calls StateTransferred.
type StateTransfer struct {
	Seq   uint64
	State msg.Digest
	Proof []msg.Checkpoint
}

// Ready is everything the core wants done. Persist must be durable before
// any of Messages is sent: that order is what keeps a restarted replica from
// contradicting itself.
type Ready struct {
	Persist       []msg.Message
	Messages      []Outbound
	Decided       []Decision
	StateTransfer *StateTransfer
	// Stable, when non-zero, is a new stable checkpoint: records and
	// decisions at or below it may be garbage-collected by the shell.
	// StableProof is its certificate: q matching signed checkpoints.
	Stable      uint64
	StableProof []msg.Checkpoint
}

type slot struct {
	view        uint64
	pp          *msg.PrePrepare
	prepares    map[msg.ReplicaID]*msg.Prepare
	commits     map[msg.ReplicaID]msg.Digest
	ownCommit   *msg.Commit
	prepared    bool
	committed   bool
	acceptedAt  int64 // tick the pre-prepare was accepted
	seenAnyVote bool
}

// Node is one instance on one replica.
type Node struct {
	cfg Config
	f   int
	q   int

	view     uint64
	changing bool // a view change to view is under way

	low          uint64 // stable checkpoint
	stableState  msg.Digest
	stableProof  []msg.Checkpoint
	lastDecided  uint64    // highest sequence number emitted as decided (or transferred)
	transferring uint64    // stable checkpoint awaiting StateTransferred, 0 if none
	weak         *weakCert // the highest checkpoint above lastDecided that f+1 replicas vouch for
	nextSeq      uint64    // primary: next sequence number to propose
	resumeAt     uint64    // the paradigm layer ignores this instance's rounds below it: propose no requests there
	holdUntil    int64     // propose nothing before this tick (relearning after Announce)
	planEnd      uint64    // last sequence number the current view's NewView fixed

	slots    map[uint64]*slot
	learned  map[uint64]*learnSlot         // decisions observed from outside our view
	prepared map[uint64]*msg.PreparedProof // highest-view prepared proof per seq above low
	ckpts    map[msg.ReplicaID][]msg.Checkpoint
	own      map[uint64]msg.Digest  // own checkpoint digests above low
	signed   map[voteKey]msg.Digest // own pre-prepares, prepares, commits of the current view (see bind)

	vcs     map[msg.ReplicaID]*msg.ViewChange // latest valid view change per sender
	ownVC   *msg.ViewChange
	newView *msg.NewView

	queue    []msg.Request
	queued   map[msg.RequestKey]struct{}
	queuedAt int64
	proposed map[msg.RequestKey]struct{}
	watching map[msg.RequestKey]watch  // backup: requests relayed to the primary
	decided  map[msg.ClientID]uint64   // highest decided request number per client
	answered map[msg.ReplicaID]*answer // per replica: its last Status and its answer budget

	tick         int64
	decidedTick  int64 // tick of the last decision (padToCheckpoint)
	viewTick     int64 // tick the current view was entered (padOverdue)
	vcDeadline   int64
	vcAttempts   int
	lastBeacon   int64
	replaying    bool
	stats        Stats
	ready        Ready
	pendingReady bool
}

// weakCert is f+1 matching checkpoints: at least one correct replica
// executed to State at Seq, and correct replicas agree, so it is the state
// every correct replica has there — enough to fetch and verify it by (the
// fetched blocks must replay to State), though not to move the low
// watermark, which takes a quorum.
type weakCert struct {
	seq   uint64
	state msg.Digest
	proof []msg.Checkpoint
	since int64 // tick it formed
}

type answer struct {
	tick         int64 // when we last answered its Status, and what it asked
	next, stable uint64
	asked        bool
	tokens       int64 // answer bytes it may still draw (negative: in debt for the last message)
	refilled     int64 // tick the bucket was last refilled
}

// budget returns peer to's answer state with its token bucket refilled up to now.
func (n *Node) budget(to msg.ReplicaID) *answer {
	capacity := int64(n.cfg.AnswerBytes)
	a := n.answered[to]
	if a == nil {
		a = &answer{tokens: capacity, refilled: n.tick}
		n.answered[to] = a
	}
	if dt := n.tick - a.refilled; dt > 0 {
		rate := max(capacity/int64(n.cfg.RetransmitTicks), 1)
		a.tokens = min(capacity, a.tokens+min(dt, int64(n.cfg.RetransmitTicks))*rate)
		a.refilled = n.tick
	}
	return a
}

// answer sends m to the peer that asked for it if its budget is not spent,
// and charges the budget m's encoded size. It reports whether m was sent.
func (n *Node) answer(a *answer, to msg.ReplicaID, m msg.Message) bool {
	if a.tokens <= 0 {
		n.drop("answer-over-budget")
		return false
	}
	a.tokens -= int64(len(msg.Marshal(m)))
	n.send(to, m)
	return true
}

type watch struct {
	req      msg.Request
	deadline int64
}

// New creates an instance at its initial state.
func New(cfg Config) (*Node, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("pbft config: %w", err)
	}
	n := &Node{
		cfg:      cfg,
		f:        quorum.Faults(cfg.N),
		q:        quorum.Size(cfg.N),
		view:     cfg.InitialView,
		nextSeq:  1,
		slots:    make(map[uint64]*slot),
		learned:  make(map[uint64]*learnSlot),
		prepared: make(map[uint64]*msg.PreparedProof),
		ckpts:    make(map[msg.ReplicaID][]msg.Checkpoint),
		own:      make(map[uint64]msg.Digest),
		signed:   make(map[voteKey]msg.Digest),
		vcs:      make(map[msg.ReplicaID]*msg.ViewChange),
		queued:   make(map[msg.RequestKey]struct{}),
		proposed: make(map[msg.RequestKey]struct{}),
		watching: make(map[msg.RequestKey]watch),
		decided:  make(map[msg.ClientID]uint64),
		answered: make(map[msg.ReplicaID]*answer),
		stats:    newStats(),
	}
	return n, nil
}

// View returns the current view and whether a view change is under way.
func (n *Node) View() (view uint64, changing bool) { return n.view, n.changing }

// Primary returns the primary of the current view.
func (n *Node) Primary() msg.ReplicaID { return n.cfg.Primary(n.view) }

// IsPrimary reports whether this replica leads the current view.
func (n *Node) IsPrimary() bool { return !n.changing && n.cfg.Primary(n.view) == n.cfg.ID }

// relay forwards a client request to the current primary, if one is known.
func (n *Node) relay(r msg.Request) {
	if p := n.cfg.Primary(n.view); !n.changing && p != msg.NoReplica && int(p) < n.cfg.N {
		n.send(p, &msg.ClientRequest{Instance: n.cfg.Instance, Request: r})
	}
}

// PrimaryChanged tells the instance the primary rule's answer for the
// current view may have changed (the paradigm layer agreed on it). If this
// replica is now the primary, it takes over what it was watching and
// proposes; otherwise it relays what it watches to the new primary.
func (n *Node) PrimaryChanged() {
	if n.changing {
		return
	}
	n.nextSeq = max(n.nextSeq, n.planEnd+1, n.low+1)
	n.skipOwnProposals()
	if n.IsPrimary() {
		for _, key := range sortedKeys(n.watching) {
			w := n.watching[key]
			delete(n.watching, key)
			if _, ok := n.proposed[key]; !ok && w.req.Number > n.decided[w.req.Client] {
				n.enqueue(w.req)
			}
		}
		n.maybePropose(true)
		return
	}
	for _, key := range sortedKeys(n.watching) {
		w := n.watching[key]
		w.deadline = n.tick + int64(n.cfg.RequestTimeout)
		n.watching[key] = w
		n.relay(w.req)
	}
}

// LastDecided is the highest sequence number decided (in order) so far.
func (n *Node) LastDecided() uint64 { return n.lastDecided }

// NextProposal is the sequence number the primary will propose next.
func (n *Node) NextProposal() uint64 { return n.nextSeq }

// ViewChangeTimeout is the configured base view-change timeout, in ticks.
func (n *Node) ViewChangeTimeout() int { return n.cfg.ViewChangeTimeout }

// ProgressTimeout is the configured progress timeout, in ticks.
func (n *Node) ProgressTimeout() int { return n.cfg.ProgressTimeout }

// LowWatermark is the last stable checkpoint.
func (n *Node) LowWatermark() uint64 { return n.low }

// Stats returns the drop and event counters.
func (n *Node) Stats() Stats { return n.stats.clone() }

// HasReady reports whether Ready has anything.
func (n *Node) HasReady() bool { return n.pendingReady }

// Ready returns and clears the accumulated outputs.
func (n *Node) Ready() Ready {
	r := n.ready
	n.ready = Ready{}
	n.pendingReady = false
	return r
}

func (n *Node) persist(m msg.Message) {
	if n.replaying {
		return
	}
	n.ready.Persist = append(n.ready.Persist, m)
	n.pendingReady = true
}

func (n *Node) send(to msg.ReplicaID, m msg.Message) {
	if n.replaying || to == n.cfg.ID {
		return
	}
	n.ready.Messages = append(n.ready.Messages, Outbound{To: to, Msg: m})
	n.pendingReady = true
}

func (n *Node) broadcast(m msg.Message) {
	if n.replaying {
		return
	}
	n.ready.Messages = append(n.ready.Messages, Outbound{Broadcast: true, Msg: m})
	n.pendingReady = true
}

func (n *Node) sign(m msg.Message) {
	msg.SetSig(m, n.cfg.Signer.Sign(msg.SignedBytes(m)))
}

func (n *Node) drop(reason string) { n.stats.Dropped[reason]++ }

// high is the high watermark: sequence numbers above it are out of window.
func (n *Node) high() uint64 { return n.low + n.cfg.Window }

func (n *Node) inWindow(seq uint64) bool { return seq > n.low && seq <= n.high() }

func (n *Node) slot(seq uint64) *slot {
	s := n.slots[seq]
	if s == nil {
		s = &slot{view: n.view, prepares: make(map[msg.ReplicaID]*msg.Prepare), commits: make(map[msg.ReplicaID]msg.Digest)}
		n.slots[seq] = s
	}
	return s
}

// Step feeds one message that arrived from replica `from` over an
// authenticated link, after its signatures were verified. Invalid messages
// are dropped and counted; they never change state.
func (n *Node) Step(from msg.ReplicaID, m msg.Message) {
	if int(from) >= n.cfg.N {
		n.drop("unknown-sender")
		return
	}
	if msg.InstanceOf(m) != n.cfg.Instance {
		n.drop("wrong-instance")
		return
	}
	sender, signed := msg.Sender(m)
	if signed && int(sender) >= n.cfg.N {
		n.drop("unknown-sender")
		return
	}
	// Commits and Status are authenticated by the link only, so their
	// claimed sender must be the link's; signed messages may be relayed.
	switch m.(type) {
	case *msg.Commit, *msg.Status:
		if sender != from {
			n.drop("forged-sender")
			return
		}
	}
	if signed && sender == n.cfg.ID && !n.replaying {
		// Our own signed pre-prepares and prepares come back only when a
		// peer answers our beacon after we lost them (a wiped disk):
		// taking them back restores what we had said, never contradicts it.
		switch m.(type) {
		case *msg.PrePrepare, *msg.Prepare:
		default:
			n.drop("from-self")
			return
		}
	}
	n.stats.Received[m.Kind().String()]++
	switch m := m.(type) {
	case *msg.ClientRequest:
		n.onRelayedRequest(m)
	case *msg.PrePrepare:
		n.onPrePrepare(m)
	case *msg.Prepare:
		n.onPrepare(m)
	case *msg.Commit:
		n.onCommit(m)
	case *msg.Checkpoint:
		n.onCheckpoint(m)
	case *msg.ViewChange:
		n.onViewChange(m)
	case *msg.NewView:
		n.onNewView(m)
	case *msg.Status:
		n.onStatus(m)
	default:
		n.drop("unknown-kind")
	}
}

// ---------------------------------------------------------------- requests

// Request hands the instance a client request the shell received directly
// from its client (signature already verified). The primary queues it; a
// backup relays it to the primary and starts watching it: if it is not
// decided within RequestTimeout, the backup suspects the primary.
func (n *Node) Request(r msg.Request) {
	if !n.acceptableRequest(&r) {
		return
	}
	if n.IsPrimary() {
		n.enqueue(r)
		return
	}
	key := r.Key()
	if _, ok := n.watching[key]; ok {
		// The client retried: our relay may have been lost, so relay again,
		// but keep the original deadline.
		n.relay(r)
		n.stats.Dropped["duplicate-request"]++
		return
	}
	if len(n.watching) >= n.cfg.MaxPending {
		n.drop("watch-full")
		return
	}
	n.watching[key] = watch{req: r, deadline: n.tick + int64(n.cfg.RequestTimeout)}
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
		n.enqueue(m.Request)
	}
}

func (n *Node) enqueue(r msg.Request) {
	key := r.Key()
	if _, ok := n.queued[key]; ok {
		n.drop("duplicate-request")
		return
	}
	if _, ok := n.proposed[key]; ok {
		n.drop("duplicate-request")
		return
	}
	if len(n.queue) >= n.cfg.MaxPending {
		n.drop("queue-full")
		return
	}
	if len(n.queue) == 0 {
		n.queuedAt = n.tick
	}
	n.queue = append(n.queue, r)
	n.queued[key] = struct{}{}
	n.maybePropose(false)
}

// maybePropose cuts batches while the window has room: a full batch at
// once, a partial one when BatchTicks have passed (force).
func (n *Node) maybePropose(force bool) {
	if !n.IsPrimary() || n.transferring != 0 || n.tick < n.holdUntil {
		return
	}
	for len(n.queue) > 0 && n.nextSeq <= n.high() {
		if n.nextSeq < n.resumeAt {
			// Requests proposed in rounds the paradigm layer skips would be
			// lost: fill those rounds with empty batches first.
			n.fillEmpty(n.resumeAt - 1)
			continue
		}
		if len(n.queue) < n.cfg.MaxBatch && !force {
			return
		}
		k := min(len(n.queue), n.cfg.MaxBatch)
		batch := msg.Batch{Requests: make([]msg.Request, 0, k)}
		for _, r := range n.queue[:k] {
			key := r.Key()
			delete(n.queued, key)
			if r.Number <= n.decided[r.Client] {
				continue
			}
			n.proposed[key] = struct{}{}
			batch.Requests = append(batch.Requests, r)
		}
		n.queue = slices.Delete(n.queue, 0, k)
		n.queuedAt = n.tick
		if len(batch.Requests) == 0 {
			continue
		}
		n.propose(batch)
	}
}

// ProposeQueued is called by the shell once per pass of its loop, after it
// handed the core every request of that pass: a primary with fewer than
// PipelineDepth proposals undecided cuts what is queued into a batch now
// rather than at the next tick, so the requests that arrived together
// form one batch and a lone request does not wait a tick. With the
// pipeline full, requests keep queueing into the next batch (full batches
// are cut at once regardless).
func (n *Node) ProposeQueued() {
	if len(n.queue) == 0 || n.nextSeq-1-min(n.nextSeq-1, n.lastDecided) >= uint64(n.cfg.PipelineDepth) {
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
		k := min(len(n.queue), n.cfg.MaxBatch)
		var batch msg.Batch
		for _, r := range n.queue[:k] {
			delete(n.queued, r.Key())
			if r.Number > n.decided[r.Client] {
				n.proposed[r.Key()] = struct{}{}
				batch.Requests = append(batch.Requests, r)
			}
		}
		n.queue = slices.Delete(n.queue, 0, k)
		n.propose(batch)
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
	if !n.cfg.PadToCheckpoint || n.lastDecided%k == 0 || n.nextSeq != n.lastDecided+1 || len(n.queue) > 0 ||
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

// ------------------------------------------------------------ normal case

func (n *Node) onPrePrepare(pp *msg.PrePrepare) {
	if reason := n.checkNormal(pp.View, pp.Seq); reason != "" {
		n.learnPrePrepare(pp)
		n.drop(reason)
		return
	}
	// Replaying, the primary rule is not consulted: a recorded pre-prepare
	// passed it when first accepted, and the rule may answer differently
	// after a restart (the paradigm layer's state may be older or newer).
	if pp.From != n.cfg.Primary(n.view) && !n.replaying {
		n.drop("pre-prepare-not-from-primary")
		return
	}
	if pp.Null || pp.Failure {
		n.drop("null-outside-new-view")
		return
	}
	if pp.Seq <= n.planEnd {
		n.drop("seq-fixed-by-new-view")
		return
	}
	if reason := n.checkBatch(pp); reason != "" {
		n.drop(reason)
		return
	}
	if s := n.slots[pp.Seq]; s != nil && s.pp != nil {
		if s.pp.Digest == pp.Digest {
			n.drop("duplicate")
		} else {
			// Our primary equivocated. If the others decided this body (a
			// quorum of commits for it), we learn it from them (tryLearn)
			// instead of staying behind on the one we were given.
			n.learnPrePrepare(pp)
			n.drop("equivocation")
		}
		return
	}
	n.acceptPrePrepare(pp)
}

// checkNormal is the view and window test every normal-case message passes.
func (n *Node) checkNormal(view, seq uint64) string {
	switch {
	case n.changing:
		return "view-changing"
	case view < n.view:
		return "old-view"
	case view > n.view:
		return "future-view"
	case !n.inWindow(seq):
		return "out-of-window"
	}
	return ""
}

// checkBatch validates a pre-prepare's batch: size, digest, no request twice.
func (n *Node) checkBatch(pp *msg.PrePrepare) string {
	if pp.Null {
		want := msg.NullDigest
		if pp.Failure {
			if pp.FailureView > pp.View {
				return "bad-null"
			}
			want = msg.FailureDigest(pp.FailureView)
		} else if pp.FailureView != 0 {
			return "bad-null"
		}
		if len(pp.Batch.Requests) != 0 || pp.Digest != want {
			return "bad-null"
		}
		return ""
	}
	if pp.Failure {
		return "bad-null"
	}
	if len(pp.Batch.Requests) > n.cfg.MaxBatch {
		return "oversized-batch"
	}
	if pp.Batch.Digest() != pp.Digest {
		return "bad-digest"
	}
	if len(pp.Batch.Requests) > 1 {
		seen := make(map[msg.RequestKey]struct{}, len(pp.Batch.Requests))
		for i := range pp.Batch.Requests {
			k := pp.Batch.Requests[i].Key()
			if _, dup := seen[k]; dup {
				return "duplicate-in-batch"
			}
			seen[k] = struct{}{}
		}
	}
	return ""
}

func (n *Node) acceptPrePrepare(pp *msg.PrePrepare) {
	// Our signatures bind: no pre-prepare other than ours where we proposed,
	// and none other than the one we prepared where we prepared.
	mine := msg.KindPrepare
	if pp.From == n.cfg.ID {
		mine = msg.KindPrePrepare
	}
	if !n.bind(mine, n.view, pp.Seq, pp.Digest) {
		n.drop("conflicts-own-vote")
		return
	}
	if pp.From == n.cfg.ID && pp.Seq >= n.nextSeq {
		n.nextSeq = pp.Seq + 1 // our own proposal, handed back after we lost it
	}
	s := n.slot(pp.Seq)
	s.view = n.view
	s.pp = pp
	s.acceptedAt = n.tick
	n.persist(pp)
	if pp.From != n.cfg.ID {
		p := &msg.Prepare{Instance: n.cfg.Instance, View: n.view, Seq: pp.Seq, Digest: pp.Digest, From: n.cfg.ID}
		if own := s.prepares[n.cfg.ID]; own != nil && own.Digest == pp.Digest {
			p = own // replaying: keep the prepare we already sent
		} else {
			n.sign(p)
		}
		s.prepares[n.cfg.ID] = p
		n.persist(p)
		n.broadcast(p)
	}
	n.checkPrepared(pp.Seq, s)
}

func (n *Node) onPrepare(p *msg.Prepare) {
	if reason := n.checkNormal(p.View, p.Seq); reason != "" {
		n.drop(reason)
		return
	}
	if s := n.slots[p.Seq]; (s != nil && s.pp != nil && p.From == s.pp.From) ||
		((s == nil || s.pp == nil) && p.From == n.cfg.Primary(n.view) && p.From == n.cfg.Leader(n.view) && !n.replaying) {
		n.drop("prepare-from-primary")
		return
	}
	s := n.slot(p.Seq)
	if _, dup := s.prepares[p.From]; dup {
		n.drop("duplicate")
		return
	}
	if p.From == n.cfg.ID && !n.bind(msg.KindPrepare, p.View, p.Seq, p.Digest) {
		// Our own prepare handed back (we lost our disk) contradicting one
		// we know we signed: keep the one we know.
		n.drop("conflicts-own-vote")
		return
	}
	s.prepares[p.From] = p
	s.seenAnyVote = true
	n.persist(p)
	n.checkPrepared(p.Seq, s)
}

func (n *Node) checkPrepared(seq uint64, s *slot) {
	if s.prepared || s.pp == nil {
		return
	}
	votes := 0
	for from, p := range s.prepares {
		if p.Digest == s.pp.Digest && from != s.pp.From {
			votes++
		}
	}
	if votes < n.q-1 {
		return
	}
	s.prepared = true
	proof := &msg.PreparedProof{PrePrepare: *s.pp}
	for _, id := range sortedIDs(s.prepares) {
		if p := s.prepares[id]; p.Digest == s.pp.Digest && id != s.pp.From {
			proof.Prepares = append(proof.Prepares, *p)
		}
	}
	n.prepared[seq] = proof
	if !n.bind(msg.KindCommit, n.view, seq, s.pp.Digest) {
		n.drop("conflicts-own-vote") // unreachable: the pre-prepare is bound to our vote
		return
	}
	c := &msg.Commit{Instance: n.cfg.Instance, View: n.view, Seq: seq, Digest: s.pp.Digest, From: n.cfg.ID}
	if own := s.ownCommit; own != nil && own.Digest == c.Digest {
		c = own // restored: keep the commit we already sent
	}
	s.ownCommit = c
	s.commits[n.cfg.ID] = c.Digest
	n.persist(c)
	n.broadcast(c)
	n.checkCommitted(seq, s)
}

func (n *Node) onCommit(c *msg.Commit) {
	if reason := n.checkNormal(c.View, c.Seq); reason != "" {
		// Not usable for voting here, but it may teach us a decision.
		n.learnCommit(c)
		n.drop(reason)
		return
	}
	s := n.slot(c.Seq)
	if s.pp != nil && c.Digest != s.pp.Digest {
		// A commit for another body than the one our primary gave us: if a
		// quorum decided that body, we must learn it (see onPrePrepare).
		n.learnCommit(c)
	}
	if _, dup := s.commits[c.From]; dup {
		n.drop("duplicate")
		return
	}
	s.commits[c.From] = c.Digest
	s.seenAnyVote = true
	n.checkCommitted(c.Seq, s)
}

func (n *Node) checkCommitted(seq uint64, s *slot) {
	if s.committed || !s.prepared {
		return
	}
	votes := 0
	for _, d := range s.commits {
		if d == s.pp.Digest {
			votes++
		}
	}
	if votes < n.q {
		return
	}
	s.committed = true
	n.deliver()
}

// deliver emits decisions strictly in sequence order.
func (n *Node) deliver() {
	if n.transferring != 0 {
		return
	}
	for {
		s := n.slots[n.lastDecided+1]
		if s == nil || !s.committed {
			break
		}
		n.lastDecided++
		n.decidedTick = n.tick
		delete(n.learned, n.lastDecided)
		pp := s.pp
		for i := range pp.Batch.Requests {
			r := &pp.Batch.Requests[i]
			if !n.cfg.ExecutionFeedback && r.Number > n.decided[r.Client] {
				n.decided[r.Client] = r.Number
			}
			key := r.Key()
			delete(n.proposed, key)
			delete(n.watching, key)
			if _, ok := n.queued[key]; ok {
				delete(n.queued, key)
				n.queue = slices.DeleteFunc(n.queue, func(q msg.Request) bool { return q.Key() == key })
			}
		}
		n.stats.Decided++
		n.stats.DecidedRequests += uint64(len(pp.Batch.Requests))
		if !n.replaying {
			n.ready.Decided = append(n.ready.Decided, Decision{
				Instance: n.cfg.Instance, Seq: pp.Seq, View: pp.View, Digest: pp.Digest, Null: pp.Null, Failure: pp.Failure, FailureView: pp.FailureView, Batch: pp.Batch,
			})
			n.pendingReady = true
		}
	}
	if n.learned[n.lastDecided+1] != nil {
		n.tryLearn()
	}
	n.maybePropose(false)
}

// ------------------------------------------------------------ learning
//
// A replica that is not in the view the others decide in — it was cut off
// and suspected alone, or it restarted — can still learn decisions without
// voting: q commits for (v, s, d) from distinct replicas mean at least
// q−f ≥ f+1 correct replicas prepared d at s in view v, so d is committed
// and every view change keeps it; any pre-prepare whose digest is d carries
// its content (the digest binds the batch, no-op and failure flags alike).

type learnSlot struct {
	votes map[msg.ReplicaID]learnVote // latest commit per sender
	pps   map[msg.Digest]*msg.PrePrepare
}

type learnVote struct {
	view   uint64
	digest msg.Digest
}

const maxLearnBodies = 4 // distinct pre-prepare bodies kept per sequence number

func (n *Node) learnWindow(seq uint64) bool {
	return seq > n.lastDecided && seq <= n.lastDecided+n.cfg.Window && seq > n.low
}

func (n *Node) learning(seq uint64) *learnSlot {
	l := n.learned[seq]
	if l == nil {
		l = &learnSlot{votes: map[msg.ReplicaID]learnVote{}, pps: map[msg.Digest]*msg.PrePrepare{}}
		n.learned[seq] = l
	}
	return l
}

func (n *Node) learnCommit(c *msg.Commit) bool {
	if !n.learnWindow(c.Seq) {
		return false
	}
	l := n.learning(c.Seq)
	if have, ok := l.votes[c.From]; ok && have.view >= c.View {
		return false
	}
	l.votes[c.From] = learnVote{c.View, c.Digest}
	n.tryLearn()
	return true
}

func (n *Node) learnPrePrepare(pp *msg.PrePrepare) bool {
	if !n.learnWindow(pp.Seq) || n.checkBatch(pp) != "" {
		return false
	}
	l := n.learning(pp.Seq)
	if _, ok := l.pps[pp.Digest]; ok || len(l.pps) >= maxLearnBodies {
		return false
	}
	l.pps[pp.Digest] = pp
	n.tryLearn()
	return true
}

// tryLearn delivers, in order, every next sequence number a commit quorum
// proves decided and whose content we hold.
func (n *Node) tryLearn() {
	for n.transferring == 0 {
		seq := n.lastDecided + 1
		l := n.learned[seq]
		if l == nil {
			return
		}
		count := map[learnVote]int{}
		var won *msg.PrePrepare
		for _, v := range l.votes {
			count[v]++
			if count[v] >= n.q {
				won = l.pps[v.digest]
			}
		}
		if won == nil {
			// The body may be the pre-prepare we accepted before we left
			// the view: a quorum of commits for its digest decides it too.
			if s := n.slots[seq]; s != nil && s.pp != nil {
				for v, k := range count {
					if k >= n.q && v.digest == s.pp.Digest {
						won = s.pp
					}
				}
			}
		}
		if won == nil {
			return
		}
		s := n.slot(seq)
		s.pp, s.prepared, s.committed = won, true, true
		n.stats.Learned++
		n.deliver()
		if n.lastDecided < seq {
			return
		}
	}
}

// ------------------------------------------------------------ checkpoints

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
	for s := range n.slots {
		if s <= seq {
			delete(n.slots, s)
		}
	}
	for s := range n.prepared {
		if s <= seq {
			delete(n.prepared, s)
		}
	}
	for s := range n.learned {
		if s <= seq {
			delete(n.learned, s)
		}
	}
	for s := range n.own {
		if s <= seq {
			delete(n.own, s)
		}
	}
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
	}
	if n.nextSeq <= seq {
		n.nextSeq = seq + 1
	}
	n.deliver()
}

// ClientExecuted reports that the request number of client c executed, so
// the instance stops watching or proposing it and anything older.
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

// -------------------------------------------------------------- ticks

// Tick advances the instance's notion of time by one tick.
func (n *Node) Tick() {
	n.tick++
	n.weakTransfer()
	if n.changing {
		if n.tick >= n.vcDeadline {
			if n.viewChangeQuorum() {
				n.startViewChange(n.view + 1)
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
			n.broadcast(&msg.Status{Instance: n.cfg.Instance, View: n.view, StableSeq: n.low, NextSeq: n.lastDecided + 1, From: n.cfg.ID})
		}
		return
	}
	if n.IsPrimary() {
		if n.tick == n.holdUntil {
			n.nextSeq = max(n.nextSeq, n.lastDecided+1)
			n.maybePropose(true)
		}
		if len(n.queue) > 0 && n.tick-n.queuedAt >= int64(n.cfg.BatchTicks) {
			n.maybePropose(true)
		}
		n.padToCheckpoint()
	} else if n.primarySuspect() {
		n.stats.Timeouts++
		n.startViewChange(n.view + 1)
		return
	}
	if n.tick-n.lastBeacon >= int64(n.cfg.RetransmitTicks) && n.outstanding() {
		n.lastBeacon = n.tick
		n.broadcast(&msg.Status{Instance: n.cfg.Instance, View: n.view, StableSeq: n.low, NextSeq: n.lastDecided + 1, From: n.cfg.ID})
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

// primarySuspect: a watched request or an accepted pre-prepare has waited too long.
func (n *Node) primarySuspect() bool {
	for key, w := range n.watching {
		if w.req.Number <= n.decided[w.req.Client] {
			// Overtaken by a later request of the same client, or decided
			// inside a range we state-transferred over: nothing to wait for.
			delete(n.watching, key)
			continue
		}
		if n.tick >= w.deadline {
			return true
		}
	}
	for seq, s := range n.slots {
		if s.pp != nil && !s.committed && seq > n.lastDecided && n.tick-s.acceptedAt >= int64(n.cfg.ProgressTimeout) {
			return true
		}
	}
	return n.padOverdue()
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
		if s.pp != nil {
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
// proposals (peers hand them back), or it would contradict them.
func (n *Node) Announce() {
	n.holdUntil = n.tick + 2*int64(n.cfg.RetransmitTicks)
	n.lastBeacon = n.tick
	n.broadcast(&msg.Status{Instance: n.cfg.Instance, View: n.view, StableSeq: n.low, NextSeq: n.lastDecided + 1, From: n.cfg.ID})
}

// Suspect starts a view change on external evidence: the RCC layer's
// soft-failure detector says this instance lags too far behind the others.
func (n *Node) Suspect() {
	if n.changing {
		return
	}
	n.stats.Suspicions++
	n.startViewChange(n.view + 1)
}
