package pbft

import (
	"crypto/sha256"
	"maps"
	"testing"

	"github.com/braid-bft/braid/internal/coretest"
	"github.com/braid-bft/braid/msg"
)

// FuzzCore runs real pbft cores under the fuzz interpreter
// (coretest.Fuzz): the input chooses the cluster (n, f Byzantine replicas,
// checkpoint interval, window, batch size, timeouts), then every delivery,
// drop, duplicate, timer, client request and Byzantine message. Correct
// replicas are held to agreement, order, validity and non-equivocation
// (coretest.Safety); a state transfer must reach a state some correct
// replica reached. The Byzantine replicas run real cores too, whose
// output the input may drop: silent, slow or honest, besides what their
// adversary forges.
func FuzzCore(f *testing.F) {
	for _, seed := range pbftFuzzSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		runFuzzCore(t, data)
	})
}

// pbftFuzzConfig is the cluster the first bytes of an input choose.
func pbftFuzzConfig(in *coretest.Bytes) (n int, byz []msg.ReplicaID, cfg Config) {
	n = []int{4, 4, 5, 7}[in.Intn(4)]
	byz = coretest.ChooseByz(in, n)
	k := uint64(2 + 2*in.Intn(2))
	cfg = Config{
		N: n, Primary: roundRobin(n),
		MaxBatch: 1 + in.Intn(3), CheckpointInterval: k, Window: k * uint64(2+in.Intn(2)),
		RequestTimeout: 3 + in.Intn(6), ProgressTimeout: 3 + in.Intn(6), ViewChangeTimeout: 3 + in.Intn(6),
		RetransmitTicks: 1 + in.Intn(3), PadToCheckpoint: in.Intn(2) == 0,
	}
	if in.Intn(4) == 0 {
		cfg.AnswerBytes = 600 // answers trimmed to a message or two
	}
	return n, byz, cfg
}

func runFuzzCore(t testing.TB, data []byte) (*fuzzCluster, coretest.FuzzStats) {
	in := coretest.NewBytes(data)
	n, byz, tmpl := pbftFuzzConfig(in)
	c := &fuzzCluster{t: t, byz: map[msg.ReplicaID]bool{}, safety: coretest.NewSafety(), k: tmpl.CheckpointInterval}
	for _, b := range byz {
		c.byz[b] = true
	}
	for i := 0; i < n; i++ {
		cfg := tmpl
		cfg.ID, cfg.Signer = msg.ReplicaID(i), coretest.Signer{ID: msg.ReplicaID(i)}
		nd, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, nd)
		c.executed = append(c.executed, map[msg.ClientID]uint64{})
		c.states = append(c.states, map[uint64]fuzzState{})
	}
	c.chain = make([]msg.Digest, n)
	c.last = make([]uint64, n)
	c.pending = make([]*StateTransfer, n)
	c.Net = coretest.NetFor(t, c.nodes, c.drain)
	adv := coretest.NewAdversary(coretest.AdversaryConfig{
		N: n, M: 1, K: tmpl.CheckpointInterval, Window: tmpl.Window, Byz: byz,
		Leader: func(_ uint32, v uint64) msg.ReplicaID { return tmpl.Primary(v) },
	})
	st := coretest.Fuzz(in, c.Net, adv, c.safety, c, coretest.FuzzConfig{N: n, Byz: byz, Clients: 4})
	return c, st
}

// fuzzCluster is the harness of cluster (harness_test.go) with what the
// fuzz target adds: Byzantine replicas whose output is not checked, the
// invariant checker, and state transfer, which the fuzzer's drops make
// necessary.
type fuzzCluster struct {
	*coretest.Net
	t        testing.TB
	nodes    []*Node
	byz      map[msg.ReplicaID]bool
	safety   *coretest.Safety
	k        uint64
	chain    []msg.Digest              // per replica: running digest of its decisions
	last     []uint64                  // per replica: last sequence number decided or transferred to
	executed []map[msg.ClientID]uint64 // per replica: highest decided request number per client
	states   []map[uint64]fuzzState    // per replica: what it had at each checkpoint
	pending  []*StateTransfer          // per replica: a transfer asked for and not yet done
	// What the seeds' test looks for: the highest stable checkpoint a
	// correct replica reached, view changes correct replicas completed,
	// state transfers they installed.
	stable    uint64
	changes   int
	transfers int
	viewOf    map[msg.ReplicaID]uint64
}

type fuzzState struct {
	chain    msg.Digest
	executed map[msg.ClientID]uint64
}

func (c *fuzzCluster) Request(i int, r msg.Request) { c.nodes[i].Request(r); c.drain(i) }
func (c *fuzzCluster) Tick(i int)                   { c.nodes[i].Tick(); c.drain(i) }

func (c *fuzzCluster) Pass() {
	for i, nd := range c.nodes {
		nd.ProposeQueued()
		c.drain(i)
	}
}

