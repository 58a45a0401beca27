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

	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/quorum"
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

	why      string // why the latest view change started (ViewChangeReason)
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

	queue    requestQueue
	queued   map[msg.RequestKey]bool // queued at the primary; true: in the relayed lane
	queuedAt int64
	proposed map[msg.RequestKey]struct{}
	watching map[msg.RequestKey]watch // backup: requests relayed to the primary
	// The request timer (timer.go): watchOrder holds the watched requests
	// in arrival order (with stale entries, skipped lazily); the timer runs
	// while timing, since timerAt, for the first current entry.
	watchOrder []watchEntry
	timing     bool
	timerAt    int64
	decided    map[msg.ClientID]uint64   // highest executed request number per client, as the execution layer reports it
	answered   map[msg.ReplicaID]*answer // per replica: its last Status and its answer budget

	tick           int64
	decidedTick    int64 // tick of the last decision (progress timer, padToCheckpoint)
	nextActiveTick int64 // last tick a pre-prepare or vote for slot lastDecided+1 arrived (beacons)
	viewTick       int64 // tick the current view was entered (padOverdue)
	vcDeadline     int64
	vcAttempts     int
	lastBeacon     int64
	replaying      bool
	stats          Stats
	ready          Ready
	pendingReady   bool
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
		queued:   make(map[msg.RequestKey]bool),
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

// ViewChangeReason says why this replica started its latest view change:
// request-timeout, progress-timeout, idle-off-checkpoint,
// view-change-timeout, lagging-instance (the RCC detector) or joined-f+1
// (f+1 others asked for a later view). For logs and metrics.
func (n *Node) ViewChangeReason() string { return n.why }

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
				n.enqueue(w.req, true) // backups time these too
			}
		}
		n.watchOrder, n.timing = nil, false
		n.maybePropose(true)
		return
	}
	for _, key := range sortedKeys(n.watching) {
		n.relay(n.watching[key].req)
	}
	n.unproposeWatched()
	n.restartTimer()
}

// LastDecided is the highest sequence number decided (in order) so far.
func (n *Node) LastDecided() uint64 { return n.lastDecided }

// ProposedThrough is the highest sequence number up to which this replica
// holds an accepted pre-prepare (or a decision) for every round: how far
// the primary has proposed, as seen here. A primary controls only when it
// proposes; once it has, the round decides at the speed of the correct
// replicas. So the soft-failure detector measures a primary by this, not
// by decisions, and a primary whose rounds decide slowly because the
// replicas are busy (every instance shares their cores) is not mistaken
// for one that throttles.
func (n *Node) ProposedThrough() uint64 {
	seq := n.lastDecided
	for {
		s := n.slots[seq+1]
		if s == nil || s.pp == nil {
			return seq
		}
		seq++
	}
}

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
