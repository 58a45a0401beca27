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
	// Clients, if set, is a pool of that many clients per loaded instance,
	// each with one request outstanding, as the SDK's clients: an arrival
	// takes an idle client or waits for one (its latency counts the wait),
	// a client's first request goes to every replica (so every replica
	// knows where to reply, as after the SDK's first time-out) and later
	// ones to its instance's primary. 0: a fresh client id per request,
	// sent to the primary, which needs no per-client ordering but waits
	// for a client time-out on every request to collect f+1 replies.
	Clients int
	// Closed turns the pool into closed-loop clients (Clients must be set;
	// Rate is ignored): each issues its next request as soon as its last
	// one completes, until Until — a saturating load whose queue cannot
	// grow past the pool.
	Closed bool
	// Payload, if set, is the bytes of each put's value (the real bench's
	// --payload); 0: the value is the request's number in decimal.
	Payload int
	// Window: the run is a benchmark's fixed window and may end with
	// requests outstanding, which is then not a liveness violation.
	Window bool
}

// maxWaiting bounds the arrivals queued for an idle pool client; beyond
// it an arrival is counted in Submitted and never completes.
const maxWaiting = 1 << 20

// poolClient is one of Load.Clients.
type poolClient struct {
	id   msg.ClientID
	next uint64 // number of its next request
}

const loadBase = msg.ClientID(1 << 20)

type loadgen struct {
	w       *world
	spec    Load
	net     int
	seq     uint64
	pending map[msg.ClientID]*loadReq
	done    []simnet.Time // completion times
	latency []simnet.Time // and how long each took, in the same order
	hints   map[uint32]msg.ReplicaID

	idle    map[uint32][]*poolClient // pool mode: idle clients per instance
	waiting map[uint32][]simnet.Time // pool mode: arrivals waiting for one
	owner   map[msg.ClientID]*poolClient
}

type loadReq struct {
	req    msg.Request
	issued simnet.Time
	inst   uint32
	votes  map[string]map[msg.ReplicaID]bool
	timer  *simnet.Timer
}

func newLoadgen(w *world, spec Load, net int) *loadgen {
	if len(spec.Instances) == 0 {
		spec.Instances = []uint32{0}
	}
	g := &loadgen{w: w, spec: spec, net: net, pending: map[msg.ClientID]*loadReq{}, hints: map[uint32]msg.ReplicaID{}}
	if spec.Clients > 0 {
		g.idle, g.waiting, g.owner = map[uint32][]*poolClient{}, map[uint32][]simnet.Time{}, map[msg.ClientID]*poolClient{}
	}
	return g
}

// poolFor makes instance inst's clients, once.
func (g *loadgen) poolFor(inst uint32) {
	if _, ok := g.idle[inst]; ok {
		return
	}
	list := make([]*poolClient, g.spec.Clients)
	for k := range list {
		pc := &poolClient{id: loadBase + msg.ClientID(uint64(k)*g.m()+uint64(inst)), next: 1}
		list[k] = pc
		g.owner[pc.id] = pc
	}
	g.idle[inst] = list
}

func (g *loadgen) start() {
	if g.spec.Closed {
		for _, inst := range g.spec.Instances {
			g.poolFor(inst)
			for range g.spec.Clients {
				g.seq++
				g.waiting[inst] = append(g.waiting[inst], g.w.s.Now())
			}
			g.serve(inst)
		}
		return
	}
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
	if g.spec.Clients > 0 {
		g.seq++
		g.poolFor(inst)
		if len(g.waiting[inst]) >= maxWaiting {
			return
		}
		g.waiting[inst] = append(g.waiting[inst], g.w.s.Now())
		g.serve(inst)
		return
	}
	c := loadBase + msg.ClientID(g.seq*g.m()+uint64(inst))
	g.seq++
	op := kv.Put([]byte(fmt.Sprintf("load/%d", g.seq%16)), g.value(g.seq))
	lr := &loadReq{req: msg.Request{Client: c, Number: 1, Op: op}, issued: g.w.s.Now(), inst: inst, votes: map[string]map[msg.ReplicaID]bool{}}
	g.w.keys.signRequest(&lr.req)
	g.pending[c] = lr
	g.sendTo(lr, g.primary(inst))
	g.arm(lr)
}

// value is a put's value: the number in decimal, padded to Load.Payload.
func (g *loadgen) value(n uint64) []byte {
	v := []byte(fmt.Sprintf("%d", n))
	for len(v) < g.spec.Payload {
		v = append(v, 'x')
	}
	return v
}

// serve hands waiting arrivals of inst to idle clients.
func (g *loadgen) serve(inst uint32) {
	for len(g.waiting[inst]) > 0 && len(g.idle[inst]) > 0 {
		arrived := g.waiting[inst][0]
		g.waiting[inst] = g.waiting[inst][1:]
		idle := g.idle[inst]
		pc := idle[len(idle)-1]
		g.idle[inst] = idle[:len(idle)-1]
		n := pc.next
		pc.next++
		op := kv.Put([]byte(fmt.Sprintf("load/%d", uint64(pc.id)%16)), g.value(n))
		lr := &loadReq{req: msg.Request{Client: pc.id, Number: n, Op: op}, issued: arrived, inst: inst, votes: map[string]map[msg.ReplicaID]bool{}}
		g.w.keys.signRequest(&lr.req)
		g.pending[pc.id] = lr
		if n == 1 {
			for i := 0; i < g.w.n; i++ {
				g.sendTo(lr, msg.ReplicaID(i))
			}
		} else {
			g.sendTo(lr, g.primary(inst))
		}
		g.arm(lr)
	}
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
	if lr == nil || rep.Number != lr.req.Number || !isReplica || sender.id != rep.From {
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
	g.latency = append(g.latency, g.w.s.Now()-lr.issued)
	if pc := g.owner[rep.Client]; pc != nil {
		g.idle[lr.inst] = append(g.idle[lr.inst], pc)
		if g.spec.Closed && g.w.s.Now() < simnet.FromDuration(g.spec.Until) {
			g.seq++
			g.waiting[lr.inst] = append(g.waiting[lr.inst], g.w.s.Now())
		}
		g.serve(lr.inst)
	}
}

func (g *loadgen) drained() bool {
	if len(g.pending) != 0 || g.w.s.Now() < simnet.FromDuration(g.spec.Until) {
		return false
	}
	for _, q := range g.waiting {
		if len(q) > 0 {
			return false
		}
	}
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
