package rcc

import (
	"fmt"

	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/pbft"
)

// Config parameterises the paradigm on one replica.
type Config struct {
	ID msg.ReplicaID
	N  int
	M  int // instances, 1 ≤ M ≤ N
	// Instance is the template for every instance's PBFT configuration
	// (ID, N, Instance and Primary are filled in here).
	Instance pbft.Config
	// Sigma is the gap size of Definition 4.3: an instance that has decided
	// Sigma rounds fewer than the most advanced instance is suspected. It
	// must stay well below the window, or the healthy instances run out of
	// window (their checkpoints wait on execution, which waits on the
	// laggard) before the laggard is detected. Default Window/4.
	Sigma uint64
}

// Round is one executed round: the non-empty batches of the m decisions,
// in the order Figure 3 chose.
type Round struct {
	Round   uint64
	Seed    [32]byte
	Batches []InstanceBatch
}

// InstanceBatch is one instance's decided batch in a round.
type InstanceBatch struct {
	Instance uint32
	Digest   msg.Digest
	View     uint64
	Batch    msg.Batch
}

// Ready is what the paradigm wants done: the instances' outputs merged, and
// the rounds that became executable, in round order.
type Ready struct {
	Persist       []msg.Message
	Messages      []pbft.Outbound
	Rounds        []Round
	StateTransfer *pbft.StateTransfer
}

// Node runs m PBFT instances side by side and weaves their decisions into
// one order. No instance waits for another to decide: decisions of later
// rounds are buffered while execution waits for all m decisions of the
// next round.
type Node struct {
	cfg      Config
	inst     []*pbft.Node
	pending  map[uint64][]*pbft.Decision // round → decision per instance
	executed uint64
	ready    Ready
	has      bool
	stats    Stats
}

// Stats counts what the paradigm layer did.
type Stats struct {
	RoundsExecuted uint64
	EmptyProposals uint64
	SoftFailures   uint64
}

// PrimaryOf is the primary rule the instances share: instance i starts with
// replica i, so the m initial primaries are distinct, and a view change
// hands the instance to the next replica.
func PrimaryOf(n int, instance uint32, view uint64) msg.ReplicaID {
	return msg.ReplicaID((uint64(instance) + view) % uint64(n))
}

// New creates the m instances.
func New(cfg Config) (*Node, error) {
	if cfg.M < 1 || cfg.M > cfg.N {
		return nil, fmt.Errorf("rcc config: field M: %d outside [1, N=%d]", cfg.M, cfg.N)
	}
	nd := &Node{cfg: cfg, pending: make(map[uint64][]*pbft.Decision)}
	for i := 0; i < cfg.M; i++ {
		ic := cfg.Instance
		ic.ID, ic.N, ic.Instance = cfg.ID, cfg.N, uint32(i)
		inst := uint32(i)
		n := cfg.N
		ic.Primary = func(v uint64) msg.ReplicaID { return PrimaryOf(n, inst, v) }
		p, err := pbft.New(ic)
		if err != nil {
			return nil, fmt.Errorf("rcc instance %d: %w", i, err)
		}
		nd.inst = append(nd.inst, p)
	}
	if nd.cfg.Sigma == 0 {
		w := cfg.Instance.Window
		if w == 0 {
			w = 64
		}
		nd.cfg.Sigma = max(w/4, 2)
	}
	return nd, nil
}

// Instance exposes instance i (read-only use: views, stats).
func (nd *Node) Instance(i int) *pbft.Node { return nd.inst[i] }

// Executed is the last executed round.
func (nd *Node) Executed() uint64 { return nd.executed }

// Stats returns the paradigm counters.
func (nd *Node) Stats() Stats { return nd.stats }

// InstanceFor is Section 4.2's static assignment: client c is served by
// instance id(c) mod m.
func (nd *Node) InstanceFor(c msg.ClientID) uint32 { return uint32(uint64(c) % uint64(nd.cfg.M)) }

// Request routes a client's request to the instance that serves it.
func (nd *Node) Request(r msg.Request) {
	i := nd.InstanceFor(r.Client)
	nd.inst[i].Request(r)
	nd.collect()
}

// Step routes a protocol message to its instance.
func (nd *Node) Step(from msg.ReplicaID, m msg.Message) {
	i := msg.InstanceOf(m)
	if int(i) >= nd.cfg.M {
		return
	}
	nd.inst[i].Step(from, m)
	nd.collect()
}

