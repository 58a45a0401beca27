package shell

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/braid-bft/braid/app/mux"
	"github.com/braid-bft/braid/internal/testcluster"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/rcc"
	"github.com/braid-bft/braid/storage"
)

func TestSnapshotRoundTrip(t *testing.T) {
	table := executed{
		3:    {Client: 3, Number: 7, View: 2, Outcome: msg.Moved, Instance: 1, Result: []byte("ok"), From: 1, Primary: msg.NoReplica},
		1000: {Client: 1000, Number: 1, Result: nil, From: 1, Primary: msg.NoReplica},
	}
	for _, lanes := range [][]byte{nil, []byte("lanes")} {
		testSnapshotRoundTrip(t, table, lanes)
	}
}

func testSnapshotRoundTrip(t *testing.T, table executed, lanes []byte) {
	enc := encodeSnapshot([]byte("app-state"), lanes, table)
	app, gotLanes, got, err := decodeSnapshot(enc, 1)
	if err != nil {
		t.Fatal(err)
	}
	if string(app) != "app-state" || len(got) != 2 || !bytes.Equal(gotLanes, lanes) || (gotLanes == nil) != (lanes == nil) {
		t.Fatalf("decoded app %q, lanes %q, %d clients", app, gotLanes, len(got))
	}
	for c, want := range table {
		g := got[c]
		if g == nil || g.Number != want.Number || g.View != want.View || g.Outcome != want.Outcome ||
			g.Instance != want.Instance || !bytes.Equal(g.Result, want.Result) {
			t.Fatalf("client %d: %+v, want %+v", c, g, want)
		}
	}
	for i := range enc { // every truncation is an error, never a panic
		if _, _, _, err := decodeSnapshot(enc[:i], 1); err == nil {
			t.Fatalf("truncated snapshot of %d bytes accepted", i)
		}
	}
}

func FuzzDecodeSnapshot(f *testing.F) {
	f.Add(encodeSnapshot([]byte("x"), nil, executed{5: {Client: 5, Number: 2, Result: []byte("r")}}))
	f.Add(encodeSnapshot([]byte("x"), []byte("lanes"), executed{5: {Client: 5, Number: 2, Result: []byte("r")}}))
	f.Add(encodeSnapshot(nil, nil, nil))
	f.Add([]byte("braid/replica-snapshot/v1\xff\xff\xff\xff\xff\xff\xff\xff"))
	f.Add([]byte("braid/replica-snapshot/v2\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, p []byte) {
		app, lanes, table, err := decodeSnapshot(p, 0)
		if err != nil {
			return
		}
		if re := encodeSnapshot(app, lanes, table); !bytes.Equal(re, p) {
			t.Fatalf("decoded snapshot does not re-encode to its input")
		}
	})
}

// snapCounter counts the snapshots the shell writes.
type snapCounter struct {
	storage.Interface
	snapshots []uint64
}

func (c *snapCounter) PutSnapshot(round uint64, data []byte) error {
	c.snapshots = append(c.snapshots, round)
	return c.Interface.PutSnapshot(round, data)
}

// executeDurably executes a round and commits it, as the loop's Flush does.
func executeDurably(r *Shell, round rcc.Round) {
	r.execute(round)
	r.commit()
}

// A snapshot writes the whole state, a block only its round's requests: a
// large state under a light write load must not be rewritten at every
// checkpoint (the ten-minute benchmark wrote gigabytes that way). The
// latest snapshot survives compaction, and a restart from it plus the
// blocks after it reaches the same state.
func TestSnapshotsAmortizedOverBlocks(t *testing.T) {
	cfg, ckey := testcluster.Config(t, 4, false)
	k := uint64(cfg.CheckpointInterval)
	mem := testcluster.MemStore(t)
	disk := &snapCounter{Interface: mem}
	r := newReplica(t, cfg, 1, disk)
	state := r.node.State()
	big := strings.Repeat("v", 60<<10)
	var reqs []msg.Request
	for i := range 4 { // a 240 KiB state in the first round
		reqs = append(reqs, put(ckey, msg.ClientID(i), 1, fmt.Sprint("big", i), big))
	}
	executeDurably(r, roundOf(1, state, reqs...))
	const checkpoints = 8
	for round := uint64(2); round <= checkpoints*k; round++ {
		executeDurably(r, roundOf(round, state, put(ckey, 0, round, "small", fmt.Sprint(round))))
	}
	if len(disk.snapshots) != 1 || disk.snapshots[0] != k {
		t.Fatalf("snapshots at rounds %v over %d checkpoints of a 240 KiB state with %d small blocks; want only the first, at %d",
			disk.snapshots, checkpoints, checkpoints*k, k)
	}
	r.compact(checkpoints * k)
	if round, _, err := mem.LatestSnapshot(); err != nil || round != k {
		t.Fatalf("after compaction at %d the latest snapshot is round %d (%v), want %d", checkpoints*k, round, err, k)
	}
	r2 := newReplica(t, cfg, 1, mem)
	if r2.round != r.round || r2.head != r.head || r2.app.Digest() != r.app.Digest() {
		t.Fatalf("restart reached round %d head %x, want round %d head %x (or another state)", r2.round, r2.head, r.round, r.head)
	}
	// Once the blocks since the snapshot outweigh it, the next checkpoint snapshots.
	for round := checkpoints*k + 1; round <= checkpoints*k+4*k; round++ {
		executeDurably(r2, roundOf(round, state, put(ckey, 1, round, "wide", big)))
	}
	if got, _, _ := mem.LatestSnapshot(); got <= checkpoints*k {
		t.Fatalf("after %d blocks of 60 KiB the latest snapshot is still round %d", 4*k, got)
	}
}

