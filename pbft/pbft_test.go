package pbft

import (
	"fmt"
	"testing"

	"github.com/braid-bft/braid/internal/coretest"
	"github.com/braid-bft/braid/msg"
)

func TestNormalCaseDecidesInOrder(t *testing.T) {
	for _, n := range []int{1, 4, 7} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			c := newCluster(t, n, func(cfg *Config) { cfg.MaxBatch = 10 })
			var want []msg.RequestKey
			for i := uint64(1); i <= 200; i++ {
				r := req(i%7, i)
				want = append(want, r.Key())
				c.nodes[0].Request(r)
				c.drain(0)
			}
			c.Tick(3)
			c.checkAgreement()
			for i := range c.nodes {
				hasAll(t, c.decided[i], want)
				if got := len(decidedRequests(c.decided[i])); got != len(want) {
					t.Fatalf("replica %d decided %d requests, want %d (a request decided twice?)", i, got, len(want))
				}
			}
			if c.nodes[0].LowWatermark() == 0 {
				t.Fatalf("no checkpoint became stable after %d decisions", c.nodes[0].LastDecided())
			}
		})
	}
}

func TestWindowLimitsOutstandingProposals(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.MaxBatch = 1; cfg.CheckpointInterval = 4; cfg.Window = 8 })
	c.Down[1], c.Down[2] = true, true // no quorum: nothing commits, so the window fills
	for i := uint64(1); i <= 20; i++ {
		c.nodes[0].Request(req(1, i))
	}
	c.Settle()
	if got := c.nodes[0].NextProposal(); got != 9 {
		t.Fatalf("primary proposed up to %d, want to stop at window 8", got-1)
	}
}

func TestCrashedPrimaryIsReplaced(t *testing.T) {
	c := newCluster(t, 4, nil)
	c.Down[0] = true
	r := req(1, 1)
	for i := 1; i < 4; i++ { // the client, ignored, broadcasts to the backups
		c.nodes[i].Request(r)
	}
	c.Tick(200)
	c.checkAgreement()
	for i := 1; i < 4; i++ {
		if v, ch := c.nodes[i].View(); v == 0 || ch {
			t.Fatalf("replica %d in view %d (changing=%v), want a new view", i, v, ch)
		}
		hasAll(t, c.decided[i], []msg.RequestKey{r.Key()})
	}
}

func TestViewChangeKeepsPreparedBatches(t *testing.T) {
	c := newCluster(t, 4, nil)
	// Deliver everything except commits: batches prepare everywhere but
	// nobody commits; then the primary dies and the new view must re-propose
	// the same batches at the same sequence numbers.
	c.Filter = func(e coretest.Envelope) []coretest.Envelope {
		if _, ok := e.Msg.(*msg.Commit); ok {
			return nil
		}
		return []coretest.Envelope{e}
	}
	r1, r2 := req(1, 1), req(2, 1)
	c.nodes[0].Request(r1)
	c.nodes[0].Request(r2)
	c.Tick(2)
	prepared := len(c.nodes[1].prepared)
	if prepared == 0 {
		t.Fatal("nothing prepared")
	}
	c.Filter = nil
	c.Down[0] = true
	for i := 1; i < 4; i++ {
		c.nodes[i].Suspect()
	}
	c.Tick(100)
	c.checkAgreement()
	for i := 1; i < 4; i++ {
		hasAll(t, c.decided[i], []msg.RequestKey{r1.Key(), r2.Key()})
	}
}

