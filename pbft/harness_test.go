package pbft

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"testing"

	"github.com/braid-bft/braid/internal/coretest"
	"github.com/braid-bft/braid/msg"
)

// cluster wires n cores with a FIFO network and an in-order executor, so
// unit tests can drive exact interleavings without the simulator.
type cluster struct {
	*coretest.Net
	t       testing.TB
	nodes   []*Node
	decided [][]Decision
	records [][]msg.Message
	chain   []msg.Digest // per-replica running digest of decisions
	noKeep  bool         // benchmarks: do not retain records
	// held, when non-nil, holds the checkpoints the executor would take,
	// per replica, instead of taking them: execution held up outside the
	// instance, as RCC's is by another instance (releaseCheckpoints).
	held [][]uint64
}

// holdCheckpoints makes the executor stop checkpointing until
// releaseCheckpoints: the instance runs into the end of its window.
func (c *cluster) holdCheckpoints() { c.held = make([][]uint64, len(c.nodes)) }

// releaseCheckpoints takes the held checkpoints and checkpoints as it
// executes again.
func (c *cluster) releaseCheckpoints() {
	held := c.held
	c.held = nil
	for i, seqs := range held {
		for _, seq := range seqs {
			c.nodes[i].Checkpoint(seq, c.chainAt(i, seq))
		}
		c.drain(i)
	}
	c.Settle()
}

// chainAt is replica i's running digest of decisions through seq.
func (c *cluster) chainAt(i int, seq uint64) msg.Digest {
	var d msg.Digest
	for _, x := range c.decided[i] {
		if x.Seq > seq {
			break
		}
		d = sha256.Sum256(append(d[:], x.Digest[:]...))
	}
	return d
}

func roundRobin(n int) func(uint64) msg.ReplicaID {
	return func(v uint64) msg.ReplicaID { return msg.ReplicaID(v % uint64(n)) }
}

func newCluster(t testing.TB, n int, tweak func(*Config)) *cluster {
	c := &cluster{t: t}

	for i := 0; i < n; i++ {
		cfg := Config{ID: msg.ReplicaID(i), N: n, Primary: roundRobin(n), Signer: coretest.Signer{ID: msg.ReplicaID(i)}}
		if tweak != nil {
			tweak(&cfg)
		}
		node, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, node)
	}
	c.decided = make([][]Decision, n)
	c.records = make([][]msg.Message, n)
	c.chain = make([]msg.Digest, n)
	c.Net = coretest.NetFor(t, c.nodes, c.drain)
	return c
}

func (c *cluster) drain(i int) {
	nd := c.nodes[i]
	for nd.HasReady() {
		rd := nd.Ready()
		if !c.noKeep {
			c.records[i] = append(c.records[i], rd.Persist...)
		}
		for _, d := range rd.Decided {
			c.decided[i] = append(c.decided[i], d)
			c.chain[i] = sha256.Sum256(append(c.chain[i][:], d.Digest[:]...))
			for _, r := range d.Batch.Requests { // the harness is the execution layer
				nd.ClientExecuted(r.Client, r.Number)
			}
			if d.Seq%nd.cfg.CheckpointInterval == 0 {
				if c.held != nil {
					c.held[i] = append(c.held[i], d.Seq)
				} else {
					nd.Checkpoint(d.Seq, c.chain[i])
				}
			}
		}
		if rd.StateTransfer != nil {
			c.t.Fatalf("replica %d needs state transfer to %d; the unit harness does not do that", i, rd.StateTransfer.Seq)
		}
		for _, o := range rd.Messages {
			c.Output(msg.ReplicaID(i), o.Broadcast, o.To, o.Msg)
		}
	}
}

func req(client, num uint64) msg.Request {
	return msg.Request{Client: msg.ClientID(client), Number: num, Op: []byte(fmt.Sprintf("op-%d-%d", client, num))}
}

// checkAgreement: decisions of live replicas are prefix-related and agree per sequence number.
func (c *cluster) checkAgreement() {
	c.t.Helper()
	for i := range c.decided {
		for j := range c.decided {
			a, b := c.decided[i], c.decided[j]
			for k := 0; k < min(len(a), len(b)); k++ {
				if a[k].Seq != b[k].Seq || a[k].Digest != b[k].Digest {
					c.t.Fatalf("replicas %d and %d diverge at position %d: seq %d/%d digest %x/%x", i, j, k, a[k].Seq, b[k].Seq, a[k].Digest[:4], b[k].Digest[:4])
				}
			}
		}
	}
}

func decidedRequests(ds []Decision) []msg.RequestKey {
	var keys []msg.RequestKey
	for _, d := range ds {
		for _, r := range d.Batch.Requests {
			keys = append(keys, r.Key())
		}
	}
	return keys
}

func hasAll(t testing.TB, ds []Decision, want []msg.RequestKey) {
	t.Helper()
	got := decidedRequests(ds)
	for _, k := range want {
		if !slices.Contains(got, k) {
			t.Fatalf("request %v not decided (decided %d requests)", k, len(got))
		}
	}
}

// fingerprint summarises all protocol state, to prove bad input changed nothing.
func fingerprint(n *Node) string {
	s := fmt.Sprintf("v=%d ch=%v low=%d ld=%d next=%d q=%d w=%d tr=%d vcs=%d|", n.view, n.changing, n.low, n.lastDecided, n.nextSeq, n.queue.len(), len(n.watching), n.transferring, len(n.vcs))
	for _, seq := range sortedSeqs(n.slots) {
		sl := n.slots[seq]
		var d msg.Digest
		if sl.pp != nil {
			d = sl.pp.Digest
		}
		s += fmt.Sprintf("%d:%x:%d:%d:%v:%v;", seq, d[:4], len(sl.prepares), len(sl.commits), sl.prepared, sl.committed)
	}
	for _, id := range sortedIDs(n.ckpts) {
		s += fmt.Sprintf("c%d=%d;", id, len(n.ckpts[id]))
	}
	return s
}
