package shell

import (
	"bytes"
	"fmt"

	"github.com/braid-bft/braid/app"
	"github.com/braid-bft/braid/app/mux"
	"github.com/braid-bft/braid/ledger"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/rcc"
	"github.com/braid-bft/braid/storage"
)

// execute applies one round: the application, the exactly-once table, one
// ledger block, and every K rounds a checkpoint over (block, state) and,
// when it pays for itself, a snapshot (see maybeSnapshot). The round's
// block and its paradigm state are one atomic batch: a crash never restores
// a height with another round's paradigm state. Replies wait for the
// batch's commit.
func (s *Shell) execute(round rcc.Round) {
	if round.Round != s.round+1 {
		s.fail("execute", fmt.Errorf("round %d out of order, want %d", round.Round, s.round+1))
		return
	}
	var reqs []msg.Request
	var orderings []ledger.Ordering
	var results [][]byte
	var replies []*msg.Reply
	// Entries come in the agreed execution order, instance changes in
	// their place, duplicates already dropped: exactly-once is the core's
	// (rcc.Node owns it). A number at or below our table's would execute a
	// request twice — the core and our durable table disagree — so it
	// stops the replica instead.
	for _, e := range round.Entries {
		req := e.Request
		if req.Number <= s.table.last(req.Client) {
			s.fail("execute", fmt.Errorf("round %d: request %d of client %d already executed", round.Round, req.Number, req.Client))
			return
		}
		res := s.app.Execute(app.CallerID(uint64(req.Client)), e.Op)
		o := ledger.Ordering{Instance: e.Instance, Outcome: e.Outcome}
		if e.Outcome == msg.NotMoved {
			s.log.Debug("instance change refused; its operation executed", "client", req.Client, "number", req.Number,
				"target", e.Instance, "why", e.Refusal)
		}
		replies = append(replies, s.finishRequest(req, e.View, o, res))
		if int(e.Instance) >= len(s.executedBy) {
			s.executedBy = append(s.executedBy, make([]uint64, int(e.Instance)+1-len(s.executedBy))...)
		}
		s.executedBy[e.Instance]++
		reqs, orderings, results = append(reqs, req), append(orderings, o), append(results, res)
	}
	state := s.stateDigest(round.State)
	b := &ledger.Block{Height: round.Round, Prev: s.head, Round: round.Round, Requests: reqs, Orderings: orderings,
		ResultsDigest: ledger.ResultsDigest(results), StateDigest: state}
	w := &storage.Batch{Blocks: []*ledger.Block{b}}
	if !bytes.Equal(round.State, s.lastParadigm) { // it changes only on failures and instance changes
		w.Meta = append(w.Meta, storage.Meta{Key: paradigmMeta, Val: round.State})
	}
	checkpoint := round.Round%s.k == 0
	if checkpoint {
		w.Meta = append(w.Meta, storage.Meta{Key: ParadigmKey(round.Round), Val: round.State})
	}
	if !s.apply(fmt.Sprintf("store block %d", b.Height), w) {
		return
	}
	// Results go out now, not once the block is durable: the round is
	// decided, and every replica of its deciding quorum made the prepares
	// behind its commit durable before sending it, so a view change keeps
	// the round and a crash that loses the block re-learns and re-executes
	// it from the same state to the same results. Waiting for the block
	// cost every request one more fsync on its critical path (a quarter of
	// its latency at m = 4; TestRepliesDoNotWaitForTheBlock).
	for _, rep := range replies {
		s.emit(output{reply: rep, frame: msg.Marshal(rep)})
	}
	s.sinceSnapshot += blockWeight(reqs)
	s.lastParadigm = round.State
	s.head, s.round = b.Hash(), round.Round
	s.recent[round.Round] = [2]msg.Digest{s.head, state}
	if s.obs.Executed != nil {
		s.obs.Executed(b, results)
	}
	if checkpoint {
		s.node.Checkpoint(round.Round, ledger.CheckpointDigest(s.head, state))
		s.maybeSnapshot()
	}
	for old := range s.recent {
		if old+4*s.k < round.Round {
			delete(s.recent, old)
		}
	}
}

// Snapshot cadence. A snapshot rewrites the whole state; a block holds only
// its round's requests. Snapshotting at every checkpoint made a large state
// cost its full size every K rounds (the ten-minute benchmark wrote 15 MiB
// per checkpoint, gigabytes in all, on the loop). Instead a checkpoint
// snapshots once the blocks written since the last snapshot weigh at least
// as much as that snapshot: snapshot bytes never exceed block bytes, and a
// restart replays at most about one snapshot's worth of blocks on top of
// it. Snapshots are local (state transfer replays blocks), so replicas need
// not agree on when they take them.
//
// The loop only clones the state (O(1), see mux.App.Clone); a worker
// encodes the clone and writes it as a file of its own while execution and
// commits go on. It needs no atomicity with its block: it is the state after
// a round whose block is already durable, and restart takes the paradigm
// state and the blocks above it from the log as before.

