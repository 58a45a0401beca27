package rcc

import (
	"fmt"
	"github.com/braid-bft/braid/defaults"

	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/pbft"
	"github.com/braid-bft/braid/quorum"
)

// Policy is how failed primaries are dealt with (Section 3.2).
type Policy uint8

const (
	// Replace is unified primary replacement (Figure 4): a failed primary is
	// replaced by the smallest-id replica neither failed nor in use. It
	// needs spare replicas: m ≤ n − f.
	Replace Policy = iota + 1
	// InPlace is discarding primaries and in-place recovery (Section 3.2.1):
	// the failed instance skips rounds, then gets its own primary back, the
	// skip doubling with each further failure. It needs m > f, so that some
	// instance has a correct primary whichever f replicas are faulty, and is
	// the only choice when m > n − f.
	InPlace
)

func (p Policy) String() string {
	switch p {
	case Replace:
		return "replace"
	case InPlace:
		return "in-place"
	}
	return "unknown"
}

// Config parameterises the paradigm on one replica.
type Config struct {
	ID msg.ReplicaID
	N  int
	M  int // instances, 1 ≤ M ≤ N
	// Instance is the template for every instance's PBFT configuration
	// (ID, N, Instance, Primary, Leader and Skip are filled in here).
	Instance pbft.Config
	// Policy defaults to Replace when M ≤ N − f and InPlace otherwise.
	Policy Policy
	// Sigma is the gap size of Definition 4.3: an instance that has decided
	// Sigma rounds fewer than the most advanced instance is suspected. It
	// must stay well below the window, or the healthy instances run out of
	// window (their checkpoints wait on execution, which waits on the
	// laggard) before the laggard is detected. Default Window/2.
	Sigma uint64
	// Epsilon is the skip size: after its failure decision in round ρ an
	// instance contributes nothing to rounds ρ+1 … ρ+ε−1 (agreed no-ops;
	// execution does not wait for them) and resumes at ρ+ε. Doubled per
	// repeated failure under InPlace. Default CheckpointInterval/2.
	Epsilon uint64
	// MaxSkip caps the doubling penalty of in-place recovery, in rounds:
	// past it a primary that keeps failing is retried at a fixed interval.
	// Default 64·Epsilon.
	MaxSkip uint64
	// Clients are the admitted client ids C (any order and values;
	// duplicates count once). Only they may change instance, and the load
	// cap of Section 4.2 is ⌈|C|/(m−f)⌉ (the paper's ⌈|C|/(n−f)⌉ at m = n;
	// clients.go says why m). Empty disables instance changes.
	Clients []msg.ClientID
}

func (c *Config) setDefaults() error {
	if c.N < 1 {
		return fmt.Errorf("rcc config: field N: %d, need at least 1", c.N)
	}
	if c.M < 1 || c.M > c.N || c.M > MaxOrderSize {
		return fmt.Errorf("rcc config: field M: %d outside [1, min(N=%d, %d)]", c.M, c.N, MaxOrderSize)
	}
	f := quorum.Faults(c.N)
	if c.Policy == 0 {
		c.Policy = Replace
		if c.M > c.N-f {
			c.Policy = InPlace
		}
	}
	if c.Policy == Replace && c.M > c.N-f {
		return fmt.Errorf("rcc config: field Policy: replace needs m ≤ n−f (m=%d, n−f=%d); use in-place", c.M, c.N-f)
	}
	if c.Policy == InPlace && c.M <= f {
		// Its own primary always comes back, so f faulty replicas could
		// hold every instance for good.
		return fmt.Errorf("rcc config: field Policy: in-place needs m > f (m=%d, f=%d), or the f faulty replicas can be every instance's primary for good; use replace", c.M, f)
	}
	if c.Policy != Replace && c.Policy != InPlace {
		return fmt.Errorf("rcc config: field Policy: unknown policy %d", c.Policy)
	}
	k := c.Instance.CheckpointInterval
	if k == 0 {
		k = defaults.CheckpointInterval
	}
	w := c.Instance.Window
	if w == 0 {
		w = defaults.WindowIntervals * k
	}
	if c.Sigma == 0 {
		c.Sigma = defaults.Sigma(w)
	}
	if c.Epsilon == 0 {
		c.Epsilon = defaults.Epsilon(k)
	}
	if c.MaxSkip == 0 {
		c.MaxSkip = defaults.MaxSkip(c.Epsilon)
	}
	if c.Sigma+k >= w {
		return fmt.Errorf("rcc config: field Sigma: %d plus the checkpoint interval %d must stay below the window %d, or healthy instances stall before a laggard is suspected", c.Sigma, k, w)
	}
	return nil
}