func (c *fuzzCluster) drain(i int) {
	nd := c.nodes[i]
	id := msg.ReplicaID(i)
	for nd.HasReady() {
		rd := nd.Ready()
		for _, d := range rd.Decided {
			c.decide(i, d)
		}
		if rd.Stable > c.stable && !c.byz[id] {
			c.stable = rd.Stable
		}
		if st := rd.StateTransfer; st != nil && (c.pending[i] == nil || st.Seq > c.pending[i].Seq) {
			c.pending[i] = st
		}
		for _, o := range rd.Messages {
			if !c.byz[id] {
				c.signed(id, o.Msg)
			}
			c.Output(id, o.Broadcast, o.To, o.Msg)
		}
	}
	if !c.byz[id] {
		if c.viewOf == nil {
			c.viewOf = map[msg.ReplicaID]uint64{}
		}
		if v, changing := nd.View(); !changing && v > c.viewOf[id] {
			c.viewOf[id] = v
			c.changes++
		}
	}
}

// signed holds a correct replica to never signing two messages for one
// slot. What it relays (another replica's pre-prepares in answer to a
// Status) is the signer's word, not its own.
func (c *fuzzCluster) signed(id msg.ReplicaID, m msg.Message) {
	if from, _ := msg.Sender(m); from != id {
		return
	}
	if key, ok := SignedKey(m); ok {
		if err := c.safety.Signed(id, key, msg.SignedBytes(m)); err != nil {
			c.t.Fatal(err)
		}
	}
}

func (c *fuzzCluster) decide(i int, d Decision) {
	id := msg.ReplicaID(i)
	if !c.byz[id] {
		want := d.Batch.Digest()
		if d.Null {
			want = msg.NullDigest
			if d.Failure {
				want = msg.FailureDigest(d.FailureView)
			}
		}
		if d.Digest != want {
			c.t.Fatalf("replica %d decided seq %d with digest %x, its batch has %x", i, d.Seq, d.Digest[:4], want[:4])
		}
		if err := c.safety.Decide(id, d.Seq, d.Digest, d.Batch.Requests); err != nil {
			c.t.Fatal(err)
		}
	}
	nd := c.nodes[i]
	c.last[i] = d.Seq
	c.chain[i] = sha256.Sum256(append(c.chain[i][:], d.Digest[:]...))
	for _, r := range d.Batch.Requests { // the harness is the execution layer
		c.executed[i][r.Client] = max(c.executed[i][r.Client], r.Number)
		nd.ClientExecuted(r.Client, r.Number)
	}
	if d.Seq%c.k == 0 {
		c.states[i][d.Seq] = fuzzState{c.chain[i], maps.Clone(c.executed[i])}
		nd.Checkpoint(d.Seq, c.chain[i])
	}
}

// Transfer installs the state replica i asked for from a correct replica
// that reached it (the shell fetches and verifies blocks; here the
// harness's records stand in for them), as the shell does: state, then
// StateTransferred, its own checkpoint, Announce. A transfer to a point
// the replica decided past meanwhile is ignored, as the shell ignores it.
func (c *fuzzCluster) Transfer(i int) {
	st := c.pending[i]
	if st == nil {
		return
	}
	c.pending[i] = nil
	if st.Seq <= c.last[i] {
		return
	}
	id := msg.ReplicaID(i)
	var src *fuzzState
	for j := range c.nodes {
		if s, ok := c.states[j][st.Seq]; ok && !c.byz[msg.ReplicaID(j)] && s.chain == st.State {
			src = &s
			break
		}
	}
	if src == nil {
		if c.byz[id] {
			return // a Byzantine replica may be talked into anything
		}
		c.t.Fatalf("replica %d asked for a state transfer to seq %d, state %x, which no correct replica reached", i, st.Seq, st.State[:4])
	}
	if !c.byz[id] {
		if err := c.safety.Transferred(id, st.Seq); err != nil {
			c.t.Fatal(err)
		}
		c.transfers++
	}
	c.last[i], c.chain[i], c.executed[i] = st.Seq, src.chain, maps.Clone(src.executed)
	c.states[i][st.Seq] = fuzzState{src.chain, maps.Clone(src.executed)}
	nd := c.nodes[i]
	nd.StateTransferred(st.Seq, maps.Clone(src.executed))
	nd.Checkpoint(st.Seq, st.State)
	nd.Announce()
	c.drain(i)
}

// The seeds' cluster: n = 4, replica 3 Byzantine (byz3) or view 0's
// primary Byzantine (byz0); K = 2, batches of 2, window 6, timeouts of 4
// ticks, retransmit every 2, padding to checkpoints.
var (
	pbftSeedByz3 = []byte{0, 3, 0, 1, 1, 1, 1, 1, 1, 0, 1}
	pbftSeedByz0 = []byte{0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 1}
)

// pbftFuzzSeeds are the corpus's starting points, each reaching a path
// the CI budget must cover (TestFuzzCoreSeeds checks they do).
func pbftFuzzSeeds() [][]byte {
	return [][]byte{
		fuzzSeedCheckpoints(pbftSeedByz3).Bytes(),
		fuzzSeedViewChange(pbftSeedByz3).Bytes(),
		fuzzSeedTransfer(pbftSeedByz3).Bytes(),
		fuzzSeedInjections(pbftSeedByz0).Bytes(),
		fuzzSeedEquivocation(pbftSeedByz0).Bytes(),
	}
}

