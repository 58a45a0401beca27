package rcc

import (
	"fmt"
	"slices"
	"testing"

	"github.com/braid-bft/braid/internal/coretest"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/pbft"
)

// Tests for docs/adversary.md: faulty primaries of the paradigm layer.

// censor makes replica p drop every request of client cl that reaches it
// (relayed by a backup); the test never hands p the client's requests
// directly. p proposes everyone else's requests as usual: a primary that
// serves all but the clients it chose.
func censor(c *cluster, p msg.ReplicaID, cl msg.ClientID) {
	c.Filter = func(e coretest.Envelope) []coretest.Envelope {
		if cr, ok := e.Msg.(*msg.ClientRequest); ok && e.To == p && cr.Request.Client == cl {
			return nil
		}
		return []coretest.Envelope{e}
	}
}

// toAllBut hands r to every live replica except p: a client that its
// primary ignores broadcasts, and the censor drops what it gets.
func toAllBut(c *cluster, p msg.ReplicaID, r msg.Request) {
	for i, nd := range c.nodes {
		if msg.ReplicaID(i) != p && !c.Down[msg.ReplicaID(i)] {
			nd.Request(r)
			c.drain(i)
		}
	}
}

// A primary that censors one client while proposing its other clients'
// requests is suspected through the backups' watches on the censored
// client's relayed request. Under replacement (m ≤ n−f) its instance fails
// and Figure 4 installs another primary, which serves the client; under
// in-place recovery the same primary comes back, so the client moves: an
// instance change to another instance, carrying its operation under the
// same request number, executes there.
func TestCensoringPrimary(t *testing.T) {
	t.Run("replace", func(t *testing.T) {
		c := newCluster(t, 4, 3) // clients 0 and 3 are instance 0's; its primary is replica 0
		censor(c, 0, 3)
		var keys []msg.RequestKey
		for num := uint64(1); num <= 5; num++ {
			served := msg.Request{Client: 0, Number: num, Op: []byte("served")}
			censored := msg.Request{Client: 3, Number: num, Op: []byte("censored")}
			keys = append(keys, served.Key(), censored.Key())
			c.submit(served, false)
			toAllBut(c, 0, censored)
			c.Tick(1)
		}
		c.Tick(400)
		c.checkAgreement()
		c.checkPrimaries()
		c.mustExecute(keys)
		if p := c.nodes[1].Primaries()[0]; p == 0 {
			t.Fatalf("instance 0 still led by the censoring replica 0 (failed %v)", c.nodes[1].Failed())
		}
	})
	t.Run("in-place", func(t *testing.T) {
		c := newCluster(t, 4, 4) // clients 0 and 4 are instance 0's; its primary is replica 0
		censor(c, 0, 4)
		var keys []msg.RequestKey
		for num := uint64(1); num <= 3; num++ {
			served := msg.Request{Client: 0, Number: num, Op: []byte("served")}
			keys = append(keys, served.Key())
			c.submit(served, false)
			c.Tick(1)
		}
		first := msg.Request{Client: 4, Number: 1, Op: []byte("censored")}
		toAllBut(c, 0, first)
		c.Tick(200)
		if c.executed[1][first.Key()] {
			t.Fatal("the censored request executed at instance 0: the censor did not censor")
		}
		// The client gives up on instance 0: the same number, its
		// operation carried by an instance change to instance 1.
		change := msg.Request{Client: 4, Number: 1, Op: msg.InstanceChangeOp(1, first.Op)}
		keys = append(keys, change.Key())
		c.submit(change, true)
		c.Tick(300)
		if got := c.nodes[1].InstanceFor(4); got != 1 {
			t.Fatalf("client 4 served by instance %d after its instance change, want 1", got)
		}
		for num := uint64(2); num <= 4; num++ {
			r := msg.Request{Client: 4, Number: num, Op: []byte("moved")}
			keys = append(keys, r.Key())
			c.submit(r, false)
			c.Tick(2)
		}
		c.Tick(100)
		c.checkAgreement()
		c.mustExecute(keys)
	})
}

// The last instance to decide a round does not choose its place in the
// round's order: nothing of the round executes until every instance has
// decided it, and the order is Figure 3's f_S(Hash(S) mod |S|!) over S
// sorted by instance, whatever order the decisions arrived in. (What the
// last proposer can still do is try batch variants until the hash suits it:
// grinding, a known limit, docs/protocol.md §R2; TestPrimaryCannotChoosePosition
// shows each try moves it uniformly over the positions.)
func TestLastDecisionDoesNotChooseItsPosition(t *testing.T) {
	const m = 4
	row := make([]*pbft.Decision, m)
	for i := range row {
		row[i] = decision(uint32(i), 1, msg.Request{Client: msg.ClientID(i), Number: 1, Op: []byte(fmt.Sprintf("op-%d", i))})
	}
	var seeds []SeedEntry
	for i, d := range row {
		seeds = append(seeds, SeedEntry{Instance: uint32(i), Digest: d.Digest})
	}
	var want []uint32
	for _, idx := range ExecutionOrder(RoundSeed(1, seeds), m) {
		want = append(want, seeds[idx].Instance)
	}
	orders := [][]int{{0, 1, 2, 3}, {3, 2, 1, 0}, {1, 3, 0, 2}, {2, 0, 3, 1}}
	for _, arrival := range orders {
		nd, err := New(Config{ID: 0, N: 4, M: m, Clients: []msg.ClientID{0, 1, 2, 3}, Instance: pbft.Config{
			Signer: coretest.Signer{ID: 0}, MaxBatch: 4, CheckpointInterval: 8, Window: 32,
			RequestTimeout: 30, ProgressTimeout: 30, ViewChangeTimeout: 30, RetransmitTicks: 5,
		}})
		if err != nil {
			t.Fatal(err)
		}
		nd.pending[1] = make([]*pbft.Decision, m)
		for k, i := range arrival {
			nd.pending[1][i] = row[i]
			nd.executeReady()
			if k < m-1 && nd.Executed() != 0 {
				t.Fatalf("arrival %v: round 1 executed with %d of %d decisions", arrival, k+1, m)
			}
		}
		rd := nd.Ready()
		if len(rd.Rounds) != 1 {
			t.Fatalf("arrival %v: %d rounds executed, want 1", arrival, len(rd.Rounds))
		}
		var got []uint32
		for _, b := range rd.Rounds[0].Batches {
			got = append(got, b.Instance)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("arrival %v (instance %d last): order %v, want %v, the same for every arrival order",
				arrival, arrival[m-1], got, want)
		}
	}
}
