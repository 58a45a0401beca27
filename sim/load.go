package sim

import (
	"fmt"
	"time"

	"github.com/braid-bft/braid/app/kv"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/sim/simnet"
)

// Load is an open-loop workload: requests arrive at a fixed rate whatever
// the replicas do, as throughput measurements need (closed-loop clients slow
// down with the slowest instance and so can never show that the others keep
// going). Every request comes from a fresh client id, served by instance
// id mod m, so exactly-once needs no per-client ordering.
type Load struct {
	Rate      float64       // requests per virtual second, per loaded instance
	Instances []uint32      // instances to load (rcc); pbft: leave empty
	Until     time.Duration // stop generating at this virtual time
}

const loadBase = msg.ClientID(1 << 20)

type loadgen struct {
	w       *world
	spec    Load
	net     int
	seq     uint64
	pending map[msg.ClientID]*loadReq
	done    []simnet.Time // completion times
	hints   map[uint32]msg.ReplicaID
}

type loadReq struct {
	req   msg.Request
	inst  uint32
	votes map[string]map[msg.ReplicaID]bool
	timer *simnet.Timer
}

func newLoadgen(w *world, spec Load, net int) *loadgen {
	if len(spec.Instances) == 0 {
		spec.Instances = []uint32{0}
	}
	return &loadgen{w: w, spec: spec, net: net, pending: map[msg.ClientID]*loadReq{}, hints: map[uint32]msg.ReplicaID{}}
}

func (g *loadgen) start() {
	period := time.Duration(float64(time.Second) / g.spec.Rate)
	var tk *simnet.Ticker
	tk = g.w.s.Every(period, func() {
		if g.w.s.Now() >= simnet.FromDuration(g.spec.Until) {
			tk.Stop()
			return
		}
		for _, inst := range g.spec.Instances {
			g.issue(inst)
		}
	})
}

func (g *loadgen) m() uint64 {
	if g.w.opts.Protocol == "rcc" {
		return uint64(g.w.opts.M)
	}
	return 1
}

func (g *loadgen) issue(inst uint32) {
	c := loadBase + msg.ClientID(g.seq*g.m()+uint64(inst))
	g.seq++
	op := kv.Put([]byte(fmt.Sprintf("load/%d", g.seq%16)), []byte(fmt.Sprintf("%d", g.seq)))
	lr := &loadReq{req: msg.Request{Client: c, Number: 1, Op: op}, inst: inst, votes: map[string]map[msg.ReplicaID]bool{}}
	g.w.keys.signRequest(&lr.req)
	g.pending[c] = lr
	g.sendTo(lr, g.primary(inst))
	g.arm(lr)
}

func (g *loadgen) primary(inst uint32) msg.ReplicaID {
	if p, ok := g.hints[inst]; ok && p != msg.NoReplica && int(p) < g.w.n {
		return p
	}
	if g.w.opts.Protocol == "rcc" {
		return msg.PrimaryOf(g.w.n, inst, 0)
	}
	return 0
}

func (g *loadgen) sendTo(lr *loadReq, to msg.ReplicaID) {
	g.w.net.Send(g.net, g.w.netTarget(g.net, to), msg.Marshal(&msg.ClientRequest{Request: lr.req}))
}

func (g *loadgen) arm(lr *loadReq) {
	lr.timer = g.w.s.After(clientTimeout, func() {
		for i := 0; i < g.w.n; i++ {
			g.sendTo(lr, msg.ReplicaID(i))
		}
		g.arm(lr)
	})
}

func (g *loadgen) receive(from int, payload []byte) {
	rep, ok := msg.UnmarshalAs[*msg.Reply](payload)
	if !ok {
		return
	}
	lr := g.pending[rep.Client]
	sender, isReplica := g.w.byNet[from].(*replica)
	if lr == nil || rep.Number != 1 || !isReplica || sender.id != rep.From {
		return
	}
	key := string(rep.Result)
	if lr.votes[key] == nil {
		lr.votes[key] = map[msg.ReplicaID]bool{}
	}
	lr.votes[key][rep.From] = true
	if len(lr.votes[key]) < g.w.f+1 {
		return
	}
	g.w.chk.accepted(lr.req.Key(), rep.Result)
	g.hints[lr.inst] = rep.Primary
	lr.timer.Stop()
	delete(g.pending, rep.Client)
	g.done = append(g.done, g.w.s.Now())
}

func (g *loadgen) drained() bool {
	return len(g.pending) == 0 && g.w.s.Now() >= simnet.FromDuration(g.spec.Until)
}

// Throughput counts completions per virtual second in [from, to).
func (r Result) Throughput(from, to time.Duration) float64 {
	n := 0
	for _, t := range r.LoadCompletions {
		if t >= from.Seconds() && t < to.Seconds() {
			n++
		}
	}
	return float64(n) / (to - from).Seconds()
}
