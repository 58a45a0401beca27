package replica

import (
	"fmt"

	braidapp "github.com/braid-bft/braid/app"
	"github.com/braid-bft/braid/app/mux"
	"github.com/braid-bft/braid/ledger"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/pbft"
	"github.com/braid-bft/braid/rcc"
)

// State transfer by replay. A replica behind a stable checkpoint fetches
// the missing ledger blocks up to it from a peer and re-executes them; it
// trusts nothing it received until the result matches the checkpoint's
// certified digest over (block hash, state digest), where the state digest
// binds the application state and the paradigm state. A Byzantine peer can
// only waste a round trip: the next try asks another replica.

type transfer struct {
	target pbft.StateTransfer
	peers  []msg.ReplicaID // signers of the checkpoint, tried in turn
	next   int
	asked  int64 // tick of the last request
}

const transferRetryTicks = 50

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
	r.xfer = x
	r.log.Info("behind a stable checkpoint: fetching blocks", "from", r.round+1, "to", st.Seq)
	r.askNext()
}

func (r *Replica) askNext() {
	x := r.xfer
	if x == nil {
		return
	}
	peer := x.peers[x.next%len(x.peers)]
	x.next++
	x.asked = r.ticks
	_ = r.peers.Send(int(peer), msg.Marshal(&msg.Fetch{From: r.round + 1, To: x.target.Seq, Sender: r.id}))
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
			return
		}
		out.Paradigm = p
	}
	_ = r.peers.Send(from, msg.Marshal(out))
}

// onBlocks verifies and installs blocks fetched for a transfer.
func (r *Replica) onBlocks(from int, bl *msg.Blocks) {
	x := r.xfer
	if x == nil || bl.Sender != msg.ReplicaID(from) || bl.From != r.round+1 || len(bl.Blocks) == 0 {
		return
	}
	// Replay on a copy; install only if it reaches a verified state.
	snap, err := r.app.Snapshot()
	if err != nil {
		return
	}
	app := mux.New(kvScope(r.cfg))
	if err := app.Restore(snap); err != nil {
		return
	}
	lastNum := make(map[msg.ClientID]uint64, len(r.lastNum))
	for k, v := range r.lastNum {
		lastNum[k] = v
	}
	var blocks []*ledger.Block
	head := r.head
	for i, enc := range bl.Blocks {
		b, err := ledger.DecodeBlock(enc)
		if err != nil || b.Height != bl.From+uint64(i) || b.Prev != head || b.Height > x.target.Seq {
			r.log.Warn("rejected fetched blocks", "peer", from, "height", bl.From+uint64(i), "err", err)
			return
		}
		for _, req := range b.Requests {
			if req.Number > lastNum[req.Client] {
				lastNum[req.Client] = req.Number
			}
			if _, ctl := rcc.ParseInstanceChange(req.Op); ctl {
				continue
			}
			app.Execute(braidapp.CallerID(uint64(req.Client)), req.Op)
		}
		head = b.Hash()
		blocks = append(blocks, b)
	}
	last := blocks[len(blocks)-1]
	if last.Height == x.target.Seq {
		state := stateDigest(app, bl.Paradigm)
		if state != last.StateDigest || ledger.CheckpointDigest(head, state) != x.target.State {
			r.log.Warn("fetched state does not match the certified checkpoint", "peer", from, "round", last.Height)
			return
		}
	}
	// Verified (or an intermediate, hash-chained part of it): install.
	for _, b := range blocks {
		if err := r.store.PutBlock(b); err != nil {
			r.log.Error("cannot store fetched block", "height", b.Height, "err", err)
			return
		}
	}
	r.app, r.lastNum, r.head, r.round = app, lastNum, head, last.Height
	r.progress.Store(r.round)
	if last.Height < x.target.Seq {
		r.askNext() // more to fetch
		return
	}
	if err := r.node.SetState(bl.Paradigm); err != nil {
		r.log.Error("transferred paradigm state rejected", "err", err)
	}
	_ = r.store.PutMeta("paradigm", bl.Paradigm)
	_ = r.store.PutMeta(paradigmKey(last.Height), bl.Paradigm)
	if snap, err := r.app.Snapshot(); err == nil {
		_ = r.store.PutSnapshot(last.Height, snap)
	}
	r.xfer = nil
	r.log.Info("state transfer done", "round", last.Height)
	r.node.StateTransferred(last.Height, r.lastNum)
	r.node.Announce()
}

func paradigmKey(round uint64) string { return fmt.Sprintf("paradigm/%d", round) }