// Round is one executed round. Entries are its requests in the one order
// every correct replica executes them: the non-empty batches of the m
// decisions in the order Figure 3 chose, each batch's requests in batch
// order, instance changes in their place, minus requests from clients not
// served by the instance that ordered them.
type Round struct {
	Round   uint64
	Seed    [32]byte
	Entries []Entry
	// Batches are the batches S the round executes (non-empty, of
	// instances not sitting the round out), in execution order: what was
	// agreed, to be bound into the shell's digests. The shell executes
	// Entries, never these.
	Batches []BatchRef
	// Failures lists the instances whose failure decision fell in this
	// round, with the primary each one now has (Figure 4, or its own one
	// under in-place recovery).
	Failures []Failure
	// State is the paradigm's replicated state right after this round
	// (see State): the shell checkpoints it with the application state.
	State []byte
}

// BatchRef names one instance's decided batch in a round.
type BatchRef struct {
	Instance uint32
	View     uint64
	Digest   msg.Digest
}

// Entry is one request to execute.
//
// The shell executes Op — every Entry: duplicates, numbers at or below the
// client's last executed one, never reach it (see Node.last) — and replies
// with Outcome and Instance. An instance change (Outcome Moved or
// NotMoved) executes the operation it carries either way, so a block that
// stores the executed Requests replays exactly: execute each request's Op,
// or for an instance change the operation msg.ParseInstanceChange returns.
type Entry struct {
	Instance uint32      // the instance that ordered it
	View     uint64      // the view it was ordered in
	Request  msg.Request // as the client signed it
	// Op is what the application executes: Request.Op, or the operation an
	// instance change carries.
	Op []byte
	// Outcome is msg.Executed for an ordinary request; for an instance
	// change msg.Moved (the client is served by Instance from now on) or
	// msg.NotMoved (Refusal says why).
	Outcome msg.Outcome
	Refusal Refusal
}

// Failure is an instance's agreed failure decision, executed in a round.
type Failure struct {
	Instance   uint32
	View       uint64
	NewPrimary msg.ReplicaID
	Resume     uint64 // first round the instance contributes to again
}

// Ready is what the paradigm wants done: the instances' outputs merged, and
// the rounds that became executable, in round order.
type Ready struct {
	Persist       []msg.Message
	Messages      []pbft.Outbound
	Rounds        []Round
	StateTransfer *pbft.StateTransfer
	// Certificates are the stable checkpoints reached (instance 0's: every
	// instance checkpoints the same digest), for the shell to store with
	// their blocks once the records above are durable.
	Certificates []Certificate
}

// Node runs m PBFT instances side by side and weaves their decisions into
// one order. No instance waits for another to decide: decisions of later
// rounds are buffered while execution waits for all m decisions of the
// next round.
type Node struct {
	cfg      Config
	f        int
	inst     []*pbft.Node
	pending  map[uint64][]*pbft.Decision // round → decision per instance
	executed uint64
	// last is the exactly-once table's number column: per client, the
	// highest request number executed. This layer is the one owner of
	// exactly-once — it drops a number at or below it from the rounds it
	// hands the shell, and tells the ordering instance (ClientExecuted) —
	// so the shell executes every Entry it gets. It is not part of State:
	// the shell's durable reply table holds the same numbers and hands
	// them back on Restore and StateTransferred.
	last        map[msg.ClientID]uint64
	prim        *primaries
	clients     *assignment
	tick        int64
	entered     []int64 // tick each instance last entered a view (soft-failure grace)
	lagSince    []int64 // tick an instance started lagging without progress, 0 if not
	wasChanging []bool
	lagAt       []uint64
	pushTo      []uint64 // per instance: propose at least up to this round (pending client moves)
	working     []uint64 // per instance: highest round it accepted a pre-prepare with requests for (see keepUp)
	views       []uint64
	ready       Ready
	has         bool
	stats       Stats
	stateCache  []byte // encoded State, nil when it must be re-encoded
}

