package shell

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/braid-bft/braid/app/kv"
	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/config"
	"github.com/braid-bft/braid/internal/testcluster"
	"github.com/braid-bft/braid/ledger"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/pbft"
	"github.com/braid-bft/braid/rcc"
	"github.com/braid-bft/braid/storage"
)

// Tests of issue 8: what a correct replica must never do after a crash, a
// storage failure or a hostile state-transfer peer.

var errInjected = errors.New("injected storage fault")

// faultStore fails the failAt-th Apply (the shell's only kind of write;
// counting from 1) and every one after it. With crash set, the failing call first loses everything not yet
// committed (a power cut at that instant), and the disk stays frozen.
type faultStore struct {
	storage.Interface
	mem    *storage.Memory
	failAt int
	crash  bool

	mu     sync.Mutex
	writes int
	dead   bool
}

func (f *faultStore) hit() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dead {
		return errInjected
	}
	f.writes++
	if f.failAt > 0 && f.writes >= f.failAt {
		f.dead = true
		if f.crash {
			f.mem.Crash()
		}
		return errInjected
	}
	return nil
}

func (f *faultStore) write(fn func() error) error {
	if err := f.hit(); err != nil {
		return err
	}
	return fn()
}

func (f *faultStore) Apply(b *storage.Batch) error {
	return f.write(func() error { return f.Interface.Apply(b) })
}

func (f *faultStore) Sync() error {
	f.mu.Lock()
	dead := f.dead
	f.mu.Unlock()
	if dead {
		return errInjected
	}
	return f.Interface.Sync()
}

func (f *faultStore) Close() error { return nil } // the test reopens the memory store

func newReplica(t *testing.T, cfg *config.Config, id int, st storage.Interface) *Shell {
	t.Helper()
	return testShell(t, cfg, id, Deps{Disk: syncDisk{st}})
}

