package replica

import (
	"testing"

	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/httpapi"
	"github.com/braid-bft/braid/internal/testcluster"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/shell"
)

// One batch verification checks replica and client signatures together,
// each under its own key and context, and reports each on its own: a
// forged one, one under the other context, and an unknown signer fail
// without failing their neighbours.
func TestVerifyAllMixesSigners(t *testing.T) {
	cfg, ckey := testcluster.Config(t, 4, false)
	_, keyring, err := shell.FromConfig(cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	rkey, err := cfg.ReplicaKey(2)
	if err != nil {
		t.Fatal(err)
	}
	prep := &msg.Prepare{Instance: 1, Seq: 3, From: 2}
	prepBytes := msg.SignedBytes(prep)
	req := put(ckey, 0, 1, "k", "v")
	good := []msg.Signature{
		{Replica: 2, Kind: msg.KindPrepare, Payload: prepBytes, Sig: auth.ReplicaSigner(rkey).Sign(prepBytes)},
		{Client: true, ClientID: 0, Kind: msg.KindRequest, Payload: req.SignedBytes(), Sig: req.Sig},
	}
	forged := good[0]
	forged.Sig = append([]byte(nil), forged.Sig...)
	forged.Sig[3] ^= 1
	wrongContext := good[1]
	wrongContext.Sig = auth.ReplicaSigner(ckey).Sign(req.SignedBytes()) // the client's key, the replicas' context
	unknown := good[0]
	unknown.Replica = 9
	items := []msg.Signature{good[0], forged, good[1], wrongContext, unknown}
	got := keyCrypto{keyring, httpapi.NewMetrics().VerifyBatchSize}.VerifyAll(items)
	want := []bool{true, false, true, false, false}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("item %d: verified %v, want %v (all: %v)", i, got[i], want[i], got)
		}
	}
}

type observed []float64

func (o *observed) Observe(v float64) { *o = append(*o, v) }

// Client-facing latency runs from a request's first arrival to the reply
// to that number: a retransmission does not restart the clock, a reply to
// another number is not counted, and an answered request leaves nothing
// behind.
func TestLatencyFromFirstArrivalToReply(t *testing.T) {
	var hist observed
	l := latency{pending: map[msg.ClientID]arrival{}, hist: &hist}
	l.received(&msg.Request{Client: 1, Number: 5})
	first := l.pending[1].at
	l.received(&msg.Request{Client: 1, Number: 5}) // retransmission
	l.received(&msg.Request{Client: 1, Number: 4}) // late duplicate of an older one
	if a := l.pending[1]; a.number != 5 || a.at != first {
		t.Fatalf("pending %+v after retransmissions", a)
	}
	l.replied(&msg.Reply{Client: 1, Number: 4})
	l.replied(&msg.Reply{Client: 2, Number: 5})
	if len(hist) != 0 {
		t.Fatalf("replies to other requests observed: %v", hist)
	}
	l.replied(&msg.Reply{Client: 1, Number: 5})
	if len(hist) != 1 || hist[0] < 0 || len(l.pending) != 0 {
		t.Fatalf("observed %v, pending %v", hist, l.pending)
	}
}