// Stats counts what the paradigm layer did.
type Stats struct {
	RoundsExecuted    uint64
	EmptyProposals    uint64 // proposals made to keep up with other instances (empty, or with whatever was queued)
	EarlyFills        uint64 // of those, the ones made on another instance's pre-prepare, before any instance decided the round
	SoftFailures      uint64 // suspicions under Definition 4.3 (gap ≥ σ)
	MaxSuspicionGap   uint64 // the largest gap (rounds) seen at a soft-failure suspicion
	FirstSuspicionGap uint64 // the gap at the first one
	StalledSuspicions uint64 // suspicions of an instance lagging with no progress at all
	Failures          uint64
	IgnoredFailures   uint64 // failure decisions that fell inside a skipped range
	InstanceChanges   uint64 // instance-change requests executed
	RefusedChanges    uint64 // of those, the ones that did not move their client
	Filtered          uint64 // requests dropped at execution: wrong instance for their client
	Duplicates        uint64 // requests dropped at execution: their number already executed
}

// LeaderOf names who runs instance i's view change to view v: a static
// rotation, known to all without agreement. Only the NewView comes from it;
// who proposes afterwards is the agreed primary. The rotation is the
// initial primary rule's (msg.PrimaryOf), so view 0's leader is its primary.
func LeaderOf(n int, instance uint32, view uint64) msg.ReplicaID {
	return msg.PrimaryOf(n, instance, view)
}

// New creates the m instances.
func New(cfg Config) (*Node, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	nd := &Node{
		cfg: cfg, f: quorum.Faults(cfg.N), pending: make(map[uint64][]*pbft.Decision), last: map[msg.ClientID]uint64{},
		prim:    newPrimaries(cfg.N, cfg.M, cfg.Policy),
		clients: newAssignment(cfg.M, cfg.Clients, quorum.Faults(cfg.N)),
		entered: make([]int64, cfg.M), views: make([]uint64, cfg.M),
		lagSince: make([]int64, cfg.M), lagAt: make([]uint64, cfg.M), pushTo: make([]uint64, cfg.M),
		working:     make([]uint64, cfg.M),
		wasChanging: make([]bool, cfg.M),
	}
	for i := range nd.entered {
		nd.entered[i] = -1 << 40 // no grace before the first view change
	}
	for i := 0; i < cfg.M; i++ {
		ic := cfg.Instance
		ic.ID, ic.N, ic.Instance = cfg.ID, cfg.N, uint32(i)
		inst, n := uint32(i), cfg.N
		ic.Primary = func(v uint64) msg.ReplicaID { return nd.prim.primary(inst, v) }
		ic.Leader = func(v uint64) msg.ReplicaID { return LeaderOf(n, inst, v) }
		// The NewView appends one no-op, marked as the failure decision;
		// the rounds the instance then sits out are skipped by this layer
		// (see executeReady), so a long penalty costs no messages and is
		// not bounded by the window.
		ic.Skip = func(uint64) uint64 { return 1 }
		ic.ResumeHint = func() uint64 { return nd.prim.resume[inst] }
		p, err := pbft.New(ic)
		if err != nil {
			return nil, fmt.Errorf("rcc instance %d: %w", i, err)
		}
		nd.inst = append(nd.inst, p)
	}
	return nd, nil
}

// skipFor is how many rounds instance i is excluded from after its k-th
// failure: ε under replacement; ε·2^(k−1) under in-place recovery, so a
// primary that keeps failing costs exponentially less often. k is counted
// from executed failure decisions, so every correct replica agrees on it.
func (nd *Node) skipFor(k uint64) uint64 {
	if nd.cfg.Policy == InPlace && k > 1 {
		return min(nd.cfg.Epsilon<<min(k-1, 30), nd.cfg.MaxSkip)
	}
	return nd.cfg.Epsilon
}

// Instance exposes instance i (read-only use: views, stats).
func (nd *Node) Instance(i int) *pbft.Node { return nd.inst[i] }

// Config returns the effective configuration (defaults applied).
func (nd *Node) Config() Config { return nd.cfg }

// Executed is the last executed round.
func (nd *Node) Executed() uint64 { return nd.executed }

// Stats returns the paradigm counters.
func (nd *Node) Stats() Stats { return nd.stats }

// Primaries returns each instance's current agreed primary.
func (nd *Node) Primaries() []msg.ReplicaID { return append([]msg.ReplicaID(nil), nd.prim.current...) }