// laterWorker holds jobs until the test runs them.
type laterWorker struct{ jobs []func() }

func (w *laterWorker) Cores() int { return 2 }

func (w *laterWorker) Go(work func() Cost, done func()) {
	w.jobs = append(w.jobs, func() { work(); done() })
}

// The loop only clones the state at a checkpoint; the snapshot is encoded
// elsewhere while execution goes on, and what it holds is the state of its
// round, not of the rounds executed meanwhile.
func TestSnapshotEncodedOffTheLoop(t *testing.T) {
	cfg, ckey := testcluster.Config(t, 4, false)
	k := uint64(cfg.CheckpointInterval)
	mem := testcluster.MemStore(t)
	worker := &laterWorker{}
	r := testShell(t, cfg, 1, Deps{Disk: syncDisk{mem}, Worker: worker})
	state := r.node.State()
	for round := uint64(1); round <= k; round++ {
		executeDurably(r, roundOf(round, state, put(ckey, 0, round, "k", fmt.Sprint(round))))
	}
	atK := r.app.Digest()
	for round := k + 1; round <= k+3; round++ {
		executeDurably(r, roundOf(round, state, put(ckey, 0, round, "k", fmt.Sprint(round))))
	}
	if _, _, err := mem.LatestSnapshot(); err == nil || len(worker.jobs) != 1 {
		t.Fatalf("before the worker ran: snapshot lookup %v, %d jobs; want none stored and 1 job", err, len(worker.jobs))
	}
	worker.jobs[0]()
	round, data, err := mem.LatestSnapshot()
	if err != nil || round != k {
		t.Fatalf("after the worker ran: snapshot of round %d (%v), want %d", round, err, k)
	}
	app, lanes, _, err := decodeSnapshot(data, 1)
	if err != nil {
		t.Fatal(err)
	}
	restored := mux.New(r.cfg.Scope)
	if err := restored.Restore(app); err != nil || restored.Digest() != atK {
		t.Fatalf("the snapshot of round %d holds another state (restore error %v)", k, err)
	}
	fast := mux.New(r.cfg.Scope)
	check, err := fast.RestoreWithDigest(app, lanes)
	if err != nil || fast.Digest() != atK || check() != nil {
		t.Fatalf("restored with the snapshot's digest lanes: error %v, digest matches %v, check %v", err, fast.Digest() == atK, check())
	}
}

// A snapshot file is durable the moment it is written, so it is written
// only once its round's block is: a crash never leaves a snapshot above the
// ledger's height.
func TestSnapshotWaitsForItsBlock(t *testing.T) {
	cfg, ckey := testcluster.Config(t, 4, false)
	k := uint64(cfg.CheckpointInterval)
	mem := testcluster.MemStore(t)
	disk, worker := &laterDisk{Interface: mem}, &laterWorker{}
	r := testShell(t, cfg, 1, Deps{Disk: disk, Worker: worker})
	state := r.node.State()
	for round := uint64(1); round <= k; round++ {
		executeDurably(r, roundOf(round, state, put(ckey, 0, round, "k", fmt.Sprint(round))))
	}
	if len(worker.jobs) != 0 {
		t.Fatalf("%d snapshot jobs started before block %d was durable", len(worker.jobs), k)
	}
	disk.complete()
	if len(worker.jobs) != 1 {
		t.Fatalf("%d snapshot jobs once block %d is durable, want 1", len(worker.jobs), k)
	}
}

// A restart takes the application's digest from the snapshot's own lanes
// instead of rehashing every record, then rehashes them on a worker: lanes
// that do not match the records (a file edited behind its checksum) stop
// the replica; honest ones leave it running with the same digest.
func TestRestoredLanesAreVerified(t *testing.T) {
	cfg, ckey := testcluster.Config(t, 4, false)
	k := uint64(cfg.CheckpointInterval)
	mem := testcluster.MemStore(t)
	r := newReplica(t, cfg, 1, mem)
	state := r.node.State()
	for round := uint64(1); round <= k; round++ {
		executeDurably(r, roundOf(round, state, put(ckey, 0, round, fmt.Sprint("k", round), "v")))
	}
	round, data, err := mem.LatestSnapshot()
	if err != nil || round != k {
		t.Fatalf("snapshot of round %d (%v), want %d", round, err, k)
	}
	app, lanes, table, err := decodeSnapshot(data, 1)
	if err != nil || lanes == nil {
		t.Fatalf("decode: %v, lanes %d bytes; want version 2 with lanes", err, len(lanes))
	}
	honest := newReplica(t, cfg, 1, mem)
	if honest.Failed() != nil || honest.app.Digest() != r.app.Digest() {
		t.Fatalf("restart from an honest snapshot: failed %v, digest matches %v", honest.Failed(), honest.app.Digest() == r.app.Digest())
	}
	lanes[0] ^= 1
	if err := mem.PutSnapshot(k, encodeSnapshot(app, lanes, table)); err != nil {
		t.Fatal(err)
	}
	if liar := newReplica(t, cfg, 1, mem); liar.Failed() == nil {
		t.Fatal("restart from a snapshot whose digest lanes do not match its records kept running")
	}
}
