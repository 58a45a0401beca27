package rcc

import (
	"crypto/sha256"
	"fmt"
	"github.com/braid-bft/braid/internal/wire"

	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/pbft"
)

// executeReady executes rounds in order while all m decisions are known.
// For each round: the failure decisions in it update the agreed primaries
// (Figure 4 or in-place recovery, instance by instance in id order); then
// Figure 3 — S is the non-empty batches ordered by instance id, executed in
// the order f_S(Hash(S) mod |S|!), each batch's requests in batch order with
// instance changes in their place. Requests from clients the ordering
// instance does not serve in this round are dropped, identically everywhere.
func (nd *Node) executeReady() {
	for {
		round := nd.executed + 1
		row := nd.pending[round]
		if row == nil {
			row = make([]*pbft.Decision, nd.cfg.M)
		}
		for i, d := range row {
			if d == nil && !nd.skipped(i, round) {
				return
			}
		}
		var out Round
		delete(nd.pending, round)
		out.Round = round
		for i, d := range row {
			if d == nil || !d.Failure {
				continue
			}
			if nd.skipped(i, round) {
				// A failure decision inside a skipped range has no effect,
				// on every correct replica alike (the new view's marker is
				// placed by resume hints precisely to avoid this; if too few
				// replicas knew the resume round yet, the instance will fail
				// again and its next marker lands right).
				nd.stats.IgnoredFailures++
				continue
			}
			out.Failures = append(out.Failures, nd.applyFailure(i, d.FailureView, round))
		}
		var seeds []SeedEntry
		var batches []*pbft.Decision
		for i, d := range row {
			if d == nil || d.Null || len(d.Batch.Requests) == 0 || nd.skipped(i, round) {
				continue
			}
			seeds = append(seeds, SeedEntry{Instance: uint32(i), Digest: d.Digest})
			batches = append(batches, d)
		}
		out.Seed = RoundSeed(round, seeds)
		for _, idx := range ExecutionOrder(out.Seed, len(batches)) {
			d, inst := batches[idx], seeds[idx].Instance
			out.Batches = append(out.Batches, BatchRef{Instance: inst, View: d.View, Digest: d.Digest})
			for _, r := range d.Batch.Requests {
				e := Entry{Instance: inst, View: d.View, Request: r, Op: r.Op, Outcome: msg.Executed}
				if target, op, ok := msg.ParseInstanceChange(r.Op); ok {
					e.Op = op
					effective := round + 2*nd.cfg.Sigma
					moved, why := nd.clients.change(r.Client, target, inst, round, effective)
					if moved {
						nd.stateCache = nil
						e.Outcome = msg.Moved
						nd.pushTo[target] = max(nd.pushTo[target], effective-1)
					} else {
						e.Outcome, e.Refusal = msg.NotMoved, why
						nd.stats.RefusedChanges++
					}
					nd.stats.InstanceChanges++
				} else if !nd.clients.serves(r.Client, inst, round) {
					nd.stats.Filtered++
					continue
				}
				// A request number executes once, whichever of the original
				// request and an instance change carrying it comes first.
				if r.Number <= nd.last[r.Client] {
					nd.stats.Duplicates++
				} else {
					nd.last[r.Client] = r.Number
					out.Entries = append(out.Entries, e)
				}
				// Only the ordering instance is told. Another one that holds
				// the same number (the original of an instance change) still
				// watches it: if its primary keeps ignoring the client, that
				// watch is what makes it suspected; if it orders the number
				// late, this layer drops the duplicate. (Telling every instance
				// also made the cluster go idle before a lagging replica had
				// caught up: sim long-partition, m = n = 4, seeds 2 and 3.)
				nd.inst[inst].ClientExecuted(r.Client, r.Number)
			}
		}
		nd.executed = round
		nd.stats.RoundsExecuted++
		out.State = nd.State()
		nd.ready.Rounds = append(nd.ready.Rounds, out)
		nd.has = true
		for _, f := range out.Failures {
			nd.inst[f.Instance].ResumeAt(f.Resume)
			nd.inst[f.Instance].PrimaryChanged()
		}
	}
}

// learnExecuted merges the shell's durable exactly-once numbers (after a
// restart or a state transfer) into ours.
func (nd *Node) learnExecuted(executed map[msg.ClientID]uint64) {
	for c, num := range executed {
		if num > nd.last[c] {
			nd.last[c] = num
		}
	}
}

// applyFailure executes instance i's failure decision (made in view v) in
// round: a new primary (or its own under in-place recovery) and a skip.
func (nd *Node) applyFailure(i int, v, round uint64) Failure {
	nd.stateCache = nil
	p := nd.prim.fail(uint32(i), v)
	nd.prim.resume[i] = round + nd.skipFor(nd.prim.failures[i])
	nd.stats.Failures++
	return Failure{Instance: uint32(i), View: v, NewPrimary: p, Resume: nd.prim.resume[i]}
}

// skipped: instance i sits round out — after its failure decision in an
// earlier round and before its resume round. Every correct replica executes
// the same failure decisions in the same rounds, so they agree on which
// rounds are skipped, and execution never waits for them.
func (nd *Node) skipped(i int, round uint64) bool {
	return round < nd.prim.resume[i]
}

// State serialises the paradigm's replicated state (agreed primaries,
// failures, client assignments). It is part of the replica's checkpointed
// state, so state transfer carries it and checkpoints certify it. The
// returned slice is shared: callers must not modify it.
func (nd *Node) State() []byte {
	// It changes only when a failure or an instance change executes, yet
	// every round reports it: encode once per change, not once per round.
	if nd.stateCache == nil {
		b := []byte("braid/rcc-state/v1")
		b = nd.prim.encode(b)
		nd.stateCache = nd.clients.encode(b)
	}
	return nd.stateCache
}

// StateDigest is the digest of State.
func (nd *Node) StateDigest() msg.Digest { return sha256.Sum256(nd.State()) }

// SetState installs a transferred or restored paradigm state; on error
// nothing changes.
func (nd *Node) SetState(b []byte) error {
	tag := []byte("braid/rcc-state/v1")
	if len(b) < len(tag) || string(b[:len(tag)]) != string(tag) {
		return fmt.Errorf("rcc state: bad header")
	}
	d := wire.NewReader(b[len(tag):]).Kind(nil, "rcc state")
	prim := newPrimaries(nd.cfg.N, nd.cfg.M, nd.cfg.Policy)
	if err := prim.decode(d); err != nil {
		return err
	}
	cl := newAssignment(nd.cfg.M, nd.cfg.Clients, nd.f)
	if err := cl.decode(d); err != nil {
		return err
	}
	if err := d.Done(); err != nil {
		return err
	}
	*nd.prim, *nd.clients = *prim, *cl
	nd.stateCache = nil
	for _, p := range nd.inst {
		p.PrimaryChanged()
	}
	return nil
}