// Failed returns the replicas Figure 4 currently considers failed, earliest first.
func (nd *Node) Failed() []msg.ReplicaID { return append([]msg.ReplicaID(nil), nd.prim.failed...) }

// InstanceFailures reports instance i's executed failure decisions and the
// first round it contributes to again (0 if it never sat rounds out): how an
// operator tells a primary that keeps failing, and an instance sitting out a
// skip, from a healthy one. Read-only.
func (nd *Node) InstanceFailures(i int) (failures, resume uint64) {
	return nd.prim.failures[i], nd.prim.resume[i]
}

// InstanceFor is the instance that serves client c in the next round to
// execute: id(c) mod m (Section 4.2), unless an instance change moved it.
func (nd *Node) InstanceFor(c msg.ClientID) uint32 { return nd.clients.instanceOf(c, nd.executed+1) }

// route is where a request of c should be ordered: its instance once any
// pending move has taken effect (the new instance proposes it only in
// rounds from the move's effective round on, see keepUp).
func (nd *Node) route(c msg.ClientID) uint32 { return nd.clients.final(c) }

// Request routes a client's request to the instance that serves it, or, for
// an instance-change request, to the instance it asks for.
func (nd *Node) Request(r msg.Request) {
	i := nd.route(r.Client)
	if target, _, ok := msg.ParseInstanceChange(r.Op); ok && int(target) < nd.cfg.M {
		i = target
	}
	nd.inst[i].Request(r)
	nd.collect()
}

// ProposeQueued lets every instance's primary cut a partial batch of what
// it queued, pipeline permitting (pbft.Node.ProposeQueued): the shell calls
// it once per pass of its loop.
func (nd *Node) ProposeQueued() {
	for _, p := range nd.inst {
		p.ProposeQueued()
	}
	nd.collect()
}

// Step routes a protocol message to its instance.
func (nd *Node) Step(from msg.ReplicaID, m msg.Message) {
	i := msg.InstanceOf(m)
	if int(i) >= nd.cfg.M {
		return
	}
	if cr, ok := m.(*msg.ClientRequest); ok {
		// A relayed request must be for this instance's client, or an
		// instance change addressed to it.
		if target, _, isChange := msg.ParseInstanceChange(cr.Request.Op); !(isChange && target == i) && nd.route(cr.Request.Client) != i {
			return
		}
	}
	nd.inst[i].Step(from, m)
	nd.collect()
}

// Tick advances every instance's clock and runs the soft-failure detector.
func (nd *Node) Tick() {
	nd.tick++
	for _, p := range nd.inst {
		p.Tick()
	}
	nd.detectSoftFailures()
	nd.collect()
}

// detectSoftFailures is Definition 4.3: an instance still working on round
// ρ while another works on ρ+σ is suspected, which drives it through its own
// view change to a failure decision. An instance that just entered a view
// gets one view-change timeout of grace to catch up.
func (nd *Node) detectSoftFailures() {
	front := nd.front()
	grace := int64(nd.inst[0].ViewChangeTimeout())
	for i, p := range nd.inst {
		v, changing := p.View()
		if v != nd.views[i] || (nd.wasChanging[i] && !changing) {
			// The grace period counts from entering the new view, not
			// from starting the view change.
			nd.views[i], nd.entered[i] = v, nd.tick
		}
		nd.wasChanging[i] = changing
		if changing || nd.tick-nd.entered[i] < grace || p.Behind() {
			continue
		}
		decided := p.LastDecided()
		if r := nd.prim.resume[i]; r > 0 {
			decided = max(decided, r-1) // rounds it sits out count as done
		}
		// The gap is measured to what the primary has proposed: rounds it
		// proposed and that are still deciding are the replicas' delay,
		// not its own (pbft.Node.ProposedThrough).
		proposed := max(decided, p.ProposedThrough())
		if front >= proposed+nd.cfg.Sigma {
			nd.stats.SoftFailures++
			nd.stats.MaxSuspicionGap = max(nd.stats.MaxSuspicionGap, front-proposed)
			if nd.stats.FirstSuspicionGap == 0 {
				nd.stats.FirstSuspicionGap = front - proposed
			}
			p.Suspect()
			continue
		}
		// Below the gap size, an instance that lags and does not move at
		// all for a progress timeout is suspected too: its primary owes the
		// others proposals (empty ones if idle), so a silent primary cannot
		// hold execution back just because the load is too light to open a
		// gap of σ.
		if front > decided {
			if nd.lagSince[i] == 0 || nd.lagAt[i] != decided {
				nd.lagSince[i], nd.lagAt[i] = nd.tick, decided
			} else if nd.tick-nd.lagSince[i] >= int64(p.ProgressTimeout()) {
				nd.stats.StalledSuspicions++
				nd.lagSince[i] = 0
				p.Suspect()
			}
		} else {
			nd.lagSince[i] = 0
		}
	}
}

