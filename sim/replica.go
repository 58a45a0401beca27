package sim

import (
	"cmp"

	"github.com/braid-bft/braid/app/kv"
	"github.com/braid-bft/braid/byzantine"
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

	// byz is the replica's Byzantine behaviour, the filter production's
	// `braid replica --byzantine` runs too (nil: none, or a fault that is
	// no filter: crash, twin, wiped). It survives crashes, as the
	// behaviour's memory did before it had a package of its own.
	byz *byzantine.Filter
}

func newReplica(w *world, id msg.ReplicaID, net int, behaviour string) (*replica, error) {
	r := &replica{w: w, id: id, net: net, behaviour: behaviour}
	m := 1
	if w.opts.Protocol == "rcc" {
		m = w.opts.M
	}
	t := w.opts.Tuning
	admitted := make([]msg.ClientID, w.opts.Clients) // the closed-loop clients 0…Clients−1
	for c := range admitted {
		admitted[c] = msg.ClientID(c)
	}
	r.cfg = shell.Config{
		Core: rcc.Config{
			ID: id, N: w.n, M: m, Clients: admitted, Policy: w.policy, Sigma: w.opts.Sigma, Epsilon: w.opts.Epsilon,
			Instance: pbft.Config{
				Signer: loopSigner{w.keys.replicaSigner(id), r}, MaxBatch: w.batch(),
				CheckpointInterval: cmp.Or(t.CheckpointInterval, 8), Window: cmp.Or(t.Window, 32),
				RequestTimeout: cmp.Or(t.RequestTimeout, 30), ProgressTimeout: cmp.Or(t.ProgressTimeout, 30),
				ViewChangeTimeout: cmp.Or(t.ViewChangeTimeout, 30), RetransmitTicks: cmp.Or(t.RetransmitTicks, 5),
				PadToCheckpoint: true,
			},
		},
		Scope: kv.Shared,
	}
	if m == 1 {
		r.cfg.Core.Policy = rcc.Replace
	}
	if kind, err := byzantine.Parse(behaviour); err == nil {
		r.byz, err = byzantine.New(kind, byzantine.Env{
			ID: id, N: w.n, Signer: r.cfg.Core.Instance.Signer, Rand: w.s.Rand(), Send: r.sendReplica,
			Dark: func(to msg.ReplicaID) bool { return w.dark[id][to] },
		})
		if err != nil {
			return nil, err
		}
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
			r.byz.Tick()
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
	r.byz.Received(payload)
	switch x := r.w.byNet[from].(type) {
	case *loadgen:
		// The load generator speaks for many client ids, one per request.
		if m, err := msg.Unmarshal(payload); err == nil && r.byz.AcceptClient() {
			if cr, ok := m.(*msg.ClientRequest); ok && cr.Request.Client >= loadBase {
				r.sh.OnClient(simConn{r: r, from: r.net, to: x.net, id: cr.Request.Client}, payload)
			}
		}
	case *client:
		if r.byz.AcceptClient() {
			r.sh.OnClient(simConn{r: r, from: r.net, to: x.net, id: x.id}, payload)
		}
	case *replica:
		if !r.byz.AcceptPeer(payload) {
			return
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
	if r.byz == nil {
		r.sendReplica(to, payload)
		return
	}
	r.byz.Send(to, payload)
}

func (r *replica) sendReplica(to msg.ReplicaID, payload []byte) {
	r.transmit(r.net, r.w.netTarget(r.net, to), payload)
}