// blockWeight is roughly what a block's requests add to the ledger.
func blockWeight(reqs []msg.Request) int {
	n := 0
	for _, r := range reqs {
		n += len(r.Op) + len(r.Sig) + 32
	}
	return n
}

// maybeSnapshot snapshots the state just executed or installed, when the
// cadence says so and no snapshot is under way. The clone is taken now; the
// job starts once the round's block is durable, so a snapshot on disk is
// never above the ledger's height.
func (s *Shell) maybeSnapshot() {
	if s.snapshot != nil || s.sinceSnapshot < s.snapshotBytes {
		return
	}
	s.snapshot = &snapshotJob{round: s.round, covered: s.sinceSnapshot, need: s.applied,
		app: s.app.Clone(), table: s.table.clone()}
	s.startSnapshot()
}

// snapshotJob is a snapshot waiting for its block's commit or being
// encoded and written.
type snapshotJob struct {
	round   uint64
	covered int    // block weight since the previous snapshot
	need    uint64 // batches that must be durable first
	started bool
	app     *mux.App
	table   executed
}

// startSnapshot starts the pending snapshot's job once its block is durable.
func (s *Shell) startSnapshot() {
	j := s.snapshot
	if j == nil || j.started || j.need > s.durable {
		return
	}
	j.started = true
	disk := s.disk
	var size int
	var err error
	s.worker.Go(func() Cost {
		var snap []byte
		if snap, err = j.app.Snapshot(); err != nil {
			return Cost{}
		}
		data := encodeSnapshot(snap, j.app.DigestLanes(), j.table)
		size = len(data)
		if err = disk.PutSnapshot(j.round, data); err == nil {
			err = disk.TruncateSnapshotsBefore(j.round)
		}
		return Cost{Bytes: size}
	}, func() {
		s.snapshot = nil
		if s.failed != nil {
			return
		}
		if err != nil {
			s.fail(fmt.Sprintf("store snapshot %d", j.round), err)
			return
		}
		s.snapshotted(size, j.covered)
	})
}

// snapshotted notes a stored snapshot of size bytes, covering blocks of
// the given weight.
func (s *Shell) snapshotted(size, covered int) {
	s.snapshotBytes = size
	s.sinceSnapshot = max(0, s.sinceSnapshot-covered)
}

// paradigmMeta names the paradigm state of the last executed round.
const paradigmMeta = "paradigm"

func (s *Shell) finishRequest(req msg.Request, view uint64, o ledger.Ordering, res []byte) *msg.Reply {
	rep := &msg.Reply{Client: req.Client, Number: req.Number, View: view, Outcome: o.Outcome, Instance: o.Instance,
		Result: res, From: s.id, Primary: msg.NoReplica}
	inst := s.node.InstanceFor(req.Client)
	if p := s.node.Instance(int(inst)); p != nil {
		if _, changing := p.View(); !changing {
			rep.Primary = p.Primary()
		}
	}
	s.table[req.Client] = rep
	return rep
}

// stateDigest binds the application state and the paradigm state.
func (s *Shell) stateDigest(paradigm []byte) msg.Digest { return stateDigest(s.app, paradigm) }

// stateDigest is what a block's StateDigest (and so a checkpoint) binds:
// the application digest and the paradigm state. Execution and state
// transfer must compute it the same way.
func stateDigest(a *mux.App, paradigm []byte) msg.Digest {
	d := a.Digest()
	return ledger.ResultsDigest([][]byte{d[:], paradigm})
}

// certify stores a stable checkpoint's certificate with the block it
// covers, then compacts what the checkpoint made obsolete.
func (s *Shell) certify(c rcc.Certificate) {
	at, ok := s.recent[c.Round]
	if !ok {
		return
	}
	if ledger.CheckpointDigest(at[0], at[1]) != c.Proof[0].State {
		// 2f+1 replicas, so at least f+1 correct ones, certified another
		// state for this round than the one we executed: we diverged, and
		// going on would spread it.
		s.fail("certify", fmt.Errorf("stable checkpoint %d does not match our executed state", c.Round))
		return
	}
	cert := &ledger.Certificate{Round: c.Round, BlockHash: at[0], StateDigest: at[1], Signatures: c.Proof}
	if !s.apply(fmt.Sprintf("store certificate %d", c.Round), &storage.Batch{Certificates: []*ledger.Certificate{cert}}) {
		return
	}
	s.compactTo = max(s.compactTo, c.Round)
}
