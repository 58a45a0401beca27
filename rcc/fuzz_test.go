package rcc

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"maps"
	"testing"

	"github.com/braid-bft/braid/internal/coretest"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/pbft"
	"github.com/braid-bft/braid/quorum"
)

// FuzzNode runs real paradigm nodes (m pbft instances each) under the fuzz
// interpreter (coretest.Fuzz): the input chooses the cluster (n, m, the
// failure policy, f Byzantine replicas, checkpoint interval, window, batch
// size, timeouts), then every delivery, drop, duplicate, timer, client
// request (some of them instance changes) and Byzantine message, to any
// instance. Correct replicas are held, round by round, to agreement on
// everything a round executes and the paradigm state after it, to
// executing rounds in order and each request number of a client at most
// once, to validity, and to non-equivocation (coretest.Safety); a state
// transfer must reach a state some correct replica reached.
func FuzzNode(f *testing.F) {
	for _, seed := range rccFuzzSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		runFuzzNode(t, data)
	})
}

const fuzzClients = 6

// rccFuzzConfig is the cluster the first bytes of an input choose.
func rccFuzzConfig(in *coretest.Bytes) (byz []msg.ReplicaID, cfg Config) {
	n := []int{4, 4, 5, 7}[in.Intn(4)]
	m := 1 + in.Intn(n)
	byz = coretest.ChooseByz(in, n)
	k := uint64(2 + 2*in.Intn(2))
	cfg = Config{N: n, M: m, Instance: pbft.Config{
		MaxBatch: 1 + in.Intn(3), CheckpointInterval: k, Window: k * uint64(3+in.Intn(2)),
		RequestTimeout: 3 + in.Intn(6), ProgressTimeout: 3 + in.Intn(6), ViewChangeTimeout: 3 + in.Intn(6),
		RetransmitTicks: 1 + in.Intn(3), PadToCheckpoint: in.Intn(2) == 0,
	}}
	if in.Intn(2) == 0 && m <= n-quorum.Faults(n) && m > quorum.Faults(n) {
		cfg.Policy = InPlace // the default there is replacement; in-place needs m > f
	}
	for c := range fuzzClients {
		cfg.Clients = append(cfg.Clients, msg.ClientID(c))
	}
	return byz, cfg
}

func runFuzzNode(t testing.TB, data []byte) (*fuzzCluster, coretest.FuzzStats) {
	in := coretest.NewBytes(data)
	byz, tmpl := rccFuzzConfig(in)
	n := tmpl.N
	c := &fuzzCluster{t: t, byz: map[msg.ReplicaID]bool{}, safety: coretest.NewSafety(), k: tmpl.Instance.CheckpointInterval}
	for _, b := range byz {
		c.byz[b] = true
	}
	for i := 0; i < n; i++ {
		cfg := tmpl
		cfg.ID, cfg.Instance.Signer = msg.ReplicaID(i), coretest.Signer{ID: msg.ReplicaID(i)}
		nd, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, nd)
		c.lastNum = append(c.lastNum, map[msg.ClientID]uint64{})
		c.states = append(c.states, map[uint64]fuzzState{})
	}
	c.chain = make([]msg.Digest, n)
	c.last = make([]uint64, n)
	c.pending = make([]*pbft.StateTransfer, n)
	c.Net = coretest.NetFor(t, c.nodes, c.drain)
	adv := coretest.NewAdversary(coretest.AdversaryConfig{
		N: n, M: tmpl.M, K: tmpl.Instance.CheckpointInterval, Window: tmpl.Instance.Window, Byz: byz,
		Leader: func(i uint32, v uint64) msg.ReplicaID { return LeaderOf(n, i, v) },
	})
	st := coretest.Fuzz(in, c.Net, adv, c.safety, c, coretest.FuzzConfig{N: n, Byz: byz, Clients: fuzzClients,
		Op: func(choice int, cl msg.ClientID, num uint64) []byte {
			op := []byte(fmt.Sprintf("op-%d-%d", cl, num))
			if choice%4 == 0 { // an instance change, to an instance that may not exist
				return msg.InstanceChangeOp(uint32(choice/4%(tmpl.M+1)), op)
			}
			return op
		},
		Retry: func(choice int, r msg.Request) (msg.Request, bool) {
			if _, _, change := msg.ParseInstanceChange(r.Op); change || choice%2 == 1 {
				return r, false
			}
			// The SDK's move: the same number, to another instance, carrying the operation.
			r.Op = msg.InstanceChangeOp(uint32(choice/2%tmpl.M), r.Op)
			return r, true
		}})
	return c, st
}