func TestEquivocatingPrimaryCannotSplitDecisions(t *testing.T) {
	c := newCluster(t, 4, nil)
	// Replica 0 sends batch A to replica 1 and batch B to replicas 2 and 3.
	alt := func(pp *msg.PrePrepare) *msg.PrePrepare {
		q := *pp
		q.Batch = msg.Batch{Requests: []msg.Request{req(99, pp.Seq)}}
		q.Digest = q.Batch.Digest()
		return &q
	}
	c.Filter = func(e coretest.Envelope) []coretest.Envelope {
		if pp, ok := e.Msg.(*msg.PrePrepare); ok && e.From == 0 && e.To >= 2 {
			return []coretest.Envelope{{From: e.From, To: e.To, Msg: alt(pp)}}
		}
		return []coretest.Envelope{e}
	}
	for i := uint64(1); i <= 5; i++ {
		r := req(1, i)
		for j := range c.nodes {
			c.nodes[j].Request(r)
		}
	}
	c.Tick(300)
	c.checkAgreement()
	for i := 1; i < 4; i++ {
		if v, _ := c.nodes[i].View(); v == 0 {
			t.Fatalf("replica %d stayed in view 0 under an equivocating primary", i)
		}
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	c := newCluster(t, 4, nil)
	c.nodes[0].Request(req(1, 1))
	c.Tick(2)
	nd := c.nodes[1]
	good := &msg.PrePrepare{Instance: 0, View: 0, Seq: 2, From: 0, Batch: msg.Batch{Requests: []msg.Request{req(3, 1)}}}
	good.Digest = good.Batch.Digest()
	mut := func(f func(p *msg.PrePrepare)) *msg.PrePrepare { q := *good; f(&q); return &q }
	bigBatch := msg.Batch{Requests: make([]msg.Request, 101)}
	cases := []struct {
		name   string
		from   msg.ReplicaID
		m      msg.Message
		reason string
	}{
		{"wrong instance", 0, mut(func(p *msg.PrePrepare) { p.Instance = 7 }), "wrong-instance"},
		{"unknown link sender", 9, good, "unknown-sender"},
		{"unknown claimed sender", 0, mut(func(p *msg.PrePrepare) { p.From = 42 }), "unknown-sender"},
		{"pre-prepare from backup", 2, mut(func(p *msg.PrePrepare) { p.From = 2 }), "pre-prepare-not-from-primary"},
		{"future view", 0, mut(func(p *msg.PrePrepare) { p.View = 5 }), "future-view"},
		{"beyond window", 0, mut(func(p *msg.PrePrepare) { p.Seq = 1000 }), "out-of-window"},
		{"digest mismatch", 0, mut(func(p *msg.PrePrepare) { p.Digest[0] ^= 1 }), "bad-digest"},
		{"null outside new view", 0, mut(func(p *msg.PrePrepare) { p.Null = true }), "null-outside-new-view"},
		{"oversized batch", 0, mut(func(p *msg.PrePrepare) { p.Batch = bigBatch; p.Digest = bigBatch.Digest() }), "oversized-batch"},
		{"duplicate in batch", 0, mut(func(p *msg.PrePrepare) {
			p.Batch = msg.Batch{Requests: []msg.Request{req(3, 1), req(3, 1)}}
			p.Digest = p.Batch.Digest()
		}), "duplicate-in-batch"},
		{"equivocation", 0, mut(func(p *msg.PrePrepare) {
			p.Seq = 1
			p.Batch = msg.Batch{Requests: []msg.Request{req(5, 5)}}
			p.Digest = p.Batch.Digest()
		}), "equivocation"},
		{"forged commit", 2, &msg.Commit{View: 0, Seq: 2, From: 3}, "forged-sender"},
		{"prepare from primary", 0, &msg.Prepare{View: 0, Seq: 2, From: 0}, "prepare-from-primary"},
		{"checkpoint off interval", 2, &msg.Checkpoint{Seq: 3, From: 2}, "bad-checkpoint-seq"},
		{"view change with fake checkpoint proof", 2, &msg.ViewChange{NewView: 1, StableSeq: 16, From: 2}, "bad-view-change-checkpoint"},
		{"view change with short prepared proof", 2, &msg.ViewChange{NewView: 1, From: 2, Prepared: []msg.PreparedProof{{PrePrepare: *good}}}, "bad-view-change-prepared"},
		{"new view from non-primary", 2, &msg.NewView{View: 1, From: 2}, "new-view-not-from-primary"},
		{"new view without quorum", 2, &msg.NewView{View: 2, From: 2}, "bad-new-view-quorum"},
		{"relay to backup", 2, &msg.ClientRequest{Request: req(4, 1)}, "relay-to-non-primary"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := fingerprint(nd)
			dropped := nd.Stats().Dropped[tc.reason]
			nd.Step(tc.from, tc.m)
			if after := fingerprint(nd); after != before {
				t.Fatalf("state changed:\nbefore %s\nafter  %s", before, after)
			}
			if got := nd.Stats().Dropped[tc.reason]; got != dropped+1 {
				t.Fatalf("drop %q counted %d times, want %d; drops: %v", tc.reason, got, dropped+1, nd.Stats().Dropped)
			}
		})
	}
}

