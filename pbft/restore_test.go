package pbft

import (
	"crypto/sha256"
	"math/rand/v2"
	"testing"

	"github.com/braid-bft/braid/internal/coretest"
	"github.com/braid-bft/braid/msg"
)

// signedLog records every signed message each replica sends (and the ones it
// signed nested inside them), by SignedKey, and every contradiction.
type signedLog struct {
	seen      map[string][32]byte
	conflicts []string
}

func (l *signedLog) record(from msg.ReplicaID, m msg.Message) {
	for _, part := range SignedMessages(m) {
		if s, _ := msg.Sender(part); s != from {
			continue
		}
		key, _ := SignedKey(part)
		d := sha256.Sum256(msg.SignedBytes(part))
		if have, ok := l.seen[key]; !ok {
			l.seen[key] = d
		} else if have != d {
			l.conflicts = append(l.conflicts, key)
		}
	}
}

// watchSigned makes the cluster's wire record what everybody signs; inner,
// if set, is the adversary applied after recording.
func watchSigned(c *cluster, inner func(coretest.Envelope) []coretest.Envelope) *signedLog {
	l := &signedLog{seen: map[string][32]byte{}}
	c.Filter = func(e coretest.Envelope) []coretest.Envelope {
		l.record(e.From, e.Msg)
		if inner != nil {
			return inner(e)
		}
		return []coretest.Envelope{e}
	}
	return l
}

// restart replaces replica i by a fresh core restored from its records, with
// cfg possibly changed (the primary rule as it stands after the restart).
func (c *cluster) restart(i int, change func(*Config)) *Node {
	c.t.Helper()
	old := c.nodes[i]
	cfg := old.cfg
	if change != nil {
		change(&cfg)
	}
	fresh, err := New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	fresh.Restore(c.records[i], old.LastDecided(), nil)
	c.nodes[i] = fresh
	return fresh
}

// staleRuleCluster is a 4-replica cluster in which replica id's primary
// rule names nobody while *stale is set, as RCC's rule may right after a
// restart; tweak, if set, adjusts every replica's config.
func staleRuleCluster(t *testing.T, id msg.ReplicaID, tweak func(*Config)) (*cluster, *bool) {
	stale := new(bool)
	c := newCluster(t, 4, func(cfg *Config) {
		if tweak != nil {
			tweak(cfg)
		}
		if cfg.ID == id {
			rr := cfg.Primary
			cfg.Primary = func(v uint64) msg.ReplicaID {
				if *stale {
					return msg.NoReplica
				}
				return rr(v)
			}
		}
	})
	return c, stale
}

func dropKind[T msg.Message](e coretest.Envelope) []coretest.Envelope {
	if _, ok := e.Msg.(T); ok {
		return nil
	}
	return []coretest.Envelope{e}
}

// The primary rule may name nobody (or somebody else) for a view right after
// a restart — under RCC it depends on paradigm state that may be older than
// the records. The restarted primary must still honour the pre-prepares it
// signed: when it leads again, it proposes after them, never over them.
func TestRestartedPrimaryHonoursItsPreprepares(t *testing.T) {
	c, stale := staleRuleCluster(t, 0, func(cfg *Config) { cfg.MaxBatch = 1 })
	// Nothing commits: the proposals are outstanding when replica 0 crashes.
	log := watchSigned(c, dropKind[*msg.Commit])
	for i := uint64(1); i <= 3; i++ {
		c.nodes[0].Request(req(1, i))
	}
	c.Tick(2)
	if got := c.nodes[0].NextProposal(); got != 4 {
		t.Fatalf("primary proposed up to %d before the crash, want 3", got-1)
	}
	*stale = true // replica 0's primary rule does not know view 0's primary yet
	n0 := c.restart(0, nil)
	n0.Announce() // peers hand its pre-prepares back; the stale rule refuses them
	c.Tick(2*n0.cfg.RetransmitTicks + 1)
	*stale = false // the paradigm layer caught up: replica 0 leads view 0 again
	n0.PrimaryChanged()
	c.Settle()
	n0.Request(req(2, 1))
	c.Tick(2)
	if len(log.conflicts) > 0 {
		t.Fatalf("restarted primary equivocated: %v", log.conflicts)
	}
	if got := n0.NextProposal(); got <= 4 {
		t.Fatalf("restarted primary's next proposal is %d, want past its pre-prepares 1..3", got)
	}
}

// A backup whose recorded pre-prepare is refused on replay (the primary rule
// does not name its sender at restart time) must keep the prepare it signed
// and the prepared proof it had, and must not sign a prepare for another
// batch at the same (view, seq) when an equivocating primary sends one.
func TestRestartedBackupHonoursItsPrepares(t *testing.T) {
	c, stale := staleRuleCluster(t, 1, nil)
	log := watchSigned(c, dropKind[*msg.Commit])
	c.nodes[0].Request(req(1, 1))
	c.Tick(2)
	old := c.nodes[1]
	if old.prepared[1] == nil {
		t.Fatal("replica 1 did not prepare seq 1 before the crash")
	}
	*stale = true
	n1 := c.restart(1, nil)
	*stale = false
	n1.PrimaryChanged()
	if n1.prepared[1] == nil {
		t.Error("restarted backup lost its prepared proof for seq 1")
	}
	// Replica 0 equivocates: a different batch for (0, 1), to replica 1.
	alt := &msg.PrePrepare{Instance: 0, View: 0, Seq: 1, From: 0, Batch: msg.Batch{Requests: []msg.Request{req(9, 9)}}}
	alt.Digest = alt.Batch.Digest()
	c.nodes[0].sign(alt)
	n1.Step(0, alt)
	c.drain(1)
	c.Settle()
	if len(log.conflicts) > 0 {
		t.Fatalf("restarted backup equivocated: %v", log.conflicts)
	}
}