// fuzzCluster is the harness of cluster (node_test.go) with what the fuzz
// target adds: Byzantine replicas whose output is not checked, the
// invariant checker, and state transfer, which the fuzzer's drops make
// necessary.
type fuzzCluster struct {
	*coretest.Net
	t       testing.TB
	nodes   []*Node
	byz     map[msg.ReplicaID]bool
	safety  *coretest.Safety
	k       uint64
	chain   []msg.Digest              // per replica: running digest of its rounds
	last    []uint64                  // per replica: last round executed or transferred to
	lastNum []map[msg.ClientID]uint64 // per replica: highest request number executed per client
	states  []map[uint64]fuzzState    // per replica: what it had at each checkpoint round
	pending []*pbft.StateTransfer     // per replica: a transfer asked for and not yet done
	// What the seeds' test looks for: rounds executed, failure decisions
	// executed and state transfers installed, by correct replicas.
	rounds, failures, transfers int
}

type fuzzState struct {
	chain   msg.Digest
	state   []byte
	lastNum map[msg.ClientID]uint64
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
		for _, r := range rd.Rounds {
			c.execute(i, r)
		}
		if st := rd.StateTransfer; st != nil && (c.pending[i] == nil || st.Seq > c.pending[i].Seq) {
			c.pending[i] = st
		}
		for _, o := range rd.Messages {
			if from, _ := msg.Sender(o.Msg); !c.byz[id] && from == id {
				if key, ok := pbft.SignedKey(o.Msg); ok {
					if err := c.safety.Signed(id, key, msg.SignedBytes(o.Msg)); err != nil {
						c.t.Fatal(err)
					}
				}
			}
			c.Output(id, o.Broadcast, o.To, o.Msg)
		}
	}
}

// roundDigest binds what every correct replica must execute identically in
// a round: its seed, batches, entries (request, operation, outcome) and
// failures, and the paradigm state after it. Views are left out: a
// replica that learned a decision in a later view than another decided it
// in reports that view.
func roundDigest(r *Round) msg.Digest {
	h := sha256.New()
	var b []byte
	b = binary.BigEndian.AppendUint64(b, r.Round)
	b = append(b, r.Seed[:]...)
	for _, x := range r.Batches {
		b = binary.BigEndian.AppendUint32(b, x.Instance)
		b = append(b, x.Digest[:]...)
	}
	for _, e := range r.Entries {
		b = binary.BigEndian.AppendUint32(b, e.Instance)
		b = binary.BigEndian.AppendUint64(b, uint64(e.Request.Client))
		b = binary.BigEndian.AppendUint64(b, e.Request.Number)
		b = binary.BigEndian.AppendUint64(b, uint64(len(e.Op)))
		b = append(b, e.Op...)
		b = append(b, byte(e.Outcome), byte(e.Refusal))
	}
	for _, f := range r.Failures {
		b = binary.BigEndian.AppendUint32(b, f.Instance)
		b = binary.BigEndian.AppendUint64(b, f.View)
		b = binary.BigEndian.AppendUint32(b, uint32(f.NewPrimary))
		b = binary.BigEndian.AppendUint64(b, f.Resume)
	}
	state := sha256.Sum256(r.State)
	h.Write(b)
	h.Write(state[:])
	var d msg.Digest
	h.Sum(d[:0])
	return d
}

