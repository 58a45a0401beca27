package sim

import (
	"encoding/binary"
	"fmt"
	"maps"

	"github.com/braid-bft/braid/app"
	"github.com/braid-bft/braid/app/kv"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/pbft"
	"github.com/braid-bft/braid/rcc"
	"github.com/braid-bft/braid/sim/simnet"
)

// replica is the simulator's shell around one core: it decodes and verifies
// what the network delivers, persists what the core asks before sending,
// executes decisions on a small deterministic state machine, and answers
// clients. Byzantine behaviours are filters on its inputs and outputs; the
// core inside is always the real, unmodified protocol code.
type replica struct {
	w         *world
	id        msg.ReplicaID
	net       int
	behaviour string
	twinSide  int
	cfg       pbft.Config
	core      *pbft.Node // protocol pbft
	rc        *rcc.Node  // protocol rcc
	up        bool
	ticker    *simnet.Ticker

	disk []msg.Message // persisted records, survive crashes

	// Executed state. It survives a crash because it stands for the
	// durable ledger (issue 4 makes it real); snapshots serve state transfer.
	state    execState
	snaps    map[uint64]execState
	transfer *pbft.StateTransfer

	history [][]byte // replay behaviour: messages seen
	held    []held   // throttle behaviour: proposals not yet released
	ticks   int
}

type held struct {
	to      msg.ReplicaID
	payload []byte
}

// throttleEvery is how many ticks a throttling primary waits between
// releasing proposals: it still decides, 5× slower than a correct primary
// proposing every tick.
const throttleEvery = 5

type execState struct {
	seq     uint64
	chain   msg.Digest
	lastNum map[msg.ClientID]uint64
	replies map[msg.ClientID]*msg.Reply

	executedRequests uint64
	paradigm         []byte    // rcc: the paradigm's replicated state (primaries, assignments)
	app              *kv.Store // the replicated application
}

func freshState() execState {
	return execState{lastNum: map[msg.ClientID]uint64{}, replies: map[msg.ClientID]*msg.Reply{}, app: kv.New(kv.Config{Scope: kv.Shared})}
}

// clone copies the state through the application's own snapshot and
// restore, the path real state transfer takes.
func (s execState) clone() execState {
	c := s
	c.lastNum = maps.Clone(s.lastNum)
	c.replies = maps.Clone(s.replies)
	c.app = kv.New(kv.Config{Scope: kv.Shared})
	snap, err := s.app.Snapshot()
	if err == nil {
		err = c.app.Restore(snap)
	}
	if err != nil {
		panic(fmt.Sprintf("sim: kv snapshot/restore failed: %v", err)) // a bug in app/kv, not bad input
	}
	return c
}

func newReplica(w *world, id msg.ReplicaID, net int, behaviour string) (*replica, error) {
	r := &replica{
		w: w, id: id, net: net, behaviour: behaviour,
		state: freshState(),
		snaps: map[uint64]execState{},
	}
	n := w.n
	r.cfg = pbft.Config{
		ID: id, N: n, Signer: w.keys.replicaSigner(id),
		Primary:  func(v uint64) msg.ReplicaID { return msg.ReplicaID(v % uint64(n)) },
		MaxBatch: 16, CheckpointInterval: 8, Window: 32,
		RequestTimeout: 30, ProgressTimeout: 30, ViewChangeTimeout: 30, RetransmitTicks: 5,
	}
	if err := r.build(); err != nil {
		return nil, err
	}
	return r, nil
}

// build makes a fresh core for the run's protocol.
func (r *replica) build() error {
	if r.w.opts.Protocol == "rcc" {
		admitted := make([]msg.ClientID, r.w.opts.Clients) // the closed-loop clients 0…Clients−1
		for c := range admitted {
			admitted[c] = msg.ClientID(c)
		}
		rc, err := rcc.New(rcc.Config{ID: r.id, N: r.w.n, M: r.w.opts.M, Instance: r.cfg, Clients: admitted, Policy: r.w.opts.Policy, Sigma: r.w.opts.Sigma, Epsilon: r.w.opts.Epsilon})
		r.rc = rc
		return err
	}
	core, err := pbft.New(r.cfg)
	r.core = core
	return err
}

