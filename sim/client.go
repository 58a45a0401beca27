package sim

import (
	"bytes"
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
// keeps ignoring sends an instance-change request to the next instance.
type client struct {
	w        *world
	id       msg.ClientID
	net      int
	total    int // operations to complete
	ops      int // operations completed
	num      uint64
	current  msg.Request
	votes    map[string]map[msg.ReplicaID]bool
	hint     msg.ReplicaID
	viewHint uint64
	timer    *simnet.Timer
	timeouts int
	instance uint32 // the instance the client believes serves it
	changeTo int    // target of the outstanding instance change, or -1
}

func newClient(w *world, id msg.ClientID, net int) *client {
	c := &client{w: w, id: id, net: net, total: w.opts.RequestsPerClient, hint: msg.NoReplica, changeTo: -1}
	if w.opts.Protocol == "rcc" {
		c.instance = uint32(uint64(id) % uint64(w.opts.M))
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
		return rcc.PrimaryOf(c.w.n, c.instance, 0)
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
	op := kv.Put(key, []byte(fmt.Sprintf("%d/%d", c.id, c.ops+1)))
	if c.ops%2 == 1 {
		op = kv.Get(key)
	}
	if c.changeTo >= 0 {
		op = rcc.InstanceChangeOp(uint32(c.changeTo))
	}
	c.current = msg.Request{Client: c.id, Number: c.num, Op: op}
	c.w.keys.signRequest(&c.current)
	c.votes = map[string]map[msg.ReplicaID]bool{}
	if c.changeTo >= 0 {
		c.broadcast() // the client does not know the target instance's primary
	} else {
		c.sendTo(c.primary())
	}
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
		if c.inPlace() && c.timeouts >= changeAfter {
			// Our instance ignores us (or the one we asked to take us over
			// does): ask the next one. An abandoned request number is never
			// reused.
			from := c.instance
			if c.changeTo >= 0 {
				from = uint32(c.changeTo)
			}
			next := (from + 1) % uint32(c.w.opts.M)
			if next == c.instance {
				next = (next + 1) % uint32(c.w.opts.M)
			}
			c.changeTo = int(next)
			c.timeouts = 0
			c.sendNext()
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
	key := string(rep.Result)
	if c.votes[key] == nil {
		c.votes[key] = map[msg.ReplicaID]bool{}
	}
	c.votes[key][rep.From] = true
	if len(c.votes[key]) < c.w.f+1 {
		return
	}
	c.w.chk.accepted(msg.RequestKey{Client: c.id, Number: c.num}, rep.Result)
	c.viewHint = rep.View
	c.hint = rep.Primary
	c.timeouts = 0
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.changeTo >= 0 {
		if bytes.HasPrefix(rep.Result, []byte("ok")) {
			c.instance = uint32(c.changeTo)
			c.changeTo = -1
			c.hint = msg.NoReplica
		} else {
			next := (uint32(c.changeTo) + 1) % uint32(c.w.opts.M)
			if next == c.instance {
				next = (next + 1) % uint32(c.w.opts.M)
			}
			c.changeTo = int(next)
		}
	} else {
		c.ops++
	}
	c.sendNext()
}
