package shell

import (
	"testing"

	"github.com/braid-bft/braid/internal/testcluster"
	"github.com/braid-bft/braid/msg"
)

// conn is a client connection that keeps what it is sent.
type conn struct {
	id     msg.ClientID
	frames int
}

func (c *conn) Client() msg.ClientID { return c.id }
func (c *conn) Send([]byte)          { c.frames++ }

// heldWorker keeps jobs until the test completes them, as busy cores would.
type heldWorker struct {
	jobs  []func()
	cores int // default 2
}

func (w *heldWorker) Cores() int {
	if w.cores == 0 {
		return 2
	}
	return w.cores
}

func (w *heldWorker) Go(work func() Cost, done func()) {
	work()
	w.jobs = append(w.jobs, done)
}

func (w *heldWorker) completeOne() {
	done := w.jobs[0]
	w.jobs = w.jobs[1:]
	done()
}

// An overloaded replica keeps at most ClientLanes(cores) client batches on
// its workers — half its cores, at least one — so its peers' frames are not
// queued behind client requests, and at most maxClientBacklog requests
// waiting; the rest are shed and counted. When a batch completes, the next
// is submitted.
func TestClientAdmissionIsBounded(t *testing.T) {
	for _, tc := range []struct{ cores, lanes int }{{1, 1}, {2, 1}, {4, 2}, {16, 8}} {
		cfg, ckey := testcluster.Config(t, 4, false)
		w := &heldWorker{cores: tc.cores}
		sh := testShell(t, cfg, 0, Deps{Disk: syncDisk{testcluster.MemStore(t)}, Worker: w})
		c := &conn{id: 0}
		offered := tc.lanes*maxClientBatch + maxClientBacklog + 100
		for k := 1; k <= offered; k++ {
			sh.OnClient(c, msg.Marshal(&msg.ClientRequest{Request: put(ckey, 0, uint64(k), "k", "v")}))
		}
		sh.Flush()
		if len(w.jobs) != tc.lanes {
			t.Fatalf("%d cores: %d client batches on the workers, want %d", tc.cores, len(w.jobs), tc.lanes)
		}
		if got := sh.Stats().ClientShed; got != 100 {
			t.Fatalf("%d cores: shed %d requests, want 100 (offered %d, room for %d)", tc.cores, got, offered, offered-100)
		}
		w.completeOne()
		sh.Flush() // the loop flushes after every completion
		if len(w.jobs) != tc.lanes {
			t.Fatalf("%d cores: after one batch completed: %d on the workers, want %d (the next one from the backlog)", tc.cores, len(w.jobs), tc.lanes)
		}
		if len(sh.clientQueue) != maxClientBacklog-maxClientBatch {
			t.Fatalf("%d cores: backlog %d, want %d", tc.cores, len(sh.clientQueue), maxClientBacklog-maxClientBatch)
		}
	}
}

// A request whose signature verified before (a client's retry) and one the
// replica already answered are not verified again: under overload every
// retry would otherwise cost a verification it already paid.
func TestKnownClientRequestsSkipVerification(t *testing.T) {
	cfg, ckey := testcluster.Config(t, 4, false)
	_, keyring, err := FromConfig(cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	crypto := &countingCrypto{Crypto: testCrypto{keyring}}
	var replies int
	sh := testShell(t, cfg, 0, Deps{Disk: syncDisk{testcluster.MemStore(t)}, Crypto: crypto,
		Observer: Observer{Replied: func(*msg.Reply) { replies++ }}})
	c := &conn{id: 0}
	req := put(ckey, 0, 1, "k", "v")
	frame := msg.Marshal(&msg.ClientRequest{Request: req})
	sh.OnClient(c, frame)
	sh.Flush()
	if crypto.n != 1 {
		t.Fatalf("%d signatures verified for one request, want 1", crypto.n)
	}
	sh.OnClient(c, frame) // the client retries before it is answered
	sh.Flush()
	if crypto.n != 1 || sh.Stats().ClientKnown != 1 {
		t.Fatalf("retry: %d signatures verified in all, %d known; want 1 and 1", crypto.n, sh.Stats().ClientKnown)
	}
	sh.execute(roundOf(1, sh.node.State(), req))
	sh.commit()
	before := replies
	sh.OnClient(c, frame) // retried after it executed: answered from the reply cache
	sh.Flush()
	if crypto.n != 1 || sh.Stats().ClientAnswered != 1 || replies != before+1 {
		t.Fatalf("after execution: %d verified, %d answered from the cache, %d replies sent; want 1, 1, 1",
			crypto.n, sh.Stats().ClientAnswered, replies-before)
	}
}