// Tick advances every instance's clock and runs the soft-failure detector.
func (nd *Node) Tick() {
	for _, p := range nd.inst {
		p.Tick()
	}
	nd.detectSoftFailures()
	nd.collect()
}

// detectSoftFailures is Definition 4.3: an instance still working on round
// ρ while another works on ρ+σ is suspected, which drives it through its own
// view change to a new primary.
func (nd *Node) detectSoftFailures() {
	front := nd.front()
	for _, p := range nd.inst {
		if _, changing := p.View(); !changing && front >= p.LastDecided()+nd.cfg.Sigma {
			nd.stats.SoftFailures++
			p.Suspect()
		}
	}
}

// front is the highest round any instance has decided.
func (nd *Node) front() uint64 {
	var f uint64
	for _, p := range nd.inst {
		f = max(f, p.LastDecided())
	}
	return f
}

// keepUp makes primaries of instances that are behind propose (empty if
// need be) up to the front, so execution never waits on an idle instance.
// Only a decision moves the front, so an idle cluster stays silent.
func (nd *Node) keepUp() {
	front := nd.front()
	for _, p := range nd.inst {
		if p.IsPrimary() && p.NextProposal() <= front {
			nd.stats.EmptyProposals += front - p.NextProposal() + 1
			p.ProposeEmpty(front)
		}
	}
}

// Checkpoint hands every instance the state digest after round k.
func (nd *Node) Checkpoint(round uint64, state msg.Digest) {
	for _, p := range nd.inst {
		p.Checkpoint(round, state)
	}
	nd.collect()
}

// StateTransferred: the shell installed the state at round; instances that
// were waiting for it resume, and execution continues after it.
func (nd *Node) StateTransferred(round uint64, executed map[msg.ClientID]uint64) {
	for _, p := range nd.inst {
		p.StateTransferred(round, executed)
	}
	if round > nd.executed {
		for r := range nd.pending {
			if r <= round {
				delete(nd.pending, r)
			}
		}
		nd.executed = round
	}
	nd.collect()
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
			nd.ready.Messages = append(nd.ready.Messages, rd.Messages...)
			if rd.StateTransfer != nil && (nd.ready.StateTransfer == nil || rd.StateTransfer.Seq > nd.ready.StateTransfer.Seq) {
				nd.ready.StateTransfer = rd.StateTransfer
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
	}
}

// executeReady executes rounds in order while all m decisions are known:
// Figure 3 — S is the non-empty batches ordered by instance id, executed in
// the order f_S(Hash(S) mod |S|!).
func (nd *Node) executeReady() {
	for {
		row := nd.pending[nd.executed+1]
		if row == nil {
			return
		}
		for _, d := range row {
			if d == nil {
				return
			}
		}
		round := nd.executed + 1
		delete(nd.pending, round)
		var entries []SeedEntry
		var batches []InstanceBatch
		for i, d := range row {
			if d.Null || len(d.Batch.Requests) == 0 {
				continue
			}
			entries = append(entries, SeedEntry{Instance: uint32(i), Digest: d.Digest})
			batches = append(batches, InstanceBatch{Instance: uint32(i), Digest: d.Digest, View: d.View, Batch: d.Batch})
		}
		seed := RoundSeed(round, entries)
		order := ExecutionOrder(seed, len(batches))
		ordered := make([]InstanceBatch, len(batches))
		for pos, idx := range order {
			ordered[pos] = batches[idx]
		}
		nd.executed = round
		nd.stats.RoundsExecuted++
		nd.ready.Rounds = append(nd.ready.Rounds, Round{Round: round, Seed: seed, Batches: ordered})
		nd.has = true
	}
}

// Restore rebuilds every instance after a restart from the persisted
// records (all instances' records, in order) and the last executed round.
// Rounds decided but not executed before the crash are decided again: the
// instances fetch them from their peers.
func (nd *Node) Restore(records []msg.Message, executedRound uint64, executed map[msg.ClientID]uint64) {
	per := make([][]msg.Message, nd.cfg.M)
	for _, m := range records {
		if i := msg.InstanceOf(m); int(i) < nd.cfg.M {
			per[i] = append(per[i], m)
		}
	}
	for i, p := range nd.inst {
		p.Restore(per[i], executedRound, executed)
	}
	nd.executed = executedRound
	nd.collect()
}