// View 0's primary, Byzantine, proposes a second batch for seq 1 to
// replica 2 and commits it there. With the prepare and commit quorums one
// smaller each, this seed splits the decisions (replica 2 decides the
// second batch, replicas 1 and 3 the first): seen failing with agreement.
func fuzzSeedEquivocation(cfg []byte) *coretest.Program {
	p := coretest.NewProgram(cfg...).Submit(0, 0).Submit(1, 0)
	p.Inject(1, 11, 1, 2, 3)   // to replica 2: equivocate on its own latest proposal
	p.Inject(1, 4, 0, 0, 3, 3) // to replica 2: a commit for that second body
	return p.Op(coretest.OpSettle).Op(coretest.OpTickAll).Op(coretest.OpSettle)
}

// Requests to the primary, delivered: decisions and stable checkpoints.
func fuzzSeedCheckpoints(cfg []byte) *coretest.Program {
	return coretest.NewProgram(cfg...).Repeat(10, func(p *coretest.Program) {
		p.Submit(byte(len(p.Bytes())%4), 0).Op(coretest.OpSettle).Op(coretest.OpTickAll).Op(coretest.OpSettle)
	})
}

// Requests to all while replica 0, view 0's primary, is cut off: the
// backups' request timers fire and view 1 starts; then 0 is back.
func fuzzSeedViewChange(cfg []byte) *coretest.Program {
	p := coretest.NewProgram(cfg...).Op(coretest.OpIsolate, 0).Submit(0, 4).Submit(1, 4).Submit(2, 4)
	p.Repeat(12, func(p *coretest.Program) { p.Op(coretest.OpTickAll).Op(coretest.OpSettle) })
	p.Op(coretest.OpIsolate, 0)
	return p.Repeat(4, func(p *coretest.Program) {
		p.Submit(3, 4).Op(coretest.OpSettle).Op(coretest.OpTickAll).Op(coretest.OpSettle)
	})
}

// Replica 2 is cut off while the others decide past several checkpoints;
// back, it sees their next checkpoints and transfers the state.
func fuzzSeedTransfer(cfg []byte) *coretest.Program {
	p := coretest.NewProgram(cfg...).Op(coretest.OpIsolate, 2).Repeat(10, func(p *coretest.Program) {
		p.Submit(byte(len(p.Bytes())%4), 0).Op(coretest.OpSettle).Op(coretest.OpTickAll).Op(coretest.OpSettle)
	})
	return p.Op(coretest.OpIsolate, 2).Repeat(6, func(p *coretest.Program) {
		p.Submit(1, 0).Op(coretest.OpSettle).Op(coretest.OpTickAll).Op(coretest.OpSettle).Op(coretest.OpTransfer, 2)
	})
}

// A Byzantine primary's cluster under every kind of injected message, with
// requests to all so that its backups time out on what it does not order.
func fuzzSeedInjections(cfg []byte) *coretest.Program {
	p := coretest.NewProgram(cfg...)
	for k := byte(0); k < 22; k++ {
		p.Submit(k%4, 4).Op(coretest.OpDeliver, 3)
		// Inject's chunk: destination, kind (of 12), then the kind's choices.
		p.Inject(k%3, k%12, k*7, k*13, k*29, 1, 2, 3, k, k+1)
		p.Inject(k%3, (k+5)%12, 4, 4, k*3, k*5, 0, 1)
		p.Op(coretest.OpTickAll).Op(coretest.OpSettle)
	}
	return p
}

// The seeds reach what they are there for, and an empty input runs.
func TestFuzzCoreSeeds(t *testing.T) {
	if c, st := runFuzzCore(t, fuzzSeedCheckpoints(pbftSeedByz3).Bytes()); c.stable < 4 {
		t.Fatalf("checkpoint seed: stable checkpoint %d, want ≥ 4 (%+v)", c.stable, st)
	}
	if c, st := runFuzzCore(t, fuzzSeedViewChange(pbftSeedByz3).Bytes()); c.changes == 0 {
		t.Fatalf("view-change seed: no correct replica changed view (%+v)", st)
	}
	if c, st := runFuzzCore(t, fuzzSeedTransfer(pbftSeedByz3).Bytes()); c.transfers == 0 {
		t.Fatalf("transfer seed: no state transfer (stable %d, %+v)", c.stable, st)
	}
	if _, st := runFuzzCore(t, fuzzSeedInjections(pbftSeedByz0).Bytes()); st.Injected < 40 || st.Rejected > 0 {
		t.Fatalf("injection seed: %d injected, %d rejected by the shell's check; want ≥ 40 and none", st.Injected, st.Rejected)
	}
	c, _ := runFuzzCore(t, fuzzSeedEquivocation(pbftSeedByz0).Bytes())
	if eq := c.nodes[2].Stats().Dropped["equivocation"]; eq == 0 {
		t.Fatalf("equivocation seed: replica 2 never saw its primary's two pre-prepares for one slot")
	}
	runFuzzCore(t, nil)
}
