package shell

import (
	"fmt"
	"log/slog"
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

func (s *Shell) startTransfer(st *pbft.StateTransfer) {
	if st.Seq <= s.round || (s.xfer != nil && s.xfer.target.Seq >= st.Seq) {
		return
	}
	x := &transfer{target: *st}
	for _, c := range st.Proof {
		if c.From != s.id {
			x.peers = append(x.peers, c.From)
		}
	}
	if len(x.peers) == 0 {
		return
	}
	// Start at a different signer each time, so that one that misbehaves
	// without being caught (slow, silent) is not always asked first.
	x.next = int(s.ticks % int64(len(x.peers)))
	s.xfer = x
	s.log.Info("behind a stable checkpoint: fetching blocks", "from", s.round+1, "to", st.Seq)
	s.askNext()
}

// askNext asks the next signer not known to be bad, starting the staged
// replay afresh (a staged range comes from one peer only, so a bad answer
// is pinned on the peer that gave it).
func (s *Shell) askNext() {
	x := s.xfer
	if x == nil {
		return
	}
	if !slices.ContainsFunc(x.peers, func(p msg.ReplicaID) bool { return !s.badSource[p] }) {
		s.badSource = map[msg.ReplicaID]bool{} // every signer failed once: try them all again
	}
	peer := x.peers[x.next%len(x.peers)]
	for s.badSource[peer] {
		x.next++
		peer = x.peers[x.next%len(x.peers)]
	}
	x.next++
	x.asked = s.ticks
	x.source, x.app, x.table, x.blocks, x.bytes = peer, nil, nil, nil, 0
	x.head, x.height = s.head, s.round
	s.sendTo(peer, &msg.Fetch{From: s.round + 1, To: x.target.Seq, Sender: s.id})
}

// askMore continues the staged replay from the same peer.
func (s *Shell) askMore() {
	x := s.xfer
	x.asked = s.ticks
	s.sendTo(x.source, &msg.Fetch{From: x.height + 1, To: x.target.Seq, Sender: s.id})
}

// onTickTransfer retries with another peer when an answer does not come.
func (s *Shell) onTickTransfer() {
	if s.xfer != nil && s.ticks-s.xfer.asked >= transferRetryTicks {
		s.askNext()
	}
}

// serveFetch answers a peer's Fetch from our ledger. The blocks are read
// and encoded off the loop (the disk's reads are safe alongside its writes);
// only blocks we executed — at or below the round when the fetch arrived —
// are served. The answer is drawn from the peer's budget (fetchBudget); a
// Fetch that finds it spent waits for the refill, the latest one only.
func (s *Shell) serveFetch(from msg.ReplicaID, f *msg.Fetch) {
	if f.Sender != from || f.From == 0 || f.From > f.To || f.To > s.round || int(from) >= len(s.fetches) {
		return
	}
	b := s.fetchBudget(from)
	if b.waiting != nil {
		s.stats.FetchOverBudget++ // superseded: a correct replica's latest Fetch is the one it waits for
		b.waiting = nil
	}
	if b.tokens <= 0 {
		b.waiting = f
		return
	}
	s.answerFetch(from, b, f)
}

// answerFetch reads and sends the answer to f, reserving for it what is
// left of the peer's budget (at most half a message): the answer is
// trimmed to the reservation, and once it is encoded the budget is
// charged its real size.
func (s *Shell) answerFetch(from msg.ReplicaID, b *fetchBudget, f *msg.Fetch) {
	limit := min(b.tokens, msg.MaxMessageBytes/2)
	b.tokens -= limit
	disk, log, self := s.disk, s.log, s.id
	var out *msg.Blocks
	s.worker.Go(func() Cost {
		out = readFetch(disk, log, self, from, f, int(limit))
		c := Cost{}
		if out != nil {
			for _, b := range out.Blocks {
				c.Bytes += len(b)
			}
		}
		return c
	}, func() {
		b.tokens += limit
		if out != nil && s.failed == nil {
			frame := msg.Marshal(out)
			b.tokens -= int64(len(frame))
			s.send(output{to: from, m: out, frame: frame})
		}
	})
}

// fetchBudget is one peer's budget for answers to its Fetches: a token
// bucket of Config.FetchAnswerBytes encoded bytes, refilled at that much per
// RetransmitTicks, as the instances' Status answers are (pbft.Config
// AnswerBytes). A Fetch is a few dozen bytes and its answer up to half a
// message, read from the disk and encoded on a worker: without it a peer
// could make us read and send gigabytes a tick. A Fetch is answered while
// the bucket is not empty, so over any T ticks a peer draws at most
// (1 + T/RetransmitTicks)·FetchAnswerBytes, plus what each answer being
// read at once takes beyond its reservation (its framing and paradigm
// state, or a first block larger than what was left).
//
// A correct replica has at most one Fetch out to one peer: it asks for
// the next blocks when an answer arrived (askMore). The default, 64 MiB
// per RetransmitTicks (100 ms at the default tick), is 640 MB/s: above
// what a 1 Gbit/s link (125 MB/s) carries, so an honest transfer does not
// meet it; the simulator's catch-up scenarios run the same, trace for
// trace, with 256 KiB. Where it is met, the Fetch waits for the refill
// (waiting; served by onTickFetch) instead of timing out and starting
// again from another signer. The budget must not be set near an honest
// transfer's rate all the same: a transfer slower than the cluster starts
// afresh at each newer checkpoint (startTransfer) and may never finish —
// with 4 KiB per period the simulator's long-partition replica did not.
type fetchBudget struct {
	tokens   int64 // bytes it may still draw; negative: in debt for the last answer
	refilled int64 // tick of the last refill
	waiting  *msg.Fetch
}

const defaultFetchAnswerBytes = msg.MaxMessageBytes

// fetchBudget returns peer's budget refilled up to now.
func (s *Shell) fetchBudget(peer msg.ReplicaID) *fetchBudget {
	b := &s.fetches[peer]
	if dt := s.ticks - b.refilled; dt > 0 {
		capacity, period := int64(s.fetchBytes), int64(s.retransmitTicks)
		b.tokens = min(capacity, b.tokens+min(dt, period)*max(capacity/period, 1))
		b.refilled = s.ticks
	}
	return b
}

// onTickFetch answers the Fetches that waited for their peer's refill,
// in peer order (the simulator's runs stay deterministic).
func (s *Shell) onTickFetch() {
	for i := range s.fetches {
		if s.fetches[i].waiting == nil {
			continue
		}
		peer := msg.ReplicaID(i)
		if b := s.fetchBudget(peer); b.tokens > 0 {
			f := b.waiting
			b.waiting = nil
			s.answerFetch(peer, b, f)
		}
	}
}

// readFetch reads the answer to a fetch: at most msg.MaxFetchBlocks blocks
// and limit bytes of them, but at least one block; nil when there is none
// to give.
func readFetch(disk Disk, log *slog.Logger, self, from msg.ReplicaID, f *msg.Fetch, limit int) *msg.Blocks {
	to := min(f.To, f.From+msg.MaxFetchBlocks-1)
	out := &msg.Blocks{From: f.From, Sender: self}
	size := 0
	for h := f.From; h <= to; h++ {
		b, err := disk.Block(h)
		if err != nil {
			log.Warn("cannot serve a fetch", "peer", from, "height", h, "err", err)
			return nil
		}
		enc := b.Encode()
		if size += len(enc); size > msg.MaxMessageBytes/2 || (size > limit && len(out.Blocks) > 0) {
			break
		}
		out.Blocks = append(out.Blocks, enc)
	}
	if len(out.Blocks) == 0 {
		return nil
	}
	if last := f.From + uint64(len(out.Blocks)) - 1; last == f.To {
		p, err := disk.GetMeta(ParadigmKey(f.To))
		if err != nil {
			return nil // not a checkpoint we kept: the peer asks another signer
		}
		out.Paradigm = p
	}
	return out
}

// sendTo sends one message to one peer, behind what is being made durable.
func (s *Shell) sendTo(to msg.ReplicaID, m msg.Message) {
	s.send(output{to: to, m: m, frame: msg.Marshal(m)})
}

// reject charges the staged source for an answer that does not verify and
// moves on to another signer.
func (s *Shell) reject(from msg.ReplicaID, why string, args ...any) {
	x := s.xfer
	s.badSource[x.source] = true
	s.charged[x.source]++
	s.log.Warn("rejected fetched blocks; discarding the staged transfer and asking another signer",
		append([]any{"peer", from, "why", why, "charged", s.charged[x.source]}, args...)...)
	s.askNext()
}

// onBlocks stages and replays blocks fetched for a transfer; the last
// answer is verified against the certified checkpoint before anything is
// installed.
func (s *Shell) onBlocks(from msg.ReplicaID, bl *msg.Blocks) {
	x := s.xfer
	if x == nil || bl.Sender != from || from != x.source || bl.From != x.height+1 || len(bl.Blocks) == 0 {
		return // not the answer we wait for (late, duplicate or unasked): ignore, uncharged
	}
	if x.app == nil { // first answer: stage a copy of our executed state
		x.app, x.table = s.app.Clone(), s.table.clone()
	}
	for i, enc := range bl.Blocks {
		b, err := ledger.DecodeBlock(enc)
		switch {
		case err != nil:
			s.reject(from, "undecodable block", "height", bl.From+uint64(i), "err", err)
			return
		case b.Height != bl.From+uint64(i) || b.Height > x.target.Seq:
			s.reject(from, "block at the wrong height", "height", b.Height)
			return
		case b.Prev != x.head:
			s.reject(from, "block does not chain", "height", b.Height)
			return
		}
		if _, err := replayBlock(x.app, x.table, b, s.id); err != nil {
			s.reject(from, "block does not replay", "height", b.Height, "err", err)
			return
		}
		if x.bytes += len(enc) + stagedRequestCost*len(b.Requests); x.bytes > s.stagedLimit {
			x.overflows++
			if x.overflows >= len(x.peers) {
				s.log.Error("state transfer too large to stage from any signer; this replica cannot catch up by replay",
					"staged_bytes", x.bytes, "limit", s.stagedLimit, "from", s.round+1, "to", x.target.Seq)
				s.xfer = nil
				return
			}
			s.reject(from, "staged transfer over its memory bound", "staged_bytes", x.bytes)
			return
		}
		x.head, x.height = b.Hash(), b.Height
		x.blocks = append(x.blocks, b)
	}
	if x.height < x.target.Seq {
		s.askMore()
		return
	}
	last := x.blocks[len(x.blocks)-1]
	state := stateDigest(x.app, bl.Paradigm)
	if state != last.StateDigest || ledger.CheckpointDigest(x.head, state) != x.target.State {
		s.reject(from, "replayed state does not match the certified checkpoint", "round", last.Height)
		return
	}
	s.install(x, bl.Paradigm)
}

// install makes a verified transfer durable in one atomic write, then
// adopts it. Its blocks count toward the next snapshot like executed ones.
func (s *Shell) install(x *transfer, paradigm []byte) {
	if err := s.node.SetState(paradigm); err != nil {
		// The digest matched, so every correct replica executed this state:
		// a paradigm state we cannot parse is our bug, not the peer's.
		s.fail("install transferred paradigm state", err)
		return
	}
	w := &storage.Batch{
		Blocks: x.blocks,
		Meta:   []storage.Meta{{Key: paradigmMeta, Val: paradigm}, {Key: ParadigmKey(x.height), Val: paradigm}},
	}
	if !s.apply(fmt.Sprintf("install transferred blocks %d..%d", s.round+1, x.height), w) {
		return
	}
	s.app, s.table, s.head, s.round = x.app, x.table, x.head, x.height
	for _, b := range x.blocks {
		s.sinceSnapshot += blockWeight(b.Requests)
	}
	for _, b := range x.blocks[max(0, len(x.blocks)-4*int(s.k)):] {
		s.recent[b.Height] = [2]msg.Digest{b.Hash(), b.StateDigest} // so their certificates get stored
	}
	s.lastParadigm = paradigm
	s.xfer = nil
	s.log.Info("state transfer done", "round", s.round, "blocks", len(x.blocks), "source", x.source)
	s.node.StateTransferred(s.round, s.table.lastNums())
	// Sign the checkpoint we now hold: when the target was vouched for by
	// only f+1 replicas (no quorum formed without us), ours completes it.
	s.node.Checkpoint(s.round, x.target.State)
	s.compactTo = max(s.compactTo, s.round) // the instances moved their low watermarks to the checkpoint
	s.node.Announce()
	s.maybeSnapshot()
}

// ParadigmKey names the paradigm state kept with checkpoint round's
// snapshot, to serve state transfers to that checkpoint.
func ParadigmKey(round uint64) string { return fmt.Sprintf("paradigm/%d", round) }
