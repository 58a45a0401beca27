package shell

import (
	"testing"

	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/config"
	"github.com/braid-bft/braid/internal/testcluster"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/storage"
)

// recordNet keeps what the shell sent.
type recordNet struct{ sent []msg.Message }

func (n *recordNet) Send(to msg.ReplicaID, frame []byte) { n.record(frame) }
func (n *recordNet) Broadcast(frame []byte)              { n.record(frame) }
func (n *recordNet) record(frame []byte) {
	m, err := msg.Unmarshal(frame)
	if err != nil {
		panic(err)
	}
	n.sent = append(n.sent, m)
}

func (n *recordNet) count(kind msg.Kind) int {
	c := 0
	for _, m := range n.sent {
		if m.Kind() == kind {
			c++
		}
	}
	return c
}

// laterDisk completes commits only when the test says so.
type laterDisk struct {
	storage.Interface
	commits []func(error)
	syncs   int
}

func (d *laterDisk) Commit(done func(error)) { d.commits = append(d.commits, done) }

func (d *laterDisk) complete() {
	for len(d.commits) > 0 {
		done := d.commits[0]
		d.commits = d.commits[1:]
		d.syncs++
		done(d.Sync())
	}
}

func pipelineShell(t *testing.T, cfg *config.Config, id int) (*Shell, *recordNet, *laterDisk) {
	t.Helper()
	mem, err := storage.NewMemory(storage.Options{Fsync: storage.GroupCommit{Interval: 1}})
	if err != nil {
		t.Fatal(err)
	}
	net, disk := &recordNet{}, &laterDisk{Interface: mem}
	return testShell(t, cfg, id, Deps{Net: net, Disk: disk}), net, disk
}

// prePrepare is instance inst's view-0 proposal of reqs at seq, signed by
// its primary.
func prePrepare(t *testing.T, cfg *config.Config, inst uint32, seq uint64, reqs ...msg.Request) *msg.PrePrepare {
	t.Helper()
	from := msg.PrimaryOf(cfg.N, inst, 0)
	key, err := cfg.ReplicaKey(int(from))
	if err != nil {
		t.Fatal(err)
	}
	pp := &msg.PrePrepare{Instance: inst, View: 0, Seq: seq, From: from, Batch: msg.Batch{Requests: reqs}}
	pp.Digest = pp.Batch.Digest()
	pp.Sig = auth.ReplicaSigner(key).Sign(msg.SignedBytes(pp))
	return pp
}

// A backup's prepare for a pre-prepare leaves only once the record of it
// is durable: the core has stepped and asked, the commit is in flight, and
// nothing goes out until it completes.
func TestPrepareWaitsForItsCommit(t *testing.T) {
	cfg, ckey := testcluster.Config(t, 4, false)
	sh, net, disk := pipelineShell(t, cfg, 1)
	pp := prePrepare(t, cfg, 0, 1, put(ckey, 0, 1, "k", "v"))
	sh.OnPeer(pp.From, msg.Marshal(pp))
	sh.Flush()
	if len(disk.commits) != 1 {
		t.Fatalf("%d commits asked for after a pre-prepare, want 1", len(disk.commits))
	}
	if c := net.count(msg.KindPrepare); c != 0 {
		t.Fatalf("sent %d prepares before their record was durable", c)
	}
	disk.complete()
	if c := net.count(msg.KindPrepare); c != 1 {
		t.Fatalf("sent %d prepares after the commit, want 1", c)
	}
}

