package pbft

import (
	"testing"

	"github.com/braid-bft/braid/internal/coretest"
	"github.com/braid-bft/braid/msg"
)

// backlog: backup 3 is handed 20 requests at once and its relays are lost;
// the primary gets them one at a time, every `every` ticks — a correct
// primary working through a backlog in order, as under overload. skip, if
// non-zero, is a request the primary never gets (censorship).
func backlog(t *testing.T, every int, skip uint64) *cluster {
	c := newCluster(t, 4, func(cfg *Config) { cfg.RequestTimeout = 10 })
	c.Filter = func(e coretest.Envelope) []coretest.Envelope {
		if _, relay := e.Msg.(*msg.ClientRequest); relay {
			return nil
		}
		return []coretest.Envelope{e}
	}
	for k := uint64(1); k <= 20; k++ {
		c.nodes[3].Request(req(k, 1))
	}
	c.Settle()
	for k := uint64(1); k <= 20; k++ {
		if k != skip {
			c.nodes[0].Request(req(k, 1))
		}
		c.Tick(every)
	}
	return c
}

// PBFT's request timer (Castro and Liskov, §4.4) restarts whenever the
// request it times executes: a primary that keeps executing what it was
// given is not suspected however long the backlog. With a deadline per
// request from its arrival, backup 3 would suspect it at tick 10, the
// view-change storm of an overloaded cluster.
func TestBacklogWorkedThroughInOrderIsNotSuspected(t *testing.T) {
	c := backlog(t, 5, 0)
	if v, _ := c.nodes[3].View(); v != 0 {
		t.Fatalf("backup 3 moved to view %d while the primary executed a request every 5 ticks (timeout 10)", v)
	}
	if got := c.nodes[3].LastDecided(); got != 20 {
		t.Fatalf("backup 3 decided %d rounds, want 20", got)
	}
	if len(c.nodes[3].watching) != 0 {
		t.Fatalf("backup 3 still watches %d requests", len(c.nodes[3].watching))
	}
}

// A request the primary leaves out is suspected once it is the oldest one
// waiting: censoring one client while serving the others does not escape
// the timer.
func TestCensoredRequestIsSuspected(t *testing.T) {
	suspected(t, backlog(t, 5, 7).nodes[3], "request-timeout", "a primary that left request 7 out")
}

// suspected fails unless nd left view 0, for the reason why.
func suspected(t *testing.T, nd *Node, why, what string) {
	t.Helper()
	if v, _ := nd.View(); v == 0 {
		t.Fatalf("replica %d never suspected %s", nd.cfg.ID, what)
	}
	if got := nd.ViewChangeReason(); got != why {
		t.Fatalf("view change reason %q, want %s", got, why)
	}
}

// slowCommits: the primary proposes 20 batches at once and every replica
// gets the commits of one more sequence number every `every` ticks, after a
// pause of `stall` ticks before the 10th — a correct primary whose cluster
// decides its pipeline steadily but slowly, as under overload, and (stall)
// one whose instance stops deciding. Backup 3 also watches (and relays) the
// 20th request, proposed last.
func slowCommits(t *testing.T, every, stall int) *cluster {
	c := newCluster(t, 4, func(cfg *Config) { cfg.ProgressTimeout = 10; cfg.RequestTimeout = 10; cfg.MaxBatch = 1 })
	released := uint64(0)
	var held []coretest.Envelope
	c.Filter = func(e coretest.Envelope) []coretest.Envelope {
		if cm, ok := e.Msg.(*msg.Commit); ok && cm.Seq > released {
			held = append(held, e)
			return nil
		}
		return []coretest.Envelope{e}
	}
	for k := uint64(1); k <= 19; k++ {
		c.nodes[0].Request(req(k, 1))
	}
	c.nodes[3].Request(req(20, 1))
	c.Tick(1)
	for seq := uint64(1); seq <= 20; seq++ {
		if seq == 10 {
			c.Tick(stall)
		}
		c.Tick(every)
		released = seq
		again := held
		held = nil
		for _, e := range again {
			c.Send(e)
		}
		c.Settle()
	}
	return c
}

// The progress timer measures how long the instance has gone without a
// decision while a pre-prepare waits, not how long each pre-prepare has
// waited: slot 20 waits 100 ticks here behind the 19 before it, but one is
// decided every 5 ticks (timeout 10). And the request backup 3 watches in
// slot 20 was proposed at once: the request timer stops there.
func TestPipelineDecidedSteadilyIsNotSuspected(t *testing.T) {
	c := slowCommits(t, 5, 0)
	for i, nd := range c.nodes {
		if v, _ := nd.View(); v != 0 {
			t.Fatalf("replica %d moved to view %d (%s) while a slot was decided every 5 ticks (timeout 10)", i, v, nd.ViewChangeReason())
		}
		if got := nd.LastDecided(); got != 20 {
			t.Fatalf("replica %d decided %d, want 20", i, got)
		}
	}
}