// testShell is replica id's shell with the given dependencies; those left
// nil are the test defaults (a network that drops everything, the
// cluster's keys, jobs run inline, a quiet logger).
func testShell(t *testing.T, cfg *config.Config, id int, deps Deps) *Shell {
	t.Helper()
	scfg, keyring, err := FromConfig(cfg, id)
	if err != nil {
		t.Fatal(err)
	}
	if deps.Net == nil {
		deps.Net = dropNet{}
	}
	if deps.Crypto == nil {
		deps.Crypto = testCrypto{keyring}
	}
	if deps.Worker == nil {
		deps.Worker = inline{}
	}
	if deps.Logger == nil {
		deps.Logger = testcluster.Logger()
	}
	sh, err := New(scfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	return sh
}

// put is a signed kv put by client c.
func put(ckey auth.PrivateKey, c msg.ClientID, num uint64, k, v string) msg.Request {
	req := msg.Request{Client: c, Number: num, Op: kv.Put([]byte(k), []byte(v))}
	req.Sig = auth.ClientSigner(ckey).Sign(req.SignedBytes())
	return req
}

// roundOf is a decided round ordering reqs in instance 0.
func roundOf(round uint64, state []byte, reqs ...msg.Request) rcc.Round {
	out := rcc.Round{Round: round, State: state}
	for _, req := range reqs {
		out.Entries = append(out.Entries, rcc.Entry{Instance: 0, Request: req, Op: req.Op, Outcome: msg.Executed})
	}
	return out
}

// alteredParadigm is a valid paradigm state other than base: instance 0
// sits out rounds below 7 (its resume round, the third field of the
// encoding after the tag, the instance count and instance 0's primary and
// failure count).
func alteredParadigm(t *testing.T, base []byte) []byte {
	t.Helper()
	out := append([]byte(nil), base...)
	off := len("braid/rcc-state/v1") + 4 + 4 + 8
	binary.BigEndian.PutUint64(out[off:], 7)
	return out
}

// Item 2: a crash at any write while executing rounds restores a height
// together with the paradigm state of that same round.
func TestCrashNeverSplitsBlockFromParadigmState(t *testing.T) {
	cfg, ckey := testcluster.Config(t, 4, false)
	for crashAt := 1; crashAt <= 8; crashAt++ {
		t.Run(fmt.Sprintf("crash-at-write-%d", crashAt), func(t *testing.T) {
			mem := testcluster.MemStore(t)
			r := newReplica(t, cfg, 1, &faultStore{Interface: mem, mem: mem, failAt: crashAt, crash: true})
			base := r.node.State()
			states := [][]byte{base, base, alteredParadigm(t, base), alteredParadigm(t, base)}
			if err := r.node.SetState(states[2]); err != nil {
				t.Fatalf("altered paradigm state is not valid: %v", err)
			}
			for round := uint64(1); round <= 3; round++ {
				r.execute(roundOf(round, states[round], put(ckey, 0, round, "k", fmt.Sprint(round))))
			}
			r2 := newReplica(t, cfg, 1, mem)
			if !bytes.Equal(r2.node.State(), states[r2.round]) {
				t.Fatalf("restored height %d with the paradigm state of another round", r2.round)
			}
		})
	}
}

// cachedReply is what the replica would answer a retransmission of c's
// last request with.
func (s *Shell) cachedReply(c msg.ClientID) *msg.Reply { return s.table[c] }

// Item 5: the reply cache survives a restart, both from the snapshot (a
// client last served before the checkpoint) and from the replayed blocks
// after it.
func TestReplyCacheSurvivesRestart(t *testing.T) {
	cfg, ckey := testcluster.Config(t, 4, false)
	k := uint64(cfg.CheckpointInterval)
	mem := testcluster.MemStore(t)
	r := newReplica(t, cfg, 1, mem)
	state := r.node.State()
	for round := uint64(1); round <= k+2; round++ {
		reqs := []msg.Request{put(ckey, 0, round, "a", fmt.Sprint(round))}
		if round == 2 {
			reqs = append(reqs, put(ckey, 1, 5, "b", "x"))
		}
		r.execute(roundOf(round, state, reqs...))
	}
	want0, want1 := r.cachedReply(0), r.cachedReply(1)
	if want0 == nil || want1 == nil {
		t.Fatal("no cached reply before the restart")
	}
	r2 := newReplica(t, cfg, 1, mem)
	for _, want := range []*msg.Reply{want0, want1} {
		got := r2.cachedReply(want.Client)
		if got == nil || got.Number != want.Number || !bytes.Equal(got.Result, want.Result) {
			t.Fatalf("client %d after restart: cached reply %+v, want number %d result %x", want.Client, got, want.Number, want.Result)
		}
	}
}

// Items 4 and 5: a state transfer installs nothing until the whole range
// verifies against the certified checkpoint; a peer that serves forged
// blocks is charged and not asked again; a verified transfer carries the
// reply cache.
func TestStateTransferInstallsOnlyVerifiedState(t *testing.T) {
	cfg, ckey := testcluster.Config(t, 4, false)
	k := uint64(cfg.CheckpointInterval)
	src, state, target, genuine, _ := transferSource(t, cfg, ckey)
	// Forged blocks that chain from the lagging replica's head.
	forge := func(from, to uint64, prev msg.Digest) ([][]byte, msg.Digest) {
		var out [][]byte
		for h := from; h <= to; h++ {
			req := put(ckey, 0, h, "a", "forged")
			b := &ledger.Block{Height: h, Prev: prev, Round: h, Requests: []msg.Request{req}}
			out, prev = append(out, b.Encode()), b.Hash()
		}
		return out, prev
	}

	dstMem := testcluster.MemStore(t)
	dst := newReplica(t, cfg, 1, dstMem)
	digest0 := dst.app.Digest()
	dst.startTransfer(target)
	if dst.xfer == nil || dst.xfer.source != 2 {
		t.Fatalf("transfer did not ask replica 2 first: %+v", dst.xfer)
	}
	first, prev := forge(1, 2, dst.head)
	dst.onBlocks(2, &msg.Blocks{From: 1, Sender: 2, Blocks: first})
	if h, _ := dstMem.Height(); h != 0 || dst.round != 0 || dst.app.Digest() != digest0 {
		t.Fatalf("unverified blocks installed: stored height %d, round %d", h, dst.round)
	}
	rest, _ := forge(3, k, prev)
	dst.onBlocks(2, &msg.Blocks{From: 3, Sender: 2, Blocks: rest, Paradigm: state})
	if h, _ := dstMem.Height(); h != 0 || dst.round != 0 {
		t.Fatalf("forged transfer installed: stored height %d, round %d", h, dst.round)
	}
	if dst.charged[2] != 1 {
		t.Fatalf("forging peer charged %d times, want 1", dst.charged[2])
	}
	if dst.xfer == nil || dst.xfer.source == 2 {
		t.Fatalf("after a forged answer the transfer still asks replica 2: %+v", dst.xfer)
	}
	from := int(dst.xfer.source)
	dst.onBlocks(msg.ReplicaID(from), &msg.Blocks{From: 1, Sender: msg.ReplicaID(from), Blocks: genuine, Paradigm: state})
	if dst.xfer != nil || dst.round != k || dst.head != src.head {
		t.Fatalf("genuine transfer not installed: round %d, head match %v", dst.round, dst.head == src.head)
	}
	if h, _ := dstMem.Height(); h != k {
		t.Fatalf("stored height %d after the transfer, want %d", h, k)
	}
	got, want := dst.cachedReply(0), src.cachedReply(0)
	if got == nil || got.Number != want.Number || !bytes.Equal(got.Result, want.Result) {
		t.Fatalf("reply cache after transfer: %+v, want %+v", got, want)
	}
	// And it survives a restart of the transferred replica.
	dst2 := newReplica(t, cfg, 1, dstMem)
	if dst2.round != k || dst2.head != src.head || dst2.cachedReply(0) == nil {
		t.Fatalf("after restart: round %d, head match %v", dst2.round, dst2.head == src.head)
	}
}

// Compaction at a stable checkpoint must not run before the checkpoint's
// proof is in the log: the round that completes a checkpoint makes it
// stable inside the core, and the proof reaches the log only with the next
// pass of drain. A crash in between must find either the old records or
// the proof — never neither (a restarted replica would then have lost the
// votes the checkpoint replaced, with nothing to stop it re-signing them).
func TestCompactionWaitsForTheDurableProof(t *testing.T) {
	cfg, ckey := testcluster.Config(t, 4, false)
	k := uint64(cfg.CheckpointInterval)
	twin := newReplica(t, cfg, 2, testcluster.MemStore(t))
	state := twin.node.State()
	var rounds []rcc.Round
	for round := uint64(1); round <= k; round++ {
		rounds = append(rounds, roundOf(round, state, put(ckey, 0, round, "a", fmt.Sprint(round))))
		twin.execute(rounds[len(rounds)-1])
	}
	digest := ledger.CheckpointDigest(twin.head, stateDigest(twin.app, state))

	mem := testcluster.MemStore(t)
	// Own votes below the checkpoint, in the log as the core left them
	// (written before the replica starts, so it restores them).
	key1, err := cfg.ReplicaKey(1)
	if err != nil {
		t.Fatal(err)
	}
	var votes [][]byte
	for seq := uint64(1); seq <= 3; seq++ {
		p := &msg.Prepare{Instance: 0, View: 0, Seq: seq, Digest: msg.Digest{byte(seq)}, From: 1}
		p.Sig = auth.ReplicaSigner(key1).Sign(msg.SignedBytes(p))
		votes = append(votes, msg.Marshal(p))
	}
	if err := mem.Apply(&storage.Batch{Records: votes}); err != nil {
		t.Fatal(err)
	}
	reads := &countRecords{Interface: mem}
	r := newReplica(t, cfg, 1, reads)
	// Two peers' checkpoints at k for every instance: ours completes the quorum.
	for _, from := range []int{0, 2} {
		key, err := cfg.ReplicaKey(from)
		if err != nil {
			t.Fatal(err)
		}
		for inst := 0; inst < cfg.M; inst++ {
			cp := &msg.Checkpoint{Instance: uint32(inst), Seq: k, State: digest, From: msg.ReplicaID(from)}
			cp.Sig = auth.ReplicaSigner(key).Sign(msg.SignedBytes(cp))
			r.OnPeer(msg.ReplicaID(from), msg.Marshal(cp))
		}
	}
	r.Flush()
	// Executing the rounds signs our checkpoint, which completes the quorum:
	// the checkpoint is stable inside the core now, and the proof and the
	// certificate come out in its next Ready.
	for _, round := range rounds {
		r.execute(round)
	}
	logHolds := func() (oldVotes, proof int) {
		raw, err := mem.Records()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range raw {
			m, err := msg.Unmarshal(p)
			if err != nil {
				t.Fatal(err)
			}
			switch m := m.(type) {
			case *msg.Prepare:
				if m.Seq <= k && m.From == 1 {
					oldVotes++
				}
			case *msg.Checkpoint:
				if m.Seq == k && m.Instance == 0 {
					proof++
				}
			}
		}
		return oldVotes, proof
	}
	if old, _ := logHolds(); old == 0 {
		t.Fatal("log compacted before the proof's pass")
	}
	reads.batches = nil
	r.Flush()
	if old, proof := logHolds(); old != 0 || proof < 3 {
		t.Fatalf("after the proof is durable: %d old votes kept, %d checkpoints at %d; want 0 and ≥ 3", old, proof, k)
	}
	// The disk loses only a suffix of what was applied: the truncation must
	// come in a later batch than the proof, so a crash between them keeps
	// the old records.
	proofAt, cutAt := -1, -1
	for i, b := range reads.batches {
		for _, p := range b.Records {
			if m, err := msg.Unmarshal(p); err == nil {
				if cp, ok := m.(*msg.Checkpoint); ok && cp.Seq == k && proofAt < 0 {
					proofAt = i
				}
			}
		}
		if b.TruncateRecordsBefore > 0 && cutAt < 0 {
			cutAt = i
		}
	}
	if proofAt < 0 || cutAt <= proofAt {
		t.Fatalf("proof staged in batch %d, truncation in batch %d; want the truncation after the proof", proofAt, cutAt)
	}
	// Compaction works from the shell's mirror of the log: the only read
	// of the log was the restore's.
	if r.Failed() != nil || reads.n != 1 {
		t.Fatalf("failed %v, log read %d times; want no failure and 1 read (the restore)", r.Failed(), reads.n)
	}
}

// countRecords counts reads of the whole log and records the batches
// applied.
type countRecords struct {
	storage.Interface
	n       int
	batches []storage.Batch
}

func (c *countRecords) Apply(b *storage.Batch) error {
	c.batches = append(c.batches, *b)
	return c.Interface.Apply(b)
}

func (c *countRecords) Records() ([][]byte, error) {
	c.n++
	return c.Interface.Records()
}

// A signer that makes a transfer cross its memory bound is treated like one
// that served a bad block: charged, and the transfer goes on from another
// signer instead of being abandoned.
func TestOversizedTransferMovesToAnotherSigner(t *testing.T) {
	cfg, ckey := testcluster.Config(t, 4, false)
	k := uint64(cfg.CheckpointInterval)
	src, state, target, genuine, size := transferSource(t, cfg, ckey)
	dst := newReplica(t, cfg, 1, testcluster.MemStore(t))
	dst.stagedLimit = size // the genuine range fits, a padded one does not
	dst.startTransfer(target)
	first := dst.xfer.source
	// Blocks padded with junk requests that chain from our head.
	var padded [][]byte
	prev := dst.head
	for h := uint64(1); h <= 2; h++ {
		var reqs []msg.Request
		for i := uint64(0); i < uint64(size/stagedRequestCost); i++ {
			reqs = append(reqs, msg.Request{Client: msg.ClientID(1000 + i), Number: h, Op: []byte{0}})
		}
		b := &ledger.Block{Height: h, Prev: prev, Round: h, Requests: reqs}
		padded, prev = append(padded, b.Encode()), b.Hash()
	}
	dst.onBlocks(first, &msg.Blocks{From: 1, Sender: first, Blocks: padded})
	if dst.xfer == nil {
		t.Fatal("transfer abandoned after one signer's oversized answer")
	}
	if dst.xfer.source == first || dst.charged[first] != 1 {
		t.Fatalf("oversized answer: source now %d (was %d), charged %d", dst.xfer.source, first, dst.charged[first])
	}
	next := dst.xfer.source
	dst.onBlocks(next, &msg.Blocks{From: 1, Sender: next, Blocks: genuine, Paradigm: state})
	if dst.xfer != nil || dst.round != k || dst.head != src.head {
		t.Fatalf("genuine transfer after an oversized one not installed: round %d", dst.round)
	}
}

// transferSource is a replica that executed one checkpoint interval of
// puts, with the certified transfer target at its end, its blocks encoded,
// and their staged size.
func transferSource(t *testing.T, cfg *config.Config, ckey auth.PrivateKey) (src *Shell, state []byte,
	target *pbft.StateTransfer, blocks [][]byte, staged int) {
	t.Helper()
	k := uint64(cfg.CheckpointInterval)
	src = newReplica(t, cfg, 2, testcluster.MemStore(t))
	state = src.node.State()
	for round := uint64(1); round <= k; round++ {
		src.execute(roundOf(round, state, put(ckey, 0, round, "a", fmt.Sprint(round))))
	}
	target = &pbft.StateTransfer{Seq: k, State: ledger.CheckpointDigest(src.head, stateDigest(src.app, state)),
		Proof: []msg.Checkpoint{{From: 2}, {From: 3}, {From: 0}}}
	for h := uint64(1); h <= k; h++ {
		b, err := src.disk.Block(h)
		if err != nil {
			t.Fatal(err)
		}
		blocks = append(blocks, b.Encode())
		staged += len(blocks[len(blocks)-1]) + stagedRequestCost*len(b.Requests)
	}
	return src, state, target, blocks, staged
}

// Exactly-once is the core's (rcc drops duplicates before the shell sees
// them). A round that still hands the shell an executed number means the
// core and the durable reply table disagree: the replica stops rather than
// pay a transfer twice, and the round leaves no block.
func TestExecutedNumberFromTheCoreStopsTheReplica(t *testing.T) {
	cfg, ckey := testcluster.Config(t, 4, false)
	r := newReplica(t, cfg, 1, testcluster.MemStore(t))
	state := r.node.State()
	executeDurably(r, roundOf(1, state, put(ckey, 0, 1, "k", "v1")))
	if r.Failed() != nil {
		t.Fatalf("first execution failed: %v", r.Failed())
	}
	executeDurably(r, roundOf(2, state, put(ckey, 0, 1, "k", "v2")))
	if err := r.Failed(); !errors.Is(err, ErrFailStop) || !strings.Contains(err.Error(), "already executed") {
		t.Fatalf("a duplicate from the core: failed %v, want a fail-stop naming the executed request", err)
	}
	if r.Round() != 1 {
		t.Fatalf("round %d after the refused round, want 1 (no block for it)", r.Round())
	}
}