// Proposals of every instance that arrive in one pass of the loop cost one
// group commit, not one each; the core keeps stepping while it is in
// flight, and later records wait for a later commit.
func TestOneCommitAcrossInstances(t *testing.T) {
	cfg, ckey := testcluster.Config(t, 4, false)
	sh, net, disk := pipelineShell(t, cfg, 3)
	m := uint32(cfg.M)
	for inst := range m {
		pp := prePrepare(t, cfg, inst, 1, put(ckey, 0, uint64(inst)+1, "k", "v"))
		sh.OnPeer(pp.From, msg.Marshal(pp))
	}
	sh.Flush()
	if len(disk.commits) != 1 {
		t.Fatalf("%d commits for %d instances' pre-prepares in one pass, want 1", len(disk.commits), m)
	}
	// A second pass while the first commit is in flight.
	pp := prePrepare(t, cfg, 0, 2, put(ckey, 0, 9, "k", "w"))
	sh.OnPeer(pp.From, msg.Marshal(pp))
	sh.Flush()
	if len(disk.commits) != 2 || net.count(msg.KindPrepare) != 0 {
		t.Fatalf("second pass: %d commits asked, %d prepares sent; want 2 and 0", len(disk.commits), net.count(msg.KindPrepare))
	}
	disk.complete()
	if c := net.count(msg.KindPrepare); c != int(m)+1 {
		t.Fatalf("sent %d prepares after both commits, want %d", c, m+1)
	}
}

// A pre-prepare with one bad client signature among its batch is dropped
// and charged to the replica that sent it; a good one reaches the core.
func TestBatchVerificationChargesSender(t *testing.T) {
	cfg, ckey := testcluster.Config(t, 4, false)
	sh, _, disk := pipelineShell(t, cfg, 1)
	reqs := []msg.Request{put(ckey, 0, 1, "k", "v"), put(ckey, 0, 2, "k", "v"), put(ckey, 0, 3, "k", "v")}
	bad := append([]msg.Request(nil), reqs...)
	bad[1].Sig = append([]byte(nil), bad[1].Sig...)
	bad[1].Sig[5] ^= 1
	pp := prePrepare(t, cfg, 0, 1, bad...)
	sh.OnPeer(pp.From, msg.Marshal(pp))
	sh.Flush()
	if sh.Charged()[pp.From] != 1 || len(disk.commits) != 0 {
		t.Fatalf("bad batch: sender charged %d times, %d commits; want 1 and 0", sh.Charged()[pp.From], len(disk.commits))
	}
	pp = prePrepare(t, cfg, 0, 1, reqs...)
	sh.OnPeer(pp.From, msg.Marshal(pp))
	sh.Flush()
	if sh.Charged()[pp.From] != 1 || len(disk.commits) != 1 {
		t.Fatalf("good batch: sender charged %d times, %d commits; want 1 and 1", sh.Charged()[pp.From], len(disk.commits))
	}
}

// countingCrypto counts the signatures it is asked to verify.
type countingCrypto struct {
	Crypto
	n     int // signatures
	calls int // VerifyAll calls
}

func (c *countingCrypto) Replica(id msg.ReplicaID, p, sig []byte) bool {
	c.n++
	return c.Crypto.Replica(id, p, sig)
}

func (c *countingCrypto) Client(id msg.ClientID, p, sig []byte) bool {
	c.n++
	return c.Crypto.Client(id, p, sig)
}

func (c *countingCrypto) VerifyAll(items []msg.Signature) []bool {
	c.n += len(items)
	c.calls++
	return c.Crypto.VerifyAll(items)
}

