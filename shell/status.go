package shell

import (
	"slices"

	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/pbft"
	"github.com/braid-bft/braid/rcc"
)

// Status is one consistent snapshot of a replica's protocol state: what its
// metrics and its HTTP status report. Status builds it on the loop, in one
// call, so every field describes the same instant; it shares nothing with
// the shell afterwards, so other goroutines may read it freely. Counters are
// cumulative since the process started (the metrics turn them into rates).
type Status struct {
	ID     msg.ReplicaID
	N, M   int
	Policy string
	// Round is the last executed round (the ledger's height); Head is its
	// block's hash.
	Round uint64
	Head  msg.Digest
	// StableCheckpoint is the last stable checkpoint (instance 0's: every
	// instance checkpoints the same rounds); Round − StableCheckpoint is
	// the checkpoint lag, the rounds not yet certified by a quorum.
	StableCheckpoint uint64
	// Persistence pipeline, in staged batches: Applied staged on the disk,
	// Durable covered by a completed group commit; Held outputs wait for
	// durability.
	Applied, Durable uint64
	Held             int
	// Transferring is set while a state transfer is under way.
	Transferring bool
	// Failed is the fail-stop error, "" while the replica runs.
	Failed string
	// Ingress waiting on the loop for a batch verification, and client
	// batch checks on the workers.
	PeerVerifyQueue, ClientVerifyQueue, ClientVerifyJobs int
	// Ingress counts what admission did with client requests;
	// InvalidSignatures counts peer messages dropped for a bad signature.
	Ingress           Stats
	InvalidSignatures uint64
	// Paradigm is the rcc layer's counters; FailedReplicas those Figure 4
	// currently considers failed.
	Paradigm       rcc.Stats
	FailedReplicas []msg.ReplicaID
	Instances      []InstanceStatus
}

// InstanceStatus is one PBFT instance as this replica sees it.
type InstanceStatus struct {
	Instance int
	// View is the current view; Changing says a view change is under way
	// (the replica suspects the primary), Reason why it started.
	View     uint64
	Changing bool
	Reason   string
	// Primary is the instance's agreed primary: the replica the failure
	// rule (Figure 4) last chose for it, which leads once a view change
	// under way completes. PrimaryFailed says the rule holds it failed.
	Primary       msg.ReplicaID
	PrimaryFailed bool
	// LastDecided, LowWatermark and NextProposal are the instance's
	// sequence numbers (one per round): decided in order, stable
	// checkpoint, next to propose if this replica is its primary.
	LastDecided, LowWatermark, NextProposal uint64
	// Executed counts the requests this instance ordered that the replica
	// executed.
	Executed uint64
	// Failures counts executed failure decisions; ResumeAt is the first
	// round the instance contributes to again after its last one, and
	// Skipping says the next round to execute is below it.
	Failures, ResumeAt uint64
	Skipping           bool
	// Counters is the instance's own drop and event counters (Dropped by
	// reason, Decided, ViewChanges, ...).
	Counters pbft.Stats
}

// Status takes the snapshot. It only reads: calling it never changes what
// the replica does, so the simulator's runs stay the same with or without
// a scraper.
func (s *Shell) Status() Status {
	cfg := s.node.Config()
	st := Status{
		ID: s.id, N: cfg.N, M: cfg.M, Policy: cfg.Policy.String(),
		Round: s.round, Head: s.head, StableCheckpoint: s.node.Instance(0).LowWatermark(),
		Applied: s.applied, Durable: s.durable, Held: len(s.held), Transferring: s.xfer != nil,
		PeerVerifyQueue: s.peerFramesWaiting(), ClientVerifyQueue: len(s.clientQueue), ClientVerifyJobs: s.clientJobs,
		Ingress: s.stats, Paradigm: s.node.Stats(), FailedReplicas: s.node.Failed(),
	}
	if s.failed != nil {
		st.Failed = s.failed.Error()
	}
	for _, n := range s.charged {
		st.InvalidSignatures += n
	}
	primaries := s.node.Primaries()
	for i := range cfg.M {
		p := s.node.Instance(i)
		v, changing := p.View()
		failures, resume := s.node.InstanceFailures(i)
		is := InstanceStatus{
			Instance: i, View: v, Changing: changing, Primary: primaries[i],
			PrimaryFailed: slices.Contains(st.FailedReplicas, primaries[i]),
			LastDecided:   p.LastDecided(), LowWatermark: p.LowWatermark(), NextProposal: p.NextProposal(),
			Failures: failures, ResumeAt: resume, Skipping: s.round+1 < resume, Counters: p.Stats(),
		}
		if changing {
			is.Reason = p.ViewChangeReason()
		}
		if i < len(s.executedBy) {
			is.Executed = s.executedBy[i]
		}
		st.Instances = append(st.Instances, is)
	}
	return st
}