func (r *replica) step(from msg.ReplicaID, m msg.Message) {
	if r.rc != nil {
		r.rc.Step(from, m)
	} else {
		r.core.Step(from, m)
	}
}

// stats sums the instances' counters (one instance under pbft).
func (r *replica) stats() (decided, viewChanges uint64, dropped map[string]uint64) {
	dropped = map[string]uint64{}
	add := func(st pbft.Stats) {
		decided += st.DecidedRequests
		viewChanges += st.NewViews
		for k, v := range st.Dropped {
			dropped[k] += v
		}
	}
	if r.rc == nil {
		add(r.core.Stats())
		return
	}
	for i := 0; i < r.w.opts.M; i++ {
		add(r.rc.Instance(i).Stats())
	}
	return
}

func (r *replica) start() {
	r.up = true
	r.ticker = r.w.s.Every(tickEvery, func() {
		if r.up {
			if r.rc != nil {
				r.rc.Tick()
			} else {
				r.core.Tick()
			}
			r.onTick()
			r.flush()
		}
	})
}

// crash stops the replica and loses everything volatile.
func (r *replica) crash() {
	r.up = false
	r.w.net.Down(r.net)
	r.transfer = nil
}

// loseUnsynced models group commit: blocks executed since the last fsync
// (here: since the last checkpoint snapshot) are lost in the crash. The
// consensus records survive — the shell syncs them before it sends.
func (r *replica) loseUnsynced() {
	var best uint64
	for seq := range r.snaps {
		if seq <= r.state.seq && seq > best {
			best = seq
		}
	}
	if best == 0 {
		r.state = freshState()
	} else {
		r.state = r.snaps[best].clone()
	}
	r.w.chk.reverted(r, r.state.seq)
}

// wipe models a lost disk: no records, no state, no snapshots.
func (r *replica) wipe() {
	r.disk = nil
	r.snaps = map[uint64]execState{}
	r.state = freshState()
	r.w.chk.reverted(r, 0)
}

// announce is what the shell does when a replica (re)connects.
func (r *replica) announce() {
	if !r.up {
		return
	}
	if r.rc != nil {
		r.rc.Announce()
	} else {
		r.core.Announce()
	}
	r.flush()
}

// restart rebuilds the core from its persisted records.
func (r *replica) restart() {
	if err := r.build(); err != nil {
		r.w.chk.violate("restart of replica %d: %v", r.id, err)
		return
	}
	if r.rc != nil {
		if r.state.paradigm != nil {
			if err := r.rc.SetState(r.state.paradigm); err != nil {
				r.w.chk.violate("replica %d: restored paradigm state rejected: %v", r.id, err)
			}
		}
		r.rc.Restore(r.disk, r.state.seq, r.state.lastNum)
	} else {
		r.core.Restore(r.disk, r.state.seq, r.state.lastNum)
	}
	r.up = true
	r.w.net.Up(r.net)
	r.flush()
	r.announce()
}

func (r *replica) receive(from int, payload []byte) {
	if !r.up {
		return
	}
	m, err := msg.Unmarshal(payload)
	if err != nil {
		r.w.dropped["garbage"]++
		return
	}
	if err := msg.Verify(m, r.w.keys); err != nil {
		r.w.dropped["bad-signature"]++
		return
	}
	if r.behaviour == "replay" && len(r.history) < 512 {
		r.history = append(r.history, payload)
	}
	switch x := r.w.byNet[from].(type) {
	case *loadgen:
		cr, ok := m.(*msg.ClientRequest)
		if !ok || cr.Request.Client < loadBase {
			r.w.dropped["client-sent-protocol"]++
			return
		}
		if r.behaviour != "silent" {
			r.onClientRequest(cr.Request)
		}
	case *client:
		cr, ok := m.(*msg.ClientRequest)
		if !ok || cr.Request.Client != x.id {
			r.w.dropped["client-sent-protocol"]++
			return
		}
		if r.behaviour == "silent" {
			return
		}
		r.onClientRequest(cr.Request)
	case *replica:
		if _, ok := m.(*msg.ClientRequest); ok && r.behaviour == "silent" {
			return
		}
		r.step(x.id, m)
	}
	r.flush()
}

