package coretest

import (
	"slices"
	"testing"

	"github.com/braid-bft/braid/msg"
)

// Envelope is one message in flight between two cores.
type Envelope struct {
	From, To msg.ReplicaID
	Msg      msg.Message
}

// Net is the unit tests' network between pure cores: one FIFO queue, a set
// of replicas that are down (nothing to or from them), and two optional
// adversaries. The pbft and rcc harnesses wrap their own Ready handling
// around it, so an exact interleaving can be driven without the simulator.
// Delivery is strictly in send order: a message sent while the queue drains
// goes behind everything already queued.
type Net struct {
	Queue []Envelope
	Down  map[msg.ReplicaID]bool
	// Filter, if set, stands on the wire when a message is sent and says
	// what is queued instead (nothing, the message, a forgery, several).
	Filter func(Envelope) []Envelope
	// Drop, if set, loses a message when it is about to be delivered.
	Drop func(Envelope) bool
	Sent int // messages queued, to check an idle cluster is silent

	t     testing.TB
	size  int
	cores Cores
}

// Core is what the network needs of a pure core.
type Core interface {
	Step(from msg.ReplicaID, m msg.Message)
	Tick()
}

// Cores is what the network does with a harness's cores: step and tick
// them, and then drain, through the harness, what each produced (its
// Ready) into the network and the harness's records.
type Cores struct {
	Deliver func(Envelope) // step the receiving core with the message
	Tick    func(i int)    // advance replica i's clock by one tick
	Drain   func(i int)    // take whatever replica i has ready
}

// NewNet returns a network between size cores.
func NewNet(t testing.TB, size int, cores Cores) *Net {
	return &Net{Down: map[msg.ReplicaID]bool{}, t: t, size: size, cores: cores}
}

// NetFor returns the network between nodes, a harness's cores, whose
// output the harness takes with drain after every step and tick. A test may
// replace a node in the slice (a restart); the network sees the new one.
func NetFor[C Core](t testing.TB, nodes []C, drain func(i int)) *Net {
	return NewNet(t, len(nodes), Cores{
		Deliver: func(e Envelope) { nodes[e.To].Step(e.From, e.Msg); drain(int(e.To)) },
		Tick:    func(i int) { nodes[i].Tick(); drain(i) },
		Drain:   drain,
	})
}

// Send queues a message unless either end is down, through Filter.
func (n *Net) Send(e Envelope) {
	if n.Down[e.From] || n.Down[e.To] {
		return
	}
	if n.Filter != nil {
		out := n.Filter(e)
		n.Sent += len(out)
		n.Queue = append(n.Queue, out...)
		return
	}
	n.Sent++
	n.Queue = append(n.Queue, e)
}

// Output sends what a core emitted: to one replica, or (broadcast) to every
// other one.
func (n *Net) Output(from msg.ReplicaID, broadcast bool, to msg.ReplicaID, m msg.Message) {
	if !broadcast {
		n.Send(Envelope{from, to, m})
		return
	}
	for j := 0; j < n.size; j++ {
		if msg.ReplicaID(j) != from {
			n.Send(Envelope{from, msg.ReplicaID(j), m})
		}
	}
}

// maxDeliveries bounds one Settle: a protocol that never goes quiet is a bug
// the test reports, not a hang.
const maxDeliveries = 50_000_000

// Settle drains every core, then delivers messages until none are left.
func (n *Net) Settle() {
	for i := 0; i < n.size; i++ {
		n.cores.Drain(i)
	}
	for k := 0; len(n.Queue) > 0; k++ {
		if k > maxDeliveries {
			n.t.Fatal("no quiescence")
		}
		e := n.Queue[0]
		n.Queue = n.Queue[1:]
		if n.Down[e.To] || (n.Drop != nil && n.Drop(e)) {
			continue
		}
		n.cores.Deliver(e)
	}
}

// Tick advances every live replica by one tick and settles, k times.
func (n *Net) Tick(k int) {
	for ; k > 0; k-- {
		for i := 0; i < n.size; i++ {
			if !n.Down[msg.ReplicaID(i)] {
				n.cores.Tick(i)
			}
		}
		n.Settle()
	}
}

// DeliverAt delivers the i-th queued message now, ahead of those before
// it: a network that reorders.
func (n *Net) DeliverAt(i int) {
	e := n.Queue[i]
	n.Queue = slices.Delete(n.Queue, i, i+1)
	n.Deliver(e)
}

// DropAt loses the i-th queued message.
func (n *Net) DropAt(i int) {
	n.Queue = slices.Delete(n.Queue, i, i+1)
}

// Deliver hands e to its receiver now, unless it is down, bypassing the
// queue (a duplicate, or what a Byzantine replica sends straight to it).
func (n *Net) Deliver(e Envelope) {
	if !n.Down[e.To] {
		n.cores.Deliver(e)
	}
}