func TestRestartedReplicaKeepsItsWord(t *testing.T) {
	c := newCluster(t, 4, nil)
	for i := uint64(1); i <= 30; i++ {
		c.nodes[0].Request(req(1, i))
	}
	c.Tick(3)
	// Replica 2 crashes and restarts from its records.
	old := c.nodes[2]
	cfg := old.cfg
	fresh, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fresh.Restore(c.records[2], old.LastDecided(), nil)
	if fresh.view != old.view || fresh.low != old.low {
		t.Fatalf("restored view/low %d/%d, want %d/%d", fresh.view, fresh.low, old.view, old.low)
	}
	for seq, s := range old.slots {
		if s.prepares[cfg.ID] != nil {
			fs := fresh.slots[seq]
			if fs == nil || fs.prepares[cfg.ID] == nil || fs.prepares[cfg.ID].Digest != s.prepares[cfg.ID].Digest {
				t.Fatalf("restored replica forgot its prepare for seq %d", seq)
			}
		}
	}
	c.nodes[2] = fresh
	for i := uint64(31); i <= 60; i++ {
		c.nodes[0].Request(req(1, i))
	}
	c.Tick(30)
	c.checkAgreement()
	if got, want := fresh.LastDecided(), c.nodes[0].LastDecided(); got != want {
		t.Fatalf("restarted replica decided up to %d, others %d", got, want)
	}
}

// A replica that missed everything for one sequence number but committed
// the next must notice the gap and fetch what it missed.
func TestReplicaRecoversFromAGap(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.MaxBatch = 1 })
	seqOf := func(m msg.Message) uint64 {
		switch x := m.(type) {
		case *msg.PrePrepare:
			return x.Seq
		case *msg.Prepare:
			return x.Seq
		case *msg.Commit:
			return x.Seq
		}
		return 0
	}
	c.Filter = func(e coretest.Envelope) []coretest.Envelope {
		if e.To == 3 && seqOf(e.Msg) == 1 {
			return nil
		}
		return []coretest.Envelope{e}
	}
	c.nodes[0].Request(req(1, 1))
	c.Tick(1)
	c.Filter = nil
	c.nodes[0].Request(req(1, 2))
	c.Tick(30)
	c.checkAgreement()
	if got := c.nodes[3].LastDecided(); got != 2 {
		t.Fatalf("replica 3 decided up to %d, want 2 (it never learned seq 1)", got)
	}
}

// Watches for requests overtaken by a later request of the same client must
// not make a backup suspect a correct primary.
func TestOvertakenWatchDoesNotSuspect(t *testing.T) {
	c := newCluster(t, 4, nil)
	c.Filter = func(e coretest.Envelope) []coretest.Envelope {
		if _, relay := e.Msg.(*msg.ClientRequest); relay {
			return nil // the relay of (9,5) is lost
		}
		return []coretest.Envelope{e}
	}
	c.nodes[3].Request(req(9, 5)) // backup 3 starts watching (9,5)
	c.Settle()
	c.Filter = nil
	c.nodes[0].Request(req(9, 6)) // the client moved on; 6 is decided
	c.Tick(200)
	if _, still := c.nodes[3].watching[msg.RequestKey{Client: 9, Number: 5}]; still {
		t.Fatal("overtaken watch kept")
	}
	if v, _ := c.nodes[3].View(); v != 0 {
		t.Fatalf("backup moved to view %d over an overtaken request", v)
	}
}

// A replica that starts a view change alone (nobody else suspects the
// primary) does not climb further views on its own: it stays at the view it
// asked for, where the others' next view change will meet it, instead of a
// ladder of doubling timeouts above them.
func TestLoneViewChangeDoesNotClimb(t *testing.T) {
	nd, err := New(Config{ID: 3, N: 4, Primary: roundRobin(4), Signer: coretest.Signer{ID: 3}, ViewChangeTimeout: 5})
	if err != nil {
		t.Fatal(err)
	}
	nd.startViewChange(1, "test")
	for i := 0; i < 500; i++ {
		nd.Tick()
		nd.Ready()
	}
	if v, changing := nd.View(); v != 1 || !changing {
		t.Fatalf("alone in a view change for 500 ticks: view %d (changing %v), want to still wait for view 1", v, changing)
	}
}