// onClientRequest answers from the reply cache if the request already
// executed (exactly-once), and otherwise hands it to the core.
func (r *replica) onClientRequest(req msg.Request) {
	if last := r.state.lastNum[req.Client]; req.Number <= last {
		if rep := r.state.replies[req.Client]; rep != nil && rep.Number == req.Number {
			r.sendClient(req.Client, rep)
		}
		return
	}
	if r.rc != nil {
		r.rc.Request(req)
	} else {
		r.core.Request(req)
	}
}

func (r *replica) flush() {
	if r.rc != nil {
		r.flushRCC()
		return
	}
	for r.up && r.core.HasReady() {
		rd := r.core.Ready()
		r.disk = append(r.disk, rd.Persist...)
		for _, o := range rd.Messages {
			r.output(o)
		}
		for _, d := range rd.Decided {
			r.execute(d)
		}
		if rd.StateTransfer != nil {
			r.transfer = rd.StateTransfer
			r.tryTransfer()
		}
	}
}

func (r *replica) targets(o pbft.Outbound) []msg.ReplicaID {
	if !o.Broadcast {
		return []msg.ReplicaID{o.To}
	}
	var ts []msg.ReplicaID
	for i := 0; i < r.w.n; i++ {
		if msg.ReplicaID(i) != r.id {
			ts = append(ts, msg.ReplicaID(i))
		}
	}
	return ts
}

// output sends one of the core's messages, through the replica's behaviour.
func (r *replica) output(o pbft.Outbound) {
	payload := msg.Marshal(o.Msg)
	for _, to := range r.targets(o) {
		if !r.w.reachable(r, to) {
			continue
		}
		p := payload
		if pp, ok := o.Msg.(*msg.PrePrepare); ok && pp.From == r.id {
			switch r.behaviour {
			case "dark":
				if !r.w.dark[r.id][to] {
					continue
				}
			case "throttle":
				if !pp.Null {
					r.held = append(r.held, held{to: to, payload: payload})
					continue
				}
			}
		}
		if r.behaviour == "equivocate" && int(to) > r.w.n/2 {
			if pp, ok := o.Msg.(*msg.PrePrepare); ok && pp.From == r.id {
				p = msg.Marshal(r.equivocate(pp))
			}
		}
		r.sendReplica(to, p)
		switch r.behaviour {
		case "forge":
			r.forge(to, o.Msg)
		case "garbage":
			r.garbage(to, payload)
		}
	}
}

func (r *replica) sendReplica(to msg.ReplicaID, payload []byte) {
	r.w.net.Send(r.net, r.w.netTarget(r.net, to), payload)
}

func (r *replica) sendClient(c msg.ClientID, rep *msg.Reply) {
	cp := *rep
	cp.From = r.id
	cp.Primary = r.primaryHint(c)
	r.w.net.Send(r.net, r.w.clientNet(c), msg.Marshal(&cp))
}

// primaryHint is this replica's belief of who currently leads client c's instance.
func (r *replica) primaryHint(c msg.ClientID) msg.ReplicaID {
	if r.rc != nil {
		inst := r.rc.Instance(int(r.rc.InstanceFor(c)))
		if _, changing := inst.View(); changing {
			return msg.NoReplica
		}
		return inst.Primary()
	}
	if _, changing := r.core.View(); changing {
		return msg.NoReplica
	}
	return r.core.Primary()
}

