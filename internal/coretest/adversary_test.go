package coretest

import (
	"math/rand/v2"
	"testing"

	"github.com/braid-bft/braid/internal/testseed"
	"github.com/braid-bft/braid/msg"
)

type randChooser struct{ r *rand.Rand }

func (c randChooser) Intn(n int) int {
	if n <= 1 {
		return 0
	}
	return c.r.IntN(n)
}

// Everything the adversary makes passes the shell's check (it decodes and
// its signatures verify), comes from a Byzantine replica over its own
// link, and goes to another replica: it would reach a core.
func TestAdversaryMessagesPassTheShellCheck(t *testing.T) {
	seed := testseed.New(t)
	c := randChooser{rand.New(rand.NewPCG(seed, 0))}
	const n, m = 7, 3
	byz := []msg.ReplicaID{5, 6}
	adv := NewAdversary(AdversaryConfig{N: n, M: m, K: 4, Window: 16, Byz: byz,
		Leader: func(i uint32, v uint64) msg.ReplicaID { return msg.PrimaryOf(n, i, v) }})
	// What correct replicas would send, for the adversary to see.
	for k := uint64(1); k <= 20; k++ {
		r := msg.Request{Client: msg.ClientID(k % 3), Number: k, Op: []byte{byte(k)}}
		SignRequest(&r)
		inst := uint32(k % m)
		from := msg.ReplicaID(k % 5)
		pp := &msg.PrePrepare{Instance: inst, View: k / 8, Seq: k, Batch: msg.Batch{Requests: []msg.Request{r}}, From: from}
		pp.Digest = pp.Batch.Digest()
		sign(pp, from)
		adv.Observe(pp)
		for b := msg.ReplicaID(0); b < 5; b++ {
			p := &msg.Prepare{Instance: inst, View: pp.View, Seq: k, Digest: pp.Digest, From: b}
			sign(p, b)
			adv.Observe(p)
			if k%4 == 0 {
				cp := &msg.Checkpoint{Instance: inst, Seq: k, State: msg.Digest{byte(k)}, From: b}
				sign(cp, b)
				adv.Observe(cp)
			}
		}
		vc := adv.viewChange(c, from, inst, k/8+1) // as if a correct replica had built it
		vc.From = from
		sign(vc, from)
		adv.Observe(vc)
	}
	kinds := map[msg.Kind]int{}
	for k := 0; k < 5000; k++ {
		e := adv.Next(c)
		if _, ok := ShellCheck(e.Msg); !ok {
			t.Fatalf("seed %d: message %d (%v from %d) fails the shell's check", seed, k, e.Msg.Kind(), e.From)
		}
		if e.From != 5 && e.From != 6 || e.To == e.From || int(e.To) >= n {
			t.Fatalf("seed %d: message %d goes from %d to %d", seed, k, e.From, e.To)
		}
		kinds[e.Msg.Kind()]++
		adv.Observe(e.Msg) // Byzantine replicas see each other's, too
	}
	for _, k := range []msg.Kind{msg.KindRequest, msg.KindPrePrepare, msg.KindPrepare, msg.KindCommit,
		msg.KindCheckpoint, msg.KindViewChange, msg.KindNewView, msg.KindStatus} {
		if kinds[k] == 0 {
			t.Fatalf("seed %d: no %v among 5000 messages (%v)", seed, k, kinds)
		}
	}
}