// front is the highest round any instance taking part in the next round
// has decided. An instance sitting out a skip is left out: the no-ops its
// view change agreed on can run far ahead, and chasing them would make the
// healthy instances look σ behind.
func (nd *Node) front() uint64 {
	f := nd.executed
	for i, p := range nd.inst {
		if !nd.skipped(i, nd.executed+1) {
			f = max(f, p.LastDecided())
		}
	}
	return f
}

// fillLead is how far past an instance's decided rounds its pre-prepares
// pull the other primaries' fills (see keepUp): the round it works on and
// the next, so a second request arriving while the first is in flight
// does not wait for a decision either.
const fillLead = 2

// keepUp makes primaries of instances that are behind propose (empty if
// need be) up to the front, so execution never waits on an idle instance.
//
// The front is the highest round any instance decided — and, so that at
// light load a round does not pay for a second consensus, the highest round
// another instance is working on: as soon as this replica accepts instance
// i's pre-prepare with requests for round r (valid, from i's current primary
// in i's current view: pbft accepted it), an idle primary fills up to r, and
// the fills' consensus runs alongside i's instead of after it. Proposing
// earlier cannot break agreement: each instance is its own PBFT, and a fill
// is an ordinary proposal by its primary for a round it has not proposed
// (NextProposal only grows). What bounds the work is this: a pre-prepare
// pulls fills at most fillLead rounds past what its own instance has decided
// here, so a Byzantine primary's far-ahead pre-prepare (anywhere in its
// window) moves the others by fillLead rounds, and further only as its own
// instance really decides; a fill never reaches past the round that pulled
// it, so fills (empty, or carrying what their primary had queued) pull no
// further; and the window caps everything (ProposeEmpty). The lead stays
// below σ, so fills running ahead of a slow instance cannot by themselves
// open the gap that suspects it. The cost is one uint64 per instance and a
// scan of what the instances persist.
//
// Only a pre-prepare with requests or a decision moves the front, so an idle
// cluster stays silent.
func (nd *Node) keepUp() {
	// Unlike the detector's front, this one counts every instance: rounds
	// another instance filled (even with agreed no-ops) can only execute
	// once all instances reach them, and execution is what applies failure
	// decisions and moves clients.
	front := nd.executed
	for _, p := range nd.inst {
		front = max(front, p.LastDecided())
	}
	lead := min(fillLead, max(nd.cfg.Sigma-1, 1))
	for i, p := range nd.inst {
		if !p.IsPrimary() {
			continue
		}
		// A client moving to this instance may be served from round
		// pushTo on: get there (with empty batches if idle) so the move's
		// effective round is reached even under light load.
		target := max(front, nd.pushTo[i])
		work := uint64(0)
		for k, q := range nd.inst {
			if k != i && nd.working[k] != 0 {
				work = max(work, min(nd.working[k], max(q.LastDecided(), nd.executed)+lead))
			}
		}
		before := p.NextProposal() - 1 // the last round proposed
		if before >= max(target, work) {
			continue
		}
		p.ProposeEmpty(max(target, work))
		after := p.NextProposal() - 1
		nd.stats.EmptyProposals += after - before
		if floor := max(target, before); after > floor {
			nd.stats.EarlyFills += after - floor
		}
	}
}

// noteWork records the rounds instance i accepted pre-prepares with
// requests for (rd is what i just persisted: a pre-prepare is persisted
// exactly when the instance accepts it). Empty batches are fills or a
// skip's padding, not work to keep up with; nor are rounds i sits out.
func (nd *Node) noteWork(i int, persisted []msg.Message) {
	for _, m := range persisted {
		pp, ok := m.(*msg.PrePrepare)
		if !ok || pp.Null || pp.Failure || len(pp.Batch.Requests) == 0 || pp.Seq <= nd.executed || nd.skipped(i, pp.Seq) {
			continue
		}
		nd.working[i] = max(nd.working[i], pp.Seq)
	}
}