// equivocate gives the second half of the replicas a different batch for
// the same (view, seq), properly signed: a conflicting proposal.
func (r *replica) equivocate(pp *msg.PrePrepare) *msg.PrePrepare {
	alt := *pp
	reqs := pp.Batch.Requests
	if len(reqs) > 0 {
		alt.Batch = msg.Batch{Requests: append([]msg.Request(nil), reqs[:len(reqs)-1]...)}
	} else {
		alt.Batch = msg.Batch{}
	}
	alt.Digest = alt.Batch.Digest()
	if alt.Digest == pp.Digest { // both empty: make one distinguishable
		alt.Batch = msg.Batch{Requests: nil}
		alt.Null = false
	}
	alt.Sig = nil
	alt.Sig = r.cfg.Signer.Sign(msg.SignedBytes(&alt))
	return &alt
}

// forge re-sends the message claiming another replica sent it.
func (r *replica) forge(to msg.ReplicaID, m msg.Message) {
	victim := msg.ReplicaID(r.w.s.Rand().IntN(r.w.n))
	var f msg.Message
	switch x := m.(type) {
	case *msg.Prepare:
		c := *x
		c.From = victim
		c.Digest[0] ^= 0xff
		f = &c
	case *msg.Commit:
		c := *x
		c.From = victim
		c.Digest[0] ^= 0xff
		f = &c
	case *msg.Checkpoint:
		c := *x
		c.From = victim
		c.State[0] ^= 0xff
		f = &c
	case *msg.ViewChange:
		c := *x
		c.From = victim
		c.NewView += 3
		f = &c
	default:
		return
	}
	r.sendReplica(to, msg.Marshal(f))
}

// garbage sends random bytes and a corrupted copy of a real message.
func (r *replica) garbage(to msg.ReplicaID, real []byte) {
	rnd := r.w.s.Rand()
	junk := make([]byte, rnd.IntN(64))
	for i := range junk {
		junk[i] = byte(rnd.Uint32())
	}
	r.sendReplica(to, junk)
	if len(real) > 0 {
		bad := append([]byte(nil), real...)
		bad[rnd.IntN(len(bad))] ^= byte(1 + rnd.IntN(255))
		r.sendReplica(to, bad)
	}
}

func (r *replica) onTick() {
	r.ticks++
	if r.behaviour == "throttle" && len(r.held) > 0 && r.ticks%throttleEvery == 0 {
		// Release one proposal, to everyone it was meant for.
		first := r.held[0].payload
		k := 0
		for k < len(r.held) && string(r.held[k].payload) == string(first) {
			r.sendReplica(r.held[k].to, r.held[k].payload)
			k++
		}
		r.held = r.held[k:]
	}
	if r.behaviour == "replay" && len(r.history) > 0 {
		rnd := r.w.s.Rand()
		for k := 0; k < 3; k++ {
			p := r.history[rnd.IntN(len(r.history))]
			to := msg.ReplicaID(rnd.IntN(r.w.n))
			if to != r.id {
				r.sendReplica(to, p)
			}
		}
	}
	if r.transfer != nil {
		r.tryTransfer()
	}
}

func (r *replica) flushRCC() {
	for r.up && r.rc.HasReady() {
		rd := r.rc.Ready()
		r.disk = append(r.disk, rd.Persist...)
		for _, o := range rd.Messages {
			r.output(o)
		}
		for _, round := range rd.Rounds {
			r.executeRound(round)
		}
		if rd.StateTransfer != nil {
			r.transfer = rd.StateTransfer
			r.tryTransfer()
		}
	}
}

// executeRound applies one RCC round: its entries, in the one order the
// paradigm chose (Figure 3, instance changes in their place).
func (r *replica) executeRound(round rcc.Round) {
	if round.Round != r.state.seq+1 {
		r.w.chk.violate("replica %d executed round %d after %d", r.id, round.Round, r.state.seq)
		return
	}
	parts := [][]byte{round.Seed[:]}
	for _, b := range round.Batches {
		parts = append(parts, b.Digest[:])
	}
	for _, e := range round.Entries {
		r.apply(&e.Request, e.Op, e.View, e.Outcome, e.Instance)
	}
	r.state.paradigm = round.State
	pd := digestOf(r.state.paradigm)
	parts = append(parts, pd[:])
	combined := digestOf(parts...)
	r.finishDecision(pbft.Decision{Seq: round.Round, Digest: combined})
}

