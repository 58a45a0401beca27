package rcc

import (
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/pbft"
)

type hashSigner struct{ id msg.ReplicaID }

func (s hashSigner) Sign(p []byte) []byte {
	h := sha256.Sum256(append([]byte{byte(s.id)}, p...))
	return h[:8]
}

type envelope struct {
	from, to msg.ReplicaID
	m        msg.Message
}

// cluster drives n paradigm nodes over a FIFO network, executing rounds on
// a hash chain so divergence is visible.
type cluster struct {
	t        *testing.T
	nodes    []*Node
	queue    []envelope
	down     map[msg.ReplicaID]bool
	rounds   [][]Round
	chain    []msg.Digest
	executed []map[msg.RequestKey]bool
	sent     int // messages sent, to check an idle cluster is silent
}

func newCluster(t *testing.T, n, m int) *cluster {
	c := &cluster{t: t, down: map[msg.ReplicaID]bool{}}
	for i := 0; i < n; i++ {
		nd, err := New(Config{ID: msg.ReplicaID(i), N: n, M: m, Instance: pbft.Config{
			Signer: hashSigner{msg.ReplicaID(i)}, MaxBatch: 4, CheckpointInterval: 8, Window: 32,
			RequestTimeout: 30, ProgressTimeout: 30, ViewChangeTimeout: 30, RetransmitTicks: 5,
		}})
		if err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, nd)
		c.executed = append(c.executed, map[msg.RequestKey]bool{})
	}
	c.rounds = make([][]Round, n)
	c.chain = make([]msg.Digest, n)
	return c
}

func (c *cluster) drain(i int) {
	nd := c.nodes[i]
	for nd.HasReady() {
		rd := nd.Ready()
		for _, o := range rd.Messages {
			for j := range c.nodes {
				if (o.Broadcast && j != i) || (!o.Broadcast && int(o.To) == j) {
					if !c.down[msg.ReplicaID(i)] && !c.down[msg.ReplicaID(j)] {
						c.queue = append(c.queue, envelope{msg.ReplicaID(i), msg.ReplicaID(j), o.Msg})
						c.sent++
					}
				}
			}
		}
		if rd.StateTransfer != nil {
			c.t.Fatalf("replica %d needs state transfer; the unit harness does not do that", i)
		}
		for _, r := range rd.Rounds {
			c.rounds[i] = append(c.rounds[i], r)
			for _, b := range r.Batches {
				for _, q := range b.Batch.Requests {
					c.executed[i][q.Key()] = true
				}
				c.chain[i] = sha256.Sum256(append(c.chain[i][:], b.Digest[:]...))
			}
			if r.Round%8 == 0 {
				nd.Checkpoint(r.Round, c.chain[i])
			}
		}
	}
}

func (c *cluster) run() {
	for i := range c.nodes {
		c.drain(i)
	}
	for len(c.queue) > 0 {
		e := c.queue[0]
		c.queue = c.queue[1:]
		if c.down[e.to] {
			continue
		}
		c.nodes[e.to].Step(e.from, e.m)
		c.drain(int(e.to))
	}
}

func (c *cluster) tick(k int) {
	for ; k > 0; k-- {
		for i, nd := range c.nodes {
			if !c.down[msg.ReplicaID(i)] {
				nd.Tick()
				c.drain(i)
			}
		}
		c.run()
	}
}

// submit sends a request to its instance's primary, or (broadcast) to all.
func (c *cluster) submit(r msg.Request, broadcast bool) {
	inst := c.nodes[0].InstanceFor(r.Client)
	for i, nd := range c.nodes {
		if c.down[msg.ReplicaID(i)] {
			continue
		}
		if broadcast || PrimaryOf(len(c.nodes), inst, 0) == msg.ReplicaID(i) {
			nd.Request(r)
			c.drain(i)
		}
	}
}

func (c *cluster) checkAgreement() {
	c.t.Helper()
	for i := range c.rounds {
		for j := range c.rounds {
			a, b := c.rounds[i], c.rounds[j]
			for k := 0; k < min(len(a), len(b)); k++ {
				if a[k].Round != b[k].Round || a[k].Seed != b[k].Seed || len(a[k].Batches) != len(b[k].Batches) {
					c.t.Fatalf("replicas %d and %d executed round %d differently", i, j, a[k].Round)
				}
				for x := range a[k].Batches {
					if a[k].Batches[x].Digest != b[k].Batches[x].Digest {
						c.t.Fatalf("replicas %d and %d ordered round %d differently", i, j, a[k].Round)
					}
				}
			}
		}
	}
}

func TestRoundsExecuteIdenticallyEverywhere(t *testing.T) {
	for _, tc := range []struct{ n, m int }{{4, 1}, {4, 3}, {4, 4}, {7, 5}, {7, 7}} {
		t.Run(fmt.Sprintf("n=%d/m=%d", tc.n, tc.m), func(t *testing.T) {
			c := newCluster(t, tc.n, tc.m)
			var keys []msg.RequestKey
			for num := uint64(1); num <= 10; num++ {
				for cl := msg.ClientID(0); cl < 12; cl++ {
					r := msg.Request{Client: cl, Number: num, Op: []byte("x")}
					keys = append(keys, r.Key())
					c.submit(r, false)
				}
				c.tick(1)
			}
			c.tick(5)
			c.checkAgreement()
			for i := range c.nodes {
				for _, k := range keys {
					if !c.executed[i][k] {
						t.Fatalf("replica %d never executed %v (executed %d rounds)", i, k, c.nodes[i].Executed())
					}
				}
			}
		})
	}
}

func TestIdleClusterIsSilent(t *testing.T) {
	c := newCluster(t, 4, 4)
	c.submit(msg.Request{Client: 1, Number: 1, Op: []byte("x")}, false)
	c.tick(5)
	if c.nodes[0].Executed() == 0 {
		t.Fatal("nothing executed")
	}
	before := c.sent
	c.tick(200)
	if c.sent != before {
		t.Fatalf("idle cluster sent %d messages in 200 ticks", c.sent-before)
	}
}

// With instance 0's primary crashed, the other instances keep deciding
// (wait-freedom), instance 0 is suspected through the soft-failure rule and
// replaced, and every request — instance 0's clients' too — executes.
func TestCrashedPrimaryDoesNotStopOtherInstances(t *testing.T) {
	c := newCluster(t, 4, 4)
	c.down[0] = true
	var keys []msg.RequestKey
	for num := uint64(1); num <= 10; num++ {
		for cl := msg.ClientID(0); cl < 8; cl++ {
			r := msg.Request{Client: cl, Number: num, Op: []byte("y")}
			keys = append(keys, r.Key())
			c.submit(r, c.nodes[0].InstanceFor(cl) == 0) // instance 0's clients were ignored: they broadcast
		}
		c.tick(1)
	}
	// Wait-freedom: instances 1..3 decided their rounds while instance 0 has not.
	if got := c.nodes[1].Instance(1).LastDecided(); got < 10 {
		t.Fatalf("instance 1 decided only %d rounds while instance 0 was down", got)
	}
	c.tick(300)
	c.checkAgreement()
	for i := 1; i < 4; i++ {
		for _, k := range keys {
			if !c.executed[i][k] {
				t.Fatalf("replica %d never executed %v (executed %d rounds)", i, k, c.nodes[i].Executed())
			}
		}
		if v, _ := c.nodes[i].Instance(0).View(); v == 0 {
			t.Fatalf("instance 0 still in view 0 at replica %d", i)
		}
	}
}
