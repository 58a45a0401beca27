package replica

import (
	"fmt"
	"slices"

	"github.com/braid-bft/braid/app/mux"
	"github.com/braid-bft/braid/ledger"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/pbft"
	"github.com/braid-bft/braid/storage"
)

// State transfer by replay. A replica behind a stable checkpoint fetches
// the missing ledger blocks up to it from one of the checkpoint's signers
// and re-executes them on a staged copy of its state. Nothing is installed
// — not a block, not the application state — until the whole range
// replayed to exactly the certified digest over (block hash, state digest),
// where the state digest binds the application and the paradigm state; the
// blocks chain from our head to the certified block, so every one of them
// is authenticated by the checkpoint. Then blocks, paradigm state and a
// snapshot land in one atomic write. A peer whose answer does not verify is
// charged, its staged blocks are discarded, and it is not asked again while
// another signer is left.

type transfer struct {
	target pbft.StateTransfer
	peers  []msg.ReplicaID // signers of the checkpoint, tried in turn
	next   int
	asked  int64 // tick of the last request

	// The staged replay, all from source; nil until the first answer.
	source msg.ReplicaID
	app    *mux.App
	table  executed
	head   msg.Digest
	height uint64
	blocks []*ledger.Block
	bytes  int

	overflows int // sources whose answers crossed maxStagedBytes
}

const transferRetryTicks = 50

// maxStagedBytes bounds what a transfer holds before installing it: the
// encoded blocks plus stagedRequestCost per request (its decoded form and
// the exactly-once entry it may add). A peer whose answer crosses it is
// treated like one that served a bad block; a replica further behind than
// this from every signer cannot catch up by replay (a snapshot transfer
// would be needed) and says so instead of growing without limit.
const (
	maxStagedBytes    = 512 << 20
	stagedRequestCost = 512
)

func (r *Replica) startTransfer(st *pbft.StateTransfer) {
	if st.Seq <= r.round || (r.xfer != nil && r.xfer.target.Seq >= st.Seq) {
		return
	}
	x := &transfer{target: *st}
	for _, c := range st.Proof {
		if c.From != r.id {
			x.peers = append(x.peers, c.From)
		}
	}
	if len(x.peers) == 0 {
		return
	}
	// Start at a different signer each time, so that one that misbehaves
	// without being caught (slow, silent) is not always asked first.
	x.next = int(r.ticks % int64(len(x.peers)))
	r.xfer = x
	r.log.Info("behind a stable checkpoint: fetching blocks", "from", r.round+1, "to", st.Seq)
	r.askNext()
}

// askNext asks the next signer not known to be bad, starting the staged
// replay afresh (a staged range comes from one peer only, so a bad answer
// is pinned on the peer that gave it).
func (r *Replica) askNext() {
	x := r.xfer
	if x == nil {
		return
	}
	if !slices.ContainsFunc(x.peers, func(p msg.ReplicaID) bool { return !r.badSource[p] }) {
		r.badSource = map[msg.ReplicaID]bool{} // every signer failed once: try them all again
	}
	peer := x.peers[x.next%len(x.peers)]
	for r.badSource[peer] {
		x.next++
		peer = x.peers[x.next%len(x.peers)]
	}
	x.next++
	x.asked = r.ticks
	x.source, x.app, x.table, x.blocks, x.bytes = peer, nil, nil, nil, 0
	x.head, x.height = r.head, r.round
	_ = r.peers.Send(int(peer), msg.Marshal(&msg.Fetch{From: r.round + 1, To: x.target.Seq, Sender: r.id}))
}

// askMore continues the staged replay from the same peer.
func (r *Replica) askMore() {
	x := r.xfer
	x.asked = r.ticks
	_ = r.peers.Send(int(x.source), msg.Marshal(&msg.Fetch{From: x.height + 1, To: x.target.Seq, Sender: r.id}))
}

// onTickTransfer retries with another peer when an answer does not come.
func (r *Replica) onTickTransfer() {
	if r.xfer != nil && r.ticks-r.xfer.asked >= transferRetryTicks {
		r.askNext()
	}
}

// serveFetch answers a peer's Fetch from our ledger.
func (r *Replica) serveFetch(from int, f *msg.Fetch) {
	if f.Sender != msg.ReplicaID(from) || f.From == 0 || f.From > f.To || f.To > r.round {
		return
	}
	to := min(f.To, f.From+msg.MaxFetchBlocks-1)
	out := &msg.Blocks{From: f.From, Sender: r.id}
	size := 0
	for h := f.From; h <= to; h++ {
		b, err := r.store.Block(h)
		if err != nil {
			r.log.Warn("cannot serve a fetch", "peer", from, "height", h, "err", err)
			return
		}
		enc := b.Encode()
		if size += len(enc); size > msg.MaxMessageBytes/2 {
			break
		}
		out.Blocks = append(out.Blocks, enc)
	}
	if last := f.From + uint64(len(out.Blocks)) - 1; last == f.To {
		p, err := r.store.GetMeta(paradigmKey(f.To))
		if err != nil {
			return // not a checkpoint we kept: the peer asks another signer
		}
		out.Paradigm = p
	}
	_ = r.peers.Send(from, msg.Marshal(out))
}