func (c *fuzzCluster) execute(i int, r Round) {
	id := msg.ReplicaID(i)
	d := roundDigest(&r)
	if !c.byz[id] {
		reqs := make([]msg.Request, len(r.Entries))
		for k, e := range r.Entries {
			reqs[k] = e.Request
			if last := c.lastNum[i][e.Request.Client]; e.Request.Number <= last {
				c.t.Fatalf("exactly-once: replica %d executed request %v in round %d after number %d", i, e.Request.Key(), r.Round, last)
			}
		}
		if err := c.safety.Decide(id, r.Round, d, reqs); err != nil {
			c.t.Fatal(err)
		}
		c.rounds++
		c.failures += len(r.Failures)
	}
	for _, e := range r.Entries {
		c.lastNum[i][e.Request.Client] = max(c.lastNum[i][e.Request.Client], e.Request.Number)
	}
	c.last[i] = r.Round
	c.chain[i] = sha256.Sum256(append(c.chain[i][:], d[:]...))
	if r.Round%c.k == 0 {
		c.states[i][r.Round] = fuzzState{c.chain[i], bytes.Clone(r.State), maps.Clone(c.lastNum[i])}
		c.nodes[i].Checkpoint(r.Round, c.chain[i])
	}
}

// Transfer installs the state replica i asked for from a correct replica
// that reached it, as the shell does: the paradigm state, then
// StateTransferred with the exactly-once numbers, its own checkpoint,
// Announce. A transfer to a round the replica executed past meanwhile is
// ignored, as the shell ignores it.
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
		c.t.Fatalf("replica %d asked for a state transfer to round %d, state %x, which no correct replica reached", i, st.Seq, st.State[:4])
	}
	if !c.byz[id] {
		if err := c.safety.Transferred(id, st.Seq); err != nil {
			c.t.Fatal(err)
		}
		c.transfers++
	}
	nd := c.nodes[i]
	if err := nd.SetState(src.state); err != nil {
		c.t.Fatalf("replica %d: install the paradigm state of round %d: %v", i, st.Seq, err)
	}
	c.last[i], c.chain[i], c.lastNum[i] = st.Seq, src.chain, maps.Clone(src.lastNum)
	c.states[i][st.Seq] = fuzzState{src.chain, src.state, maps.Clone(src.lastNum)}
	nd.StateTransferred(st.Seq, maps.Clone(src.lastNum))
	nd.Checkpoint(st.Seq, st.State)
	nd.Announce()
	c.drain(i)
}

// The seeds' cluster: n = 4, m = 4 (in-place recovery) or m = 3
// (replacement); replica 3 Byzantine or view 0's primary of instance 0
// (replica 0); K = 2, window 6, batches of 2, timeouts of 4 ticks,
// retransmit every 2, padding to checkpoints.
func rccSeedConfig(m, byzStart byte) []byte {
	return []byte{0, m - 1, byzStart, 0, 1, 0, 1, 1, 1, 1, 0, 1}
}

// rccFuzzSeeds are the corpus's starting points, each reaching a path the
// CI budget must cover (TestFuzzNodeSeeds checks they do).
func rccFuzzSeeds() [][]byte {
	return [][]byte{
		rccSeedCheckpoints(rccSeedConfig(4, 3)).Bytes(),
		rccSeedFailure(rccSeedConfig(4, 3)).Bytes(),
		rccSeedFailure(rccSeedConfig(3, 3)).Bytes(),
		rccSeedTransfer(rccSeedConfig(4, 3)).Bytes(),
		rccSeedInjections(rccSeedConfig(4, 0)).Bytes(),
		rccSeedEquivocation(rccSeedConfig(4, 0)).Bytes(),
	}
}

// Instance 0's primary, Byzantine, proposes a second batch for round 1 to
// replica 2 and commits it there. With pbft's prepare and commit quorums
// one smaller each, this seed splits round 1: seen failing with agreement.
func rccSeedEquivocation(cfg []byte) *coretest.Program {
	p := coretest.NewProgram(cfg...).Submit(0, 0).Submit(4, 0) // clients of instance 0
	p.Inject(1, 0, 11, 1, 2, 3)                                // to replica 2: equivocate on its own latest proposal
	p.Inject(1, 0, 4, 0, 0, 3, 3)                              // to replica 2: a commit for that second body
	return p.Op(coretest.OpSettle).Op(coretest.OpTickAll).Op(coretest.OpSettle)
}

// Requests of every client to every replica, delivered: rounds, some
// instance changes, stable checkpoints.
func rccSeedCheckpoints(cfg []byte) *coretest.Program {
	p := coretest.NewProgram(cfg...)
	for k := range byte(12) {
		p.Op(coretest.OpSubmit, k%fuzzClients, 1, k*13, 4).Op(coretest.OpSettle).Op(coretest.OpTickAll).Op(coretest.OpSettle)
	}
	return p
}