// The frames of one pass are verified in one batch, and a forged one among
// them is dropped and charged to its sender without taking the others with
// it.
func TestPeerFramesOfOnePassVerifiedTogether(t *testing.T) {
	cfg, ckey := testcluster.Config(t, 4, false)
	_, keyring, err := FromConfig(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	crypto := &countingCrypto{Crypto: testCrypto{keyring}}
	disk := &laterDisk{Interface: testcluster.MemStore(t)}
	sh := testShell(t, cfg, 1, Deps{Disk: disk, Crypto: crypto, Worker: &costWorker{}})
	pp := prePrepare(t, cfg, 0, 1, put(ckey, 0, 1, "a", "1"))
	prepare := func(id int, forge bool) *msg.Prepare {
		key, err := cfg.ReplicaKey(id)
		if err != nil {
			t.Fatal(err)
		}
		p := &msg.Prepare{Instance: 0, View: 0, Seq: 1, Digest: pp.Digest, From: msg.ReplicaID(id)}
		sig := auth.ReplicaSigner(key).Sign(msg.SignedBytes(p))
		if forge {
			sig[3] ^= 1
		}
		msg.SetSig(p, sig)
		return p
	}
	sh.OnPeer(pp.From, msg.Marshal(pp))
	sh.OnPeer(2, msg.Marshal(prepare(2, false)))
	sh.OnPeer(3, msg.Marshal(prepare(3, true)))
	sh.Flush()
	if crypto.calls != 1 || crypto.n != 4 {
		t.Fatalf("%d verification calls for %d signatures; want 1 for 4 (request, pre-prepare, two prepares)", crypto.calls, crypto.n)
	}
	if ch := sh.Charged(); ch[3] != 1 || ch[0] != 0 || ch[2] != 0 {
		t.Fatalf("charged %v; want only replica 3, once", ch)
	}
	if len(disk.commits) == 0 {
		t.Fatal("the good pre-prepare was not accepted: nothing was persisted")
	}
}

// costWorker runs jobs inline and sums what they say they spent.
type costWorker struct{ spent Cost }

func (w *costWorker) Cores() int { return 2 }

func (w *costWorker) Go(work func() Cost, done func()) {
	c := work()
	w.spent.Verifications += c.Verifications
	done()
}

// A signature is verified once, whatever carries it: a view change that
// re-carries a pre-prepare (and its client requests) the replica verified
// in the normal case pays only for its own signature and the prepares it
// has not seen, and so does every re-sent view change for a higher view.
// The simulator is charged what was verified, not a flat one per frame.
func TestNestedSignaturesVerifiedOnce(t *testing.T) {
	cfg, ckey := testcluster.Config(t, 4, false)
	_, keyring, err := FromConfig(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	crypto, worker := &countingCrypto{Crypto: testCrypto{keyring}}, &costWorker{}
	sh := testShell(t, cfg, 1, Deps{Disk: syncDisk{testcluster.MemStore(t)}, Crypto: crypto, Worker: worker})
	pp := prePrepare(t, cfg, 0, 1, put(ckey, 0, 1, "a", "1"), put(ckey, 0, 2, "b", "2"), put(ckey, 0, 3, "c", "3"))
	sh.OnPeer(pp.From, msg.Marshal(pp))
	sh.Flush()
	if crypto.n != 4 || worker.spent.Verifications != 4 {
		t.Fatalf("pre-prepare with 3 requests: %d signatures verified, %d charged; want 4 and 4", crypto.n, worker.spent.Verifications)
	}
	sign := func(id int, m msg.Message) {
		key, err := cfg.ReplicaKey(id)
		if err != nil {
			t.Fatal(err)
		}
		msg.SetSig(m, auth.ReplicaSigner(key).Sign(msg.SignedBytes(m)))
	}
	var prepares []msg.Prepare
	for _, id := range []int{2, 3} {
		p := &msg.Prepare{Instance: 0, View: 0, Seq: 1, Digest: pp.Digest, From: msg.ReplicaID(id)}
		sign(id, p)
		prepares = append(prepares, *p)
	}
	for i, view := range []uint64{1, 2} {
		vc := &msg.ViewChange{Instance: 0, NewView: view, From: 2,
			Prepared: []msg.PreparedProof{{PrePrepare: *pp, Prepares: prepares}}}
		sign(2, vc)
		before, charged := crypto.n, worker.spent.Verifications
		sh.OnPeer(2, msg.Marshal(vc))
		sh.Flush()
		want := 1 // the view change's own signature
		if i == 0 {
			want += len(prepares) // the prepares arrive first inside it
		}
		if got := crypto.n - before; got != want || worker.spent.Verifications-charged != want {
			t.Fatalf("view change for view %d: %d signatures verified, %d charged; want %d (the rest verified before)",
				view, got, worker.spent.Verifications-charged, want)
		}
	}
}

// A round's replies leave when it executes, not once its block is durable:
// the round was decided, and its deciding quorum made the prepares behind
// its commits durable before sending them, so a crash that loses the block
// re-learns and re-executes the same round to the same results. Waiting
// cost every request one more fsync on its critical path.
func TestRepliesDoNotWaitForTheBlock(t *testing.T) {
	cfg, ckey := testcluster.Config(t, 4, false)
	mem := testcluster.MemStore(t)
	disk := &laterDisk{Interface: mem}
	var replies int
	r := testShell(t, cfg, 1, Deps{Disk: disk, Observer: Observer{Replied: func(*msg.Reply) { replies++ }}})
	r.execute(roundOf(1, r.node.State(), put(ckey, 0, 1, "k", "v")))
	r.commit()
	if len(disk.commits) != 1 || replies != 1 {
		t.Fatalf("block commit asked %d times, %d replies sent before it completed; want 1 and 1", len(disk.commits), replies)
	}
}

// heldCostWorker keeps jobs until the test completes them, as busy cores
// would, and records each job's signature count.
type heldCostWorker struct {
	cores int
	jobs  []func()
	sizes []int
}

func (w *heldCostWorker) Cores() int { return w.cores }

func (w *heldCostWorker) Go(work func() Cost, done func()) {
	w.sizes = append(w.sizes, work().Verifications)
	w.jobs = append(w.jobs, done)
}

// While every core checks earlier frames, peer frames that arrive wait and
// then go to the next free core as one batch: a busy replica checks votes
// dozens at a time (a batch verification costs about half as much per
// signature), not one job per pass of the loop, each queued behind the
// others (the n = 32 simulation: most peer signatures checked alone and
// 80 ms of them queued ahead of every vote).
func TestPeerFramesWaitForAFreeCoreAndGoTogether(t *testing.T) {
	cfg, ckey := testcluster.Config(t, 4, false)
	w := &heldCostWorker{cores: 2}
	sh := testShell(t, cfg, 1, Deps{Disk: syncDisk{testcluster.MemStore(t)}, Worker: w})
	var pps []*msg.PrePrepare
	for seq := uint64(1); seq <= 6; seq++ {
		pps = append(pps, prePrepare(t, cfg, 0, seq, put(ckey, 0, seq, "k", "v")))
	}
	for _, pp := range pps { // six passes of the loop, one frame each
		sh.OnPeer(pp.From, msg.Marshal(pp))
		sh.Flush()
	}
	if len(w.jobs) != 2 {
		t.Fatalf("%d jobs on 2 busy cores, want 2 (the rest wait)", len(w.jobs))
	}
	w.jobs[0]()
	w.jobs = w.jobs[1:]
	sh.Flush()
	if len(w.sizes) != 3 || w.sizes[2] != 4*2 {
		t.Fatalf("jobs' signature counts %v; want a third job with the 4 waiting frames (8 signatures)", w.sizes)
	}
}

// Waiting jobs keep their order: a client batch queued between two peer
// frames runs before the later one (frames merge only into a batch of peer
// frames waiting last), as the workers' own queue ordered them before.
// Letting the peers' frames pass the client batch, or the client batch take
// a core of its own, is what the overload scenario punished.
func TestWaitingJobsKeepTheirOrder(t *testing.T) {
	cfg, ckey := testcluster.Config(t, 4, false)
	w := &heldCostWorker{cores: 1}
	sh := testShell(t, cfg, 1, Deps{Disk: syncDisk{testcluster.MemStore(t)}, Worker: w})
	first := prePrepare(t, cfg, 0, 1, put(ckey, 0, 1, "k", "v"))
	sh.OnPeer(first.From, msg.Marshal(first))
	sh.Flush() // on the one core
	c := &conn{id: 1}
	for k := uint64(1); k <= 3; k++ {
		sh.OnClient(c, msg.Marshal(&msg.ClientRequest{Request: put(ckey, 1, k, "c", "v")}))
	}
	sh.Flush() // a client batch of 3 waits
	later := prePrepare(t, cfg, 0, 2, put(ckey, 0, 2, "k", "v"), put(ckey, 0, 3, "k", "v"), put(ckey, 0, 4, "k", "v"))
	sh.OnPeer(later.From, msg.Marshal(later))
	sh.Flush()
	for len(w.jobs) > 0 {
		done := w.jobs[0]
		w.jobs = w.jobs[1:]
		done()
		sh.Flush()
	}
	if len(w.sizes) != 3 || w.sizes[1] != 3 || w.sizes[2] != 4 {
		t.Fatalf("jobs' signature counts %v; want [2 3 4]: the client batch, then the later pre-prepare", w.sizes)
	}
}