// reject charges the staged source for an answer that does not verify and
// moves on to another signer.
func (r *Replica) reject(from int, why string, args ...any) {
	x := r.xfer
	r.badSource[x.source] = true
	r.charged[x.source]++
	r.log.Warn("rejected fetched blocks; discarding the staged transfer and asking another signer",
		append([]any{"peer", from, "why", why, "charged", r.charged[x.source]}, args...)...)
	r.askNext()
}

// onBlocks stages and replays blocks fetched for a transfer; the last
// answer is verified against the certified checkpoint before anything is
// installed.
func (r *Replica) onBlocks(from int, bl *msg.Blocks) {
	x := r.xfer
	if x == nil || bl.Sender != msg.ReplicaID(from) || msg.ReplicaID(from) != x.source || bl.From != x.height+1 || len(bl.Blocks) == 0 {
		return // not the answer we wait for (late, duplicate or unasked): ignore, uncharged
	}
	if x.app == nil { // first answer: stage a copy of our executed state
		snap, err := r.app.Snapshot()
		if err != nil {
			r.fail("snapshot for state transfer", err)
			return
		}
		x.app = mux.New(kvScope(r.cfg))
		if err := x.app.Restore(snap); err != nil {
			r.fail("stage state for transfer", err)
			return
		}
		x.table = r.table.clone()
	}
	for i, enc := range bl.Blocks {
		b, err := ledger.DecodeBlock(enc)
		switch {
		case err != nil:
			r.reject(from, "undecodable block", "height", bl.From+uint64(i), "err", err)
			return
		case b.Height != bl.From+uint64(i) || b.Height > x.target.Seq:
			r.reject(from, "block at the wrong height", "height", b.Height)
			return
		case b.Prev != x.head:
			r.reject(from, "block does not chain", "height", b.Height)
			return
		}
		if _, err := replayBlock(x.app, x.table, b, r.id); err != nil {
			r.reject(from, "block does not replay", "height", b.Height, "err", err)
			return
		}
		if x.bytes += len(enc) + stagedRequestCost*len(b.Requests); x.bytes > r.stagedLimit {
			x.overflows++
			if x.overflows >= len(x.peers) {
				r.log.Error("state transfer too large to stage from any signer; this replica cannot catch up by replay",
					"staged_bytes", x.bytes, "limit", r.stagedLimit, "from", r.round+1, "to", x.target.Seq)
				r.xfer = nil
				return
			}
			r.reject(from, "staged transfer over its memory bound", "staged_bytes", x.bytes)
			return
		}
		x.head, x.height = b.Hash(), b.Height
		x.blocks = append(x.blocks, b)
	}
	if x.height < x.target.Seq {
		r.askMore()
		return
	}
	last := x.blocks[len(x.blocks)-1]
	state := stateDigest(x.app, bl.Paradigm)
	if state != last.StateDigest || ledger.CheckpointDigest(x.head, state) != x.target.State {
		r.reject(from, "replayed state does not match the certified checkpoint", "round", last.Height)
		return
	}
	r.install(x, bl.Paradigm)
}

// install makes a verified transfer durable in one atomic write, then
// adopts it.
func (r *Replica) install(x *transfer, paradigm []byte) {
	snap, err := x.app.Snapshot()
	if err != nil {
		r.fail("snapshot of transferred state", err)
		return
	}
	if err := r.node.SetState(paradigm); err != nil {
		// The digest matched, so every correct replica executed this state:
		// a paradigm state we cannot parse is our bug, not the peer's.
		r.fail("install transferred paradigm state", err)
		return
	}
	w := &storage.Batch{
		Blocks:    x.blocks,
		Snapshots: []storage.Snapshot{{Round: x.height, Data: encodeSnapshot(snap, x.table)}},
		Meta:      []storage.Meta{{Key: paradigmMeta, Val: paradigm}, {Key: paradigmKey(x.height), Val: paradigm}},
	}
	if err := r.store.Apply(w); err != nil {
		r.fail(fmt.Sprintf("install transferred blocks %d..%d", r.round+1, x.height), err)
		return
	}
	r.app, r.table, r.head, r.round = x.app, x.table, x.head, x.height
	for _, b := range x.blocks[max(0, len(x.blocks)-4*r.cfg.CheckpointInterval):] {
		r.recent[b.Height] = [2]msg.Digest{b.Hash(), b.StateDigest} // so their certificates get stored
	}
	r.lastParadigm = paradigm
	r.progress.Store(r.round)
	r.xfer = nil
	r.log.Info("state transfer done", "round", r.round, "blocks", len(x.blocks), "source", x.source)
	r.node.StateTransferred(r.round, r.table.lastNums())
	r.compactTo = max(r.compactTo, r.round) // the instances moved their low watermarks to the checkpoint
	r.node.Announce()
}

func paradigmKey(round uint64) string { return fmt.Sprintf("paradigm/%d", round) }
