package sim

import (
	"github.com/braid-bft/braid/app/kv"
	"github.com/braid-bft/braid/ledger"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/pbft"
	"github.com/braid-bft/braid/rcc"
	"github.com/braid-bft/braid/shell"
	"github.com/braid-bft/braid/sim/simnet"
)

// replica is one simulated replica: the production runtime (package shell)
// with simulated dependencies — simnet for the network, a simulated disk,
// a CPU cost model, keyed-hash signatures — all in virtual time. Byzantine
// behaviours are filters on what the runtime sends and receives; the
// runtime and the core inside it are the real, unmodified code.
type replica struct {
	w         *world
	id        msg.ReplicaID
	net       int
	behaviour string
	twinSide  int
	cfg       shell.Config
	sh        *shell.Shell
	disk      *simDisk // survives crashes (what it committed)
	cpu       *cpu
	up        bool
	epoch     int // bumped on every crash: completions of an older epoch are dropped
	ticker    *simnet.Ticker

	executedRequests uint64

	loopAt simnet.Time // the event loop is busy until then (loop.go)
	used   busy        // cumulative busy time per resource (usage.go)
	inbox  []inbound   // frames waiting for the loop

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

func newReplica(w *world, id msg.ReplicaID, net int, behaviour string) (*replica, error) {
	r := &replica{w: w, id: id, net: net, behaviour: behaviour}
	m := 1
	if w.opts.Protocol == "rcc" {
		m = w.opts.M
	}
	admitted := make([]msg.ClientID, w.opts.Clients) // the closed-loop clients 0…Clients−1
	for c := range admitted {
		admitted[c] = msg.ClientID(c)
	}
	r.cfg = shell.Config{
		Core: rcc.Config{
			ID: id, N: w.n, M: m, Clients: admitted, Policy: w.policy, Sigma: w.opts.Sigma, Epsilon: w.opts.Epsilon,
			Instance: pbft.Config{
				Signer: loopSigner{w.keys.replicaSigner(id), r}, MaxBatch: w.batch(), CheckpointInterval: 8, Window: 32,
				RequestTimeout: 30, ProgressTimeout: 30, ViewChangeTimeout: 30, RetransmitTicks: 5,
				PadToCheckpoint: true,
			},
		},
		Scope: kv.Shared,
	}
	if m == 1 {
		r.cfg.Core.Policy = rcc.Replace
	}
	r.disk = newSimDisk(w, r)
	r.cpu = newCPU(w, r)
	if err := r.build(); err != nil {
		return nil, err
	}
	return r, nil
}

// batch is the most requests per batch (Options.Batch).
func (w *world) batch() int { return w.opts.Batch }

// build makes a fresh runtime restored from the disk: a (re)start.
func (r *replica) build() error {
	sh, err := shell.New(r.cfg, shell.Deps{
		Net: simPeers{r}, Disk: r.disk, Crypto: simCrypto{r.w.keys}, Worker: r.cpu,
		Logger: r.w.logger,
		Observer: shell.Observer{
			Executed:    r.onExecuted,
			Transferred: r.onTransferred,
		},
	})
	if err != nil {
		return err
	}
	r.sh = sh
	return nil
}

// node is the core inside the runtime.
func (r *replica) node() *rcc.Node { return r.sh.Node() }

// stats sums the instances' counters.
func (r *replica) stats() (decided, viewChanges uint64, dropped map[string]uint64) {
	dropped = map[string]uint64{}
	for i := 0; i < r.node().Config().M; i++ {
		st := r.node().Instance(i).Stats()
		decided += st.DecidedRequests
		viewChanges += st.NewViews
		for k, v := range st.Dropped {
			dropped[k] += v
		}
	}
	if shed := r.sh.Stats().ClientShed; shed > 0 {
		dropped["client-shed"] += shed // ingress admission (shell/ingress.go)
	}
	if over := r.sh.Stats().FetchOverBudget; over > 0 {
		dropped["fetch-over-budget"] += over // peers' Fetches beyond their answer budget (shell/transfer.go)
	}
	return
}

func (r *replica) start() {
	r.up = true
	r.sh.Announce()
	r.flush()
	r.ticker = r.w.s.Every(tickEvery, func() {
		if r.up {
			r.sh.Tick()
			r.onTick()
			r.flush()
		}
	})
}

// flush lets the runtime act on what it was handed, and stops the replica
// if its storage failed (fail-stop: a supervisor restarts it later).
func (r *replica) flush() {
	if !r.up {
		return
	}
	r.sh.Flush()
	if r.sh.Failed() != nil {
		r.w.failStopped[r.id]++
		r.crash()
	}
}

// crash stops the replica: everything volatile is lost, and so is every
// write its disk had not made durable.
func (r *replica) crash() {
	r.up = false
	r.epoch++
	r.inbox = nil
	r.w.net.Down(r.net)
	r.disk.crash()
}

// wipe models a lost disk: no records, no blocks, no snapshots.
func (r *replica) wipe() {
	r.disk.wipe()
	r.w.chk.reverted(r, 0)
}

// announce is what the runtime does when a replica (re)connects.
func (r *replica) announce() {
	if !r.up {
		return
	}
	r.sh.Announce()
	r.flush()
}

// restart rebuilds the runtime from what the disk kept.
func (r *replica) restart() {
	r.disk.heal()
	if err := r.build(); err != nil {
		r.w.chk.violate("restart of replica %d: %v", r.id, err)
		return
	}
	r.w.chk.reverted(r, r.sh.Round())
	r.up = true
	r.w.net.Up(r.net)
	r.sh.Announce()
	r.flush()
}

// receive takes a frame the network delivered.
func (r *replica) receive(from int, payload []byte) {
	r.handle(from, payload)
	r.flush()
}

// handle hands one frame to the runtime without flushing: the loop model
// (loop.go) hands it every frame that waited, then flushes once, as
// production's loop does.
func (r *replica) handle(from int, payload []byte) {
	if !r.up {
		return
	}
	if r.behaviour == "replay" && len(r.history) < 512 {
		r.history = append(r.history, payload)
	}
	switch x := r.w.byNet[from].(type) {
	case *loadgen:
		// The load generator speaks for many client ids, one per request.
		if m, err := msg.Unmarshal(payload); err == nil && r.behaviour != "silent" {
			if cr, ok := m.(*msg.ClientRequest); ok && cr.Request.Client >= loadBase {
				r.sh.OnClient(simConn{r: r, from: r.net, to: x.net, id: cr.Request.Client}, payload)
			}
		}
	case *client:
		if r.behaviour != "silent" {
			r.sh.OnClient(simConn{r: r, from: r.net, to: x.net, id: x.id}, payload)
		}
	case *replica:
		if r.behaviour == "silent" {
			if m, err := msg.Unmarshal(payload); err == nil {
				if _, ok := m.(*msg.ClientRequest); ok {
					return
				}
			}
		}
		r.sh.OnPeer(x.id, payload)
	}
}

// onExecuted reports each block to the checker (from a correct replica).
func (r *replica) onExecuted(b *ledger.Block, results [][]byte) {
	for i := range b.Requests {
		req := &b.Requests[i]
		if !r.w.keys.Client(req.Client, req.SignedBytes(), req.Sig) {
			r.w.chk.violateIfCorrect(r, "validity: replica %d executed an unsigned request %v", r.id, req.Key())
		}
		r.w.chk.executed(r, req.Key(), digestOf(results[i]), b.Height)
	}
	if r.w.opts.Bank {
		r.w.chk.block(r, b, results)
	}
	r.executedRequests += uint64(len(b.Requests))
	h := b.Hash()
	r.w.chk.head(r, b.Height, h)
	r.w.s.Trace("decide", h[:], uint64(r.net), b.Height)
}

func (r *replica) onTransferred(b *ledger.Block) {
	r.w.chk.transferred(r, b.Height, b.Hash())
}

// simPeers is the runtime's network: simnet, through the behaviour.
type simPeers struct{ r *replica }

func (p simPeers) Send(to msg.ReplicaID, frame []byte) {
	p.r.encoded(len(frame))
	p.r.output(to, frame)
}

func (p simPeers) Broadcast(frame []byte) {
	p.r.encoded(len(frame)) // encoded once, sealed for each peer
	for i := 0; i < p.r.w.n; i++ {
		if msg.ReplicaID(i) != p.r.id {
			p.r.output(msg.ReplicaID(i), frame)
		}
	}
}

// simConn is a client's connection: replies go back over simnet.
type simConn struct {
	r        *replica
	from, to int // the replica's and the client's network nodes
	id       msg.ClientID
}

func (c simConn) Client() msg.ClientID { return c.id }
func (c simConn) Send(frame []byte) {
	c.r.encoded(len(frame))
	c.r.transmit(c.from, c.to, frame)
}

// simCrypto is the keyed-hash stand-in for Ed25519 (crypto.go).
type simCrypto struct{ simKeys }

func (k simCrypto) VerifyAll(items []msg.Signature) []bool {
	return shell.VerifyEach(k.simKeys, items)
}

// output sends one frame to one peer, through the replica's behaviour.
func (r *replica) output(to msg.ReplicaID, payload []byte) {
	if !r.up || !r.w.reachable(r, to) {
		return
	}
	var m msg.Message
	switch r.behaviour {
	case "dark", "throttle", "equivocate", "forge": // the filters that read the message
		m, _ = msg.Unmarshal(payload)
	}
	p := payload
	if pp, ok := m.(*msg.PrePrepare); ok && pp.From == r.id {
		switch r.behaviour {
		case "dark":
			if !r.w.dark[r.id][to] {
				return
			}
		case "throttle":
			if !pp.Null {
				r.held = append(r.held, held{to: to, payload: payload})
				return
			}
		case "equivocate":
			if int(to) > r.w.n/2 {
				p = msg.Marshal(r.equivocate(pp))
			}
		}
	}
	r.sendReplica(to, p)
	switch r.behaviour {
	case "forge":
		r.forge(to, m)
	case "garbage":
		r.garbage(to, payload)
	}
}

func (r *replica) sendReplica(to msg.ReplicaID, payload []byte) {
	r.transmit(r.net, r.w.netTarget(r.net, to), payload)
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
	alt.Sig = r.cfg.Core.Instance.Signer.Sign(msg.SignedBytes(&alt))
	return &alt
}

// forge re-sends the message claiming another replica sent it.
func (r *replica) forge(to msg.ReplicaID, m msg.Message) {
	victim := msg.ReplicaID(r.w.s.Rand().IntN(r.w.n))
	var f msg.Message
	switch x := m.(type) {
	case *msg.Prepare:
		f = forged(x, func(c *msg.Prepare) { c.From = victim; c.Digest[0] ^= 0xff })
	case *msg.Commit:
		f = forged(x, func(c *msg.Commit) { c.From = victim; c.Digest[0] ^= 0xff })
	case *msg.Checkpoint:
		f = forged(x, func(c *msg.Checkpoint) { c.From = victim; c.State[0] ^= 0xff })
	case *msg.ViewChange:
		f = forged(x, func(c *msg.ViewChange) { c.From = victim; c.NewView += 3 })
	default:
		return
	}
	r.sendReplica(to, msg.Marshal(f))
}

// forged is a copy of m with lie applied; the original, which the
// replica's own runtime may still hold, is untouched.
func forged[T any, P interface {
	*T
	msg.Message
}](m P, lie func(P)) msg.Message {
	c := P(new(T))
	*c = *m
	lie(c)
	return c
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
}
