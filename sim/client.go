package sim

import (
	"fmt"
	"time"

	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/rcc"
	"github.com/braid-bft/braid/sim/simnet"
)

const clientTimeout = 400 * time.Millisecond

// client is a correct, closed-loop client: one request outstanding, sent to
// the primary it believes in, re-sent to every replica on timeout, accepted
// on f+1 matching replies.
type client struct {
	w        *world
	id       msg.ClientID
	net      int
	total    int
	next     uint64 // number of the outstanding request; total+1 when done
	current  msg.Request
	votes    map[string]map[msg.ReplicaID]bool
	viewHint uint64
	timer    *simnet.Timer
}

func newClient(w *world, id msg.ClientID, net int) *client {
	return &client{w: w, id: id, net: net, total: w.opts.RequestsPerClient}
}

func (c *client) done() bool     { return c.next > uint64(c.total) }
func (c *client) completed() int { return int(c.next) - 1 }
func (c *client) primary() msg.ReplicaID {
	if c.w.opts.Protocol == "rcc" {
		return rcc.PrimaryOf(c.w.n, uint32(uint64(c.id)%uint64(c.w.opts.M)), c.viewHint)
	}
	return msg.ReplicaID(c.viewHint % uint64(c.w.n))
}

func (c *client) start() {
	c.next = 1
	c.w.s.After(time.Duration(c.id)*time.Millisecond, c.sendNext)
}

func (c *client) sendNext() {
	if c.done() {
		return
	}
	c.current = msg.Request{Client: c.id, Number: c.next, Op: []byte(fmt.Sprintf("op %d/%d", c.id, c.next))}
	c.w.keys.signRequest(&c.current)
	c.votes = map[string]map[msg.ReplicaID]bool{}
	c.sendTo(c.primary())
	c.arm()
}

func (c *client) sendTo(to msg.ReplicaID) {
	p := msg.Marshal(&msg.ClientRequest{Request: c.current})
	c.w.net.Send(c.net, c.w.netTarget(c.net, to), p)
}

func (c *client) arm() {
	if c.timer != nil {
		c.timer.Stop()
	}
	c.timer = c.w.s.After(clientTimeout, func() {
		for i := 0; i < c.w.n; i++ {
			c.sendTo(msg.ReplicaID(i))
		}
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
	if !ok || rep.Client != c.id || rep.Number != c.next {
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
	c.w.chk.accepted(msg.RequestKey{Client: c.id, Number: c.next}, rep.Result)
	c.viewHint = rep.View
	c.next++
	if c.timer != nil {
		c.timer.Stop()
	}
	c.sendNext()
}
