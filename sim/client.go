package sim

import (
	"fmt"
	"time"

	"github.com/braid-bft/braid/app/kv"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/rcc"
	"github.com/braid-bft/braid/sim/simnet"
)

const (
	clientTimeout = 400 * time.Millisecond
	// changeAfter is how many timeouts on one request make a client under
	// in-place recovery ask another instance to serve it (Section 4.2).
	changeAfter = 3
)

// client is a correct, closed-loop client: one request outstanding, sent to
// the primary it believes in, re-sent to every replica on timeout, accepted
// on f+1 matching replies. Under in-place recovery, a client its instance
// keeps ignoring sends an instance-change request to the next instance,
// carrying the operation under the same request number (as client.Submit
// does), so the operation executes once whichever request executes first.
type client struct {
	w        *world
	id       msg.ClientID
	net      int
	total    int // operations to complete
	ops      int // operations completed
	num      uint64
	op       []byte      // the outstanding operation
	current  msg.Request // what goes out for it: the request, or an instance change
	votes    map[string]map[msg.ReplicaID]bool
	hint     msg.ReplicaID
	viewHint uint64
	timer    *simnet.Timer
	timeouts int
	instance uint32 // the instance the client believes serves it
	changeTo int    // target of the outstanding instance change, or -1
	refused  int    // target of the last instance change, if it was refused; else -1
	// The linearizability workload: the outstanding operation's input and
	// its index in the checker's history, and the value last seen per key
	// (absent: not found, or never seen).
	linIn  KVInput
	linIdx int
	seen   map[string]string
}

func newClient(w *world, id msg.ClientID, net int) *client {
	c := &client{w: w, id: id, net: net, total: w.opts.RequestsPerClient, hint: msg.NoReplica, changeTo: -1, refused: -1}
	if w.opts.Protocol == "rcc" {
		c.instance = msg.HomeInstance(id, w.opts.M)
	}
	return c
}

func (c *client) done() bool     { return c.ops >= c.total }
func (c *client) completed() int { return c.ops }

func (c *client) primary() msg.ReplicaID {
	if c.hint != msg.NoReplica && int(c.hint) < c.w.n {
		return c.hint
	}
	if c.w.opts.Protocol == "rcc" {
		return msg.PrimaryOf(c.w.n, c.instance, 0)
	}
	return msg.ReplicaID(c.viewHint % uint64(c.w.n))
}

func (c *client) inPlace() bool {
	return c.w.opts.Protocol == "rcc" && c.w.policy == rcc.InPlace
}

func (c *client) start() {
	c.w.s.After(time.Duration(c.id)*time.Millisecond, c.sendNext)
}

func (c *client) sendNext() {
	if c.done() {
		return
	}
	c.num++
	// Alternate writes and reads of a key the client shares with another,
	// so results depend on the replicated state and its order.
	key := []byte(fmt.Sprintf("k%d", c.id/2))
	c.op = kv.Put(key, []byte(fmt.Sprintf("%d/%d", c.id, c.ops+1)))
	if c.ops%2 == 1 {
		c.op = kv.Get(key)
	}
	if c.w.opts.Linearizability {
		c.linIn, c.op = c.nextLinOp()
		c.linIdx = c.w.chk.invoked(c.id, c.linIn)
	}
	if c.w.opts.Bank {
		o := c.nextBankOp()
		c.op = o.encode()
		c.w.chk.bankSent(msg.RequestKey{Client: c.id, Number: c.num}, o)
	}
	c.votes = map[string]map[msg.ReplicaID]bool{}
	c.timeouts = 0
	if c.refused >= 0 {
		// Our last instance change was refused (the target was full, say):
		// our instance still ignores us, so this operation goes straight
		// to the next instance, as an instance change.
		c.changeTo, c.refused = c.refused, -1
		c.changeInstance()
		return
	}
	c.changeTo = -1
	c.current = msg.Request{Client: c.id, Number: c.num, Op: c.op}
	c.w.keys.signRequest(&c.current)
	c.sendTo(c.primary())
	c.arm()
}

// changeInstance asks the next instance to serve us, carrying the
// outstanding operation under its request number. Replies to the original
// request still count: they have the same number.
func (c *client) changeInstance() {
	from := c.instance
	if c.changeTo >= 0 {
		from = uint32(c.changeTo)
	}
	// Round all m instances, ours included, as the real client does
	// (client.Submit says why).
	next := (from + 1) % uint32(c.w.opts.M)
	c.changeTo = int(next)
	c.current = msg.Request{Client: c.id, Number: c.num, Op: msg.InstanceChangeOp(next, c.op)}
	c.w.keys.signRequest(&c.current)
	c.broadcast() // the client does not know the target instance's primary
	c.arm()
}

func (c *client) sendTo(to msg.ReplicaID) {
	p := msg.Marshal(&msg.ClientRequest{Request: c.current})
	c.w.net.Send(c.net, c.w.netTarget(c.net, to), p)
}

func (c *client) broadcast() {
	for i := 0; i < c.w.n; i++ {
		c.sendTo(msg.ReplicaID(i))
	}
}

func (c *client) arm() {
	if c.timer != nil {
		c.timer.Stop()
	}
	c.timer = c.w.s.After(clientTimeout, func() {
		c.timeouts++
		if c.inPlace() && c.w.opts.M > 1 && c.timeouts >= changeAfter {
			// Our instance ignores us (or the one we asked to take us over
			// does): ask the next one.
			c.timeouts = 0
			c.changeInstance()
			return
		}
		c.broadcast()
		c.arm()
	})
}

func (c *client) receive(from int, payload []byte) {
	if c.done() {
		return
	}
	m, err := msg.Unmarshal(payload)
	if err != nil {
		return
	}
	rep, ok := m.(*msg.Reply)
	if !ok || rep.Client != c.id || rep.Number != c.num {
		return
	}
	sender, ok := c.w.byNet[from].(*replica)
	if !ok || sender.id != rep.From {
		return // replies are link-authenticated
	}
	// Replicas agree on the outcome and the ordering instance as on the
	// result: all three must match.
	key := fmt.Sprintf("%d/%d/%s", rep.Outcome, rep.Instance, rep.Result)
	if c.votes[key] == nil {
		c.votes[key] = map[msg.ReplicaID]bool{}
	}
	c.votes[key][rep.From] = true
	if len(c.votes[key]) < c.w.f+1 {
		return
	}
	c.w.chk.accepted(msg.RequestKey{Client: c.id, Number: c.num}, rep.Result)
	if c.w.opts.Linearizability {
		out := decodeKV(c.linIn, rep.Result)
		c.w.chk.returned(c.linIdx, out)
		c.observe(c.linIn, out)
	}
	c.viewHint = rep.View
	c.hint = rep.Primary
	c.timeouts = 0
	if c.timer != nil {
		c.timer.Stop()
	}
	switch rep.Outcome {
	case msg.Moved:
		c.instance = rep.Instance
		c.hint = msg.NoReplica
	case msg.NotMoved:
		c.refused = c.changeTo
	}
	// Executed, or carried by an instance change that did or did not move
	// us: either way the operation executed, once.
	c.ops++
	c.sendNext()
}