// execute applies a decision. The application here is a hash chain with a
// per-client reply cache: enough to make divergence, double execution and
// wrong replies observable; issue 4 swaps in the real applications.
func (r *replica) execute(d pbft.Decision) {
	if d.Seq != r.state.seq+1 {
		r.w.chk.violate("replica %d executed seq %d after %d", r.id, d.Seq, r.state.seq)
		return
	}
	r.applyBatch(d.Batch, d.View)
	r.finishDecision(d)
}

func (r *replica) applyBatch(batch msg.Batch, view uint64) {
	for i := range batch.Requests {
		req := &batch.Requests[i]
		r.apply(req, req.Op, view, msg.Executed, 0)
	}
}

// apply executes one ordered request: op on the application (the request's
// own op, or the one an instance change carries), unless its number is not
// above the client's last executed one — a duplicate, which the reply cache
// answers. The reply carries the paradigm's outcome, which the client
// matches with the result.
func (r *replica) apply(req *msg.Request, op []byte, view uint64, outcome msg.Outcome, instance uint32) {
	if !r.w.keys.Client(req.Client, req.SignedBytes(), req.Sig) {
		r.w.chk.violateIfCorrect(r, "validity: replica %d executed an unsigned request %v", r.id, req.Key())
	}
	if req.Number <= r.state.lastNum[req.Client] {
		return
	}
	result := r.state.app.Execute(app.CallerID(uint64(req.Client)), op)
	r.state.lastNum[req.Client] = req.Number
	rep := &msg.Reply{Client: req.Client, Number: req.Number, View: view, Outcome: outcome, Instance: instance, Result: result, From: r.id}
	r.state.replies[req.Client] = rep
	r.state.executedRequests++
	r.w.chk.executed(r, req.Key(), digestOf(result), r.state.seq+1)
	r.sendClient(req.Client, rep)
}

// finishDecision extends the hash chain, checks heads, and checkpoints.
func (r *replica) finishDecision(d pbft.Decision) {
	var seq [8]byte
	binary.BigEndian.PutUint64(seq[:], d.Seq)
	app := r.state.app.Digest()
	r.state.chain = digestOf(r.state.chain[:], seq[:], d.Digest[:], app[:])
	r.state.seq = d.Seq
	r.w.chk.decided(r, d, r.state.chain)
	r.w.s.Trace("decide", d.Digest[:], uint64(r.net), d.Seq)
	if d.Seq%r.cfg.CheckpointInterval == 0 {
		r.snaps[d.Seq] = r.state.clone()
		if r.rc != nil {
			r.rc.Checkpoint(d.Seq, r.state.chain)
		} else {
			r.core.Checkpoint(d.Seq, r.state.chain)
		}
	}
}

// tryTransfer fetches the state of a stable checkpoint from any replica that
// has it, and installs it only if it matches the certified digest: a
// Byzantine source can waste our time, never corrupt us.
func (r *replica) tryTransfer() {
	st := r.transfer
	if st == nil {
		return
	}
	for _, peer := range r.w.replicas {
		if peer == r {
			continue
		}
		snap, ok := peer.snaps[st.Seq]
		if !ok || snap.chain != st.State {
			continue
		}
		if st.Seq <= r.state.seq {
			r.transfer = nil
			return
		}
		if r.rc != nil {
			if err := r.rc.SetState(snap.paradigm); err != nil {
				r.w.chk.violate("replica %d: transferred paradigm state rejected: %v", r.id, err)
				return
			}
		}
		r.state = snap.clone()
		r.snaps[st.Seq] = snap.clone()
		r.transfer = nil
		r.w.chk.transferred(r, st.Seq, snap.chain)
		if r.rc != nil {
			r.rc.StateTransferred(st.Seq, r.state.lastNum)
		} else {
			r.core.StateTransferred(st.Seq, r.state.lastNum)
		}
		r.flush()
		r.announce() // fetch what was decided after the checkpoint
		return
	}
}