// Announce makes every instance broadcast its progress (see pbft.Announce).
func (nd *Node) Announce() {
	for _, p := range nd.inst {
		p.Announce()
	}
	nd.collect()
}

// Checkpoint hands every instance the state digest after round k.
func (nd *Node) Checkpoint(round uint64, state msg.Digest) {
	for _, p := range nd.inst {
		p.Checkpoint(round, state)
	}
	nd.collect()
}

// StateTransferred: the shell installed the state at round (including the
// paradigm state it got from State()); instances that were waiting for it
// resume, and execution continues after it.
func (nd *Node) StateTransferred(round uint64, executed map[msg.ClientID]uint64) {
	if round > nd.executed {
		for r := range nd.pending {
			if r <= round {
				delete(nd.pending, r)
			}
		}
		nd.executed = round
	}
	nd.learnExecuted(executed)
	for _, p := range nd.inst {
		p.StateTransferred(round, executed)
	}
	nd.collect()
}

// Certificate is a stable checkpoint: q signed checkpoints over the same
// digest of (round, ledger head, state), to be stored with the block.
type Certificate struct {
	Round uint64
	Proof []msg.Checkpoint
}

// HasReady reports whether there is output.
func (nd *Node) HasReady() bool { return nd.has }

// Ready returns and clears the output.
func (nd *Node) Ready() Ready {
	r := nd.ready
	nd.ready, nd.has = Ready{}, false
	return r
}

// collect drains the instances until quiet, buffering decisions per round
// and executing every round whose m decisions are all known.
func (nd *Node) collect() {
	for {
		progressed := false
		for i, p := range nd.inst {
			if !p.HasReady() {
				continue
			}
			progressed = true
			rd := p.Ready()
			nd.ready.Persist = append(nd.ready.Persist, rd.Persist...)
			nd.noteWork(i, rd.Persist)
			if i == 0 && rd.Stable != 0 {
				// Every instance checkpoints the same (round, ledger head,
				// state) digest; instance 0's certificate serves the ledger.
				nd.ready.Certificates = append(nd.ready.Certificates, Certificate{Round: rd.Stable, Proof: rd.StableProof})
			}
			nd.ready.Messages = append(nd.ready.Messages, rd.Messages...)
			if st := rd.StateTransfer; st != nil {
				if st.Seq <= nd.executed {
					// We already executed past that checkpoint: this
					// instance only has to skip ahead, nothing to fetch.
					p.StateTransferred(nd.executed, nil)
				} else if nd.ready.StateTransfer == nil || st.Seq > nd.ready.StateTransfer.Seq {
					nd.ready.StateTransfer = st
				}
			}
			for k := range rd.Decided {
				d := rd.Decided[k]
				if d.Seq <= nd.executed {
					continue
				}
				row := nd.pending[d.Seq]
				if row == nil {
					row = make([]*pbft.Decision, nd.cfg.M)
					nd.pending[d.Seq] = row
				}
				row[i] = &d
			}
			nd.has = true
		}
		if !progressed {
			break
		}
		nd.keepUp()
		nd.executeReady()
		nd.keepUp() // execution may have set new targets (pushTo)
	}
}

// Restore rebuilds every instance after a restart from the persisted
// records (all instances' records, in order) and the last executed round.
// Rounds decided but not executed before the crash are decided again: the
// instances fetch them from their peers. The paradigm state (primaries,
// assignments) must be restored by the shell first, through SetState.
func (nd *Node) Restore(records []msg.Message, executedRound uint64, executed map[msg.ClientID]uint64) {
	per := make([][]msg.Message, nd.cfg.M)
	for _, m := range records {
		if i := msg.InstanceOf(m); int(i) < nd.cfg.M {
			per[i] = append(per[i], m)
		}
	}
	nd.executed = executedRound
	nd.learnExecuted(executed)
	for i, p := range nd.inst {
		p.Restore(per[i], executedRound, executed)
	}
	nd.collect()
}

// Debug returns a one-line summary of the paradigm state, for logs.
func (nd *Node) Debug() string {
	return fmt.Sprintf("executed=%d primaries=%v failed=%v resume=%v failures=%v",
		nd.executed, nd.prim.current, nd.prim.failed, nd.prim.resume, nd.prim.failures)
}