// A replica's own checkpoint is a signed statement too: after a restart it
// is restored, and a checkpoint for the same sequence number with another
// state is refused, not signed.
func TestRestartedReplicaHonoursItsCheckpoints(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.MaxBatch = 1; cfg.CheckpointInterval = 4; cfg.Window = 8 })
	log := watchSigned(c, nil)
	c.nodes[1].Checkpoint(4, msg.Digest{1}) // alone: it does not become stable
	c.drain(1)
	n1 := c.restart(1, nil)
	n1.Checkpoint(4, msg.Digest{2})
	c.drain(1)
	c.Settle()
	if len(log.conflicts) > 0 {
		t.Fatalf("restarted replica signed two checkpoints for seq 4: %v", log.conflicts)
	}
}

// Random crashes and restarts, a lossy wire, and primary rules that name
// nobody for a while after each restart (as a stale paradigm state would):
// no replica ever signs two different messages for the same key, and
// decisions agree. Each seed is printed on failure.
func TestRandomRestartsNeverEquivocate(t *testing.T) {
	for seed := uint64(1); seed <= 40; seed++ {
		rng := rand.New(rand.NewPCG(seed, 0x5eed))
		stale := make([]bool, 4)
		c := newCluster(t, 4, func(cfg *Config) {
			cfg.MaxBatch = 1
			id := cfg.ID
			rr := cfg.Primary
			cfg.Primary = func(v uint64) msg.ReplicaID {
				if stale[id] {
					return msg.NoReplica
				}
				return rr(v)
			}
		})
		log := watchSigned(c, func(e coretest.Envelope) []coretest.Envelope {
			if rng.IntN(10) == 0 {
				return nil
			}
			return []coretest.Envelope{e}
		})
		num := uint64(0)
		for step := 0; step < 60; step++ {
			switch r := rng.IntN(10); {
			case r < 4 && num < 12: // stay below the first checkpoint: the harness has no state transfer
				num++
				for i := range c.nodes {
					c.nodes[i].Request(req(1, num))
					c.drain(i)
				}
			case r < 5:
				i := rng.IntN(4)
				stale[i] = rng.IntN(2) == 0
				c.restart(i, nil).Announce()
			case r < 6:
				for i := range stale {
					if stale[i] {
						stale[i] = false
						c.nodes[i].PrimaryChanged()
						c.drain(i)
					}
				}
			}
			c.Tick(1 + rng.IntN(5))
		}
		if len(log.conflicts) > 0 {
			t.Fatalf("seed %d: a replica equivocated across restarts: %v", seed, log.conflicts)
		}
		c.checkAgreement()
	}
}

func TestSignedKey(t *testing.T) {
	for _, tc := range []struct {
		m    msg.Message
		want string
	}{
		{&msg.PrePrepare{Instance: 1, View: 2, Seq: 3, From: 4}, "pre-prepare/i1/r4/v2/s3"},
		{&msg.Prepare{Instance: 1, View: 2, Seq: 3, From: 4}, "prepare/i1/r4/v2/s3"},
		{&msg.Commit{Instance: 1, View: 2, Seq: 3, From: 4}, "commit/i1/r4/v2/s3"},
		{&msg.Checkpoint{Instance: 1, Seq: 16, From: 4}, "checkpoint/i1/r4/s16"},
		{&msg.ViewChange{Instance: 1, NewView: 5, StableSeq: 16, From: 4}, "view-change/i1/r4/v5"},
		{&msg.NewView{Instance: 1, View: 5, From: 4}, "new-view/i1/r4/v5"},
	} {
		if got, ok := SignedKey(tc.m); !ok || got != tc.want {
			t.Errorf("SignedKey(%T) = %q, %v; want %q", tc.m, got, ok, tc.want)
		}
	}
	for _, m := range []msg.Message{&msg.Status{}, &msg.ClientRequest{}, &msg.Reply{}} {
		if _, ok := SignedKey(m); ok {
			t.Errorf("SignedKey(%T) reported a signed message", m)
		}
	}
	nv := &msg.NewView{View: 5, From: 1,
		ViewChanges: []msg.ViewChange{{NewView: 5, From: 2, Prepared: []msg.PreparedProof{{PrePrepare: msg.PrePrepare{Seq: 1}, Prepares: []msg.Prepare{{Seq: 1, From: 3}}}}}},
		PrePrepares: []msg.PrePrepare{{View: 5, Seq: 1, From: 1}}}
	if got := len(SignedMessages(nv)); got != 5 {
		t.Errorf("SignedMessages(new view) has %d parts, want 5 (itself, a view change, its pre-prepare and prepare, a pre-prepare)", got)
	}
}