// Replica 0, instance 0's primary, is cut off while its clients' requests
// go to all: instance 0 fails (a view change and a failure decision
// executed), and the rounds go on.
func rccSeedFailure(cfg []byte) *coretest.Program {
	p := coretest.NewProgram(cfg...).Op(coretest.OpIsolate, 0)
	for k := range byte(20) {
		p.Submit(k%fuzzClients, 4).Op(coretest.OpTickAll).Op(coretest.OpSettle).Op(coretest.OpTickAll).Op(coretest.OpSettle)
	}
	return p.Op(coretest.OpIsolate, 0).Repeat(6, func(p *coretest.Program) {
		p.Submit(1, 4).Op(coretest.OpTickAll).Op(coretest.OpSettle)
	})
}

// Replica 2 is cut off while the others execute past several checkpoints;
// back, it sees their next checkpoints and transfers the state.
func rccSeedTransfer(cfg []byte) *coretest.Program {
	p := coretest.NewProgram(cfg...).Op(coretest.OpIsolate, 2)
	for k := range byte(12) {
		p.Submit(k%fuzzClients, 4).Op(coretest.OpSettle).Op(coretest.OpTickAll).Op(coretest.OpSettle)
	}
	return p.Op(coretest.OpIsolate, 2).Repeat(6, func(p *coretest.Program) {
		p.Submit(1, 4).Op(coretest.OpSettle).Op(coretest.OpTickAll).Op(coretest.OpSettle).Op(coretest.OpTransfer, 2)
	})
}

// A Byzantine primary's cluster under every kind of injected message, for
// every instance.
func rccSeedInjections(cfg []byte) *coretest.Program {
	p := coretest.NewProgram(cfg...)
	for k := byte(0); k < 22; k++ {
		p.Submit(k%fuzzClients, 4).Op(coretest.OpDeliver, 3)
		// Inject's chunk: destination, instance, kind (of 12), then the kind's choices.
		p.Inject(k%3, k%4, k%12, k*7, k*13, k*29, 1, 2, 3, k, k+1)
		p.Inject(k%3, (k+1)%4, (k+5)%12, 4, 4, k*3, k*5, 0, 1)
		p.Op(coretest.OpTickAll).Op(coretest.OpSettle)
	}
	return p
}

// The seeds reach what they are there for, and an empty input runs.
func TestFuzzNodeSeeds(t *testing.T) {
	if c, st := runFuzzNode(t, rccSeedCheckpoints(rccSeedConfig(4, 3)).Bytes()); c.nodes[1].Instance(0).LowWatermark() < 4 {
		t.Fatalf("checkpoint seed: low watermark %d, want ≥ 4 (%d rounds, %+v)", c.nodes[1].Instance(0).LowWatermark(), c.rounds, st)
	}
	for _, m := range []byte{3, 4} {
		if c, st := runFuzzNode(t, rccSeedFailure(rccSeedConfig(m, 3)).Bytes()); c.failures == 0 {
			t.Fatalf("failure seed, m=%d: no failure decision executed (%d rounds, %+v)", m, c.rounds, st)
		}
	}
	if c, st := runFuzzNode(t, rccSeedTransfer(rccSeedConfig(4, 3)).Bytes()); c.transfers == 0 {
		t.Fatalf("transfer seed: no state transfer (%d rounds, %+v)", c.rounds, st)
	}
	if _, st := runFuzzNode(t, rccSeedInjections(rccSeedConfig(4, 0)).Bytes()); st.Injected < 40 || st.Rejected > 0 {
		t.Fatalf("injection seed: %d injected, %d rejected by the shell's check; want ≥ 40 and none", st.Injected, st.Rejected)
	}
	c, _ := runFuzzNode(t, rccSeedEquivocation(rccSeedConfig(4, 0)).Bytes())
	if eq := c.nodes[2].Instance(0).Stats().Dropped["equivocation"]; eq == 0 {
		t.Fatalf("equivocation seed: replica 2 never saw instance 0's primary's two pre-prepares for one round")
	}
	runFuzzNode(t, nil)
}
