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