// An instance that stops deciding with pre-prepares accepted is suspected.
func TestPipelineThatStopsIsSuspected(t *testing.T) {
	suspected(t, slowCommits(t, 5, 30).nodes[1], "progress-timeout", "an instance that went 35 ticks without a decision (timeout 10)")
}

// A request a backup relayed — and times — is proposed before the backlog
// the primary got from clients directly: under overload that backlog is
// longer than RequestTimeout, and a relayed request queued behind it would
// make the backup suspect a correct primary.
func TestRelayedRequestsAreProposedFirst(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.MaxBatch = 10; cfg.Window = 32; cfg.CheckpointInterval = 16 })
	p := c.nodes[0]
	for k := uint64(1); k <= 1000; k++ {
		p.Request(req(k, 1)) // the window takes 320; the rest waits
	}
	c.nodes[3].Request(req(5000, 1)) // relayed by backup 3
	c.Settle()
	var at uint64
	for _, d := range c.decided[3] {
		for _, r := range d.Batch.Requests {
			if r.Client == 5000 {
				at = d.Seq
			}
		}
	}
	if at == 0 || at > 34 {
		t.Fatalf("the relayed request was decided at sequence %d; want within the first batch after the window's 32 (1..34)", at)
	}
}

// fullWindow: the primary fills its window (8 slots of one request) and
// every replica decides them, but the executor checkpoints nothing — as in
// RCC, where execution waits for the other instances — so the window stays
// full. Backup 3 relays request 100 meanwhile; the primary queues it, with
// no room to propose it, for `wait` ticks (RequestTimeout 10). With censor
// the primary never gets the relay (it "loses" it).
func fullWindow(t *testing.T, wait int, censor bool) *cluster {
	c := newCluster(t, 4, func(cfg *Config) {
		cfg.RequestTimeout, cfg.MaxBatch, cfg.CheckpointInterval, cfg.Window = 10, 1, 4, 8
	})
	if censor {
		c.Filter = func(e coretest.Envelope) []coretest.Envelope {
			if cr, ok := e.Msg.(*msg.ClientRequest); ok && cr.Request.Client == 100 {
				return nil
			}
			return []coretest.Envelope{e}
		}
	}
	c.holdCheckpoints()
	for k := uint64(1); k <= 8; k++ {
		c.nodes[0].Request(req(k, 1))
	}
	c.Settle()
	c.nodes[3].Request(req(100, 1))
	c.Settle()
	for i, nd := range c.nodes {
		if got := nd.LastDecided(); got != 8 {
			t.Fatalf("replica %d decided %d, want the whole window of 8", i, got)
		}
	}
	c.Tick(wait)
	for i, nd := range c.nodes {
		if v, _ := nd.View(); v != 0 {
			t.Fatalf("replica %d moved to view %d (%s) while the window was full and the primary could propose nothing", i, v, nd.ViewChangeReason())
		}
	}
	return c
}

// A primary whose window is full cannot propose what a backup relayed:
// the request timer waits while the window stays full (execution, not the
// primary, is what holds it), and runs again once it opens. Without the
// pause backup 3 suspected the correct primary at tick 10 — at n = 16 in
// RCC under f faulty primaries, every correct instance did (the
// f-byzantine-primaries view-change storm).
func TestFullWindowDoesNotSuspectPrimary(t *testing.T) {
	c := fullWindow(t, 30, false)
	c.releaseCheckpoints()
	c.Tick(20)
	want := req(100, 1)
	hasAll(t, c.decided[3], []msg.RequestKey{want.Key()})
	if v, _ := c.nodes[3].View(); v != 0 {
		t.Fatalf("backup 3 moved to view %d (%s) after the window opened", v, c.nodes[3].ViewChangeReason())
	}
}

// The pause is no shelter for censorship: once the window opens, a primary
// that leaves the relayed request out while serving others is suspected
// within RequestTimeout.
func TestCensoredAfterFullWindowIsSuspected(t *testing.T) {
	c := fullWindow(t, 30, true)
	c.releaseCheckpoints()
	for k := uint64(9); k <= 12; k++ {
		c.nodes[0].Request(req(k, 1))
	}
	c.Settle()
	c.Tick(15)
	suspected(t, c.nodes[3], "request-timeout", "a primary that left request 100 out once its window opened")
}
