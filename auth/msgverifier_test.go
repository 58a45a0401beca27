package auth_test

import (
	"errors"
	"testing"

	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/msg"
)

type testKeys struct {
	replicas []auth.PrivateKey
	clients  []auth.PrivateKey
	ring     auth.Keyring
}

func newTestKeys(t *testing.T, replicas, clients int) *testKeys {
	t.Helper()
	k := &testKeys{ring: auth.Keyring{
		Replicas: make(map[msg.ReplicaID]auth.PublicKey),
		Clients:  make(map[msg.ClientID]auth.PublicKey),
	}}
	for i := range replicas {
		pub, priv, err := auth.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		k.replicas = append(k.replicas, priv)
		k.ring.Replicas[msg.ReplicaID(i)] = pub
	}
	for j := range clients {
		pub, priv, err := auth.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		k.clients = append(k.clients, priv)
		k.ring.Clients[msg.ClientID(j+1)] = pub // client ids 1..clients
	}
	return k
}

func (k *testKeys) request(client msg.ClientID, number uint64, op string) msg.Request {
	r := msg.Request{Client: client, Number: number, Op: []byte(op)}
	r.Sig = auth.ClientSigner(k.clients[client-1]).Sign(r.SignedBytes())
	return r
}

func (k *testKeys) prePrepare(from msg.ReplicaID, reqs ...msg.Request) *msg.PrePrepare {
	pp := &msg.PrePrepare{Instance: 1, View: 2, Seq: 3, Batch: msg.Batch{Requests: reqs}, From: from}
	pp.Digest = pp.Batch.Digest()
	pp.Sig = auth.ReplicaSigner(k.replicas[from]).Sign(msg.SignedBytes(pp))
	return pp
}

func (k *testKeys) prepare(from msg.ReplicaID) *msg.Prepare {
	p := &msg.Prepare{Instance: 1, View: 2, Seq: 3, Digest: msg.Digest{7}, From: from}
	p.Sig = auth.ReplicaSigner(k.replicas[from]).Sign(msg.SignedBytes(p))
	return p
}

func TestKeyringRoundTrip(t *testing.T) {
	k := newTestKeys(t, 4, 2)
	if err := msg.Verify(k.prepare(2), k.ring); err != nil {
		t.Fatalf("prepare: %v", err)
	}
	pp := k.prePrepare(1, k.request(1, 1, "put a 1"), k.request(2, 7, "get a"))
	if err := msg.Verify(pp, k.ring); err != nil {
		t.Fatalf("pre-prepare: %v", err)
	}
	// The pointer works as a Verifier too.
	if err := msg.Verify(pp, &k.ring); err != nil {
		t.Fatalf("pre-prepare via *Keyring: %v", err)
	}
	cr := &msg.ClientRequest{Instance: 1, Request: k.request(2, 8, "x")}
	if err := msg.Verify(cr, k.ring); err != nil {
		t.Fatalf("client request: %v", err)
	}
}

func TestKeyringRejects(t *testing.T) {
	k := newTestKeys(t, 4, 2)
	other := newTestKeys(t, 4, 2)

	mustFail := func(name string, m msg.Message, v msg.Verifier) {
		t.Helper()
		if err := msg.Verify(m, v); !errors.Is(err, msg.ErrBadSignature) {
			t.Errorf("%s: Verify = %v, want ErrBadSignature", name, err)
		}
	}

	// Wrong key: signed by another cluster's replica 2.
	mustFail("prepare under wrong key", other.prepare(2), k.ring)
	// Claims to be replica 3 but signed by replica 2.
	p := k.prepare(2)
	p.From = 3
	mustFail("prepare relabelled", p, k.ring)
	// Unknown replica id.
	p = k.prepare(2)
	p.From = 9
	p.Sig = auth.ReplicaSigner(k.replicas[2]).Sign(msg.SignedBytes(p))
	mustFail("prepare from unknown replica", p, k.ring)
	// Tampered payload.
	p = k.prepare(2)
	p.Seq++
	mustFail("tampered prepare", p, k.ring)

	// A request by an unknown client inside a correctly signed pre-prepare.
	r := other.request(1, 1, "op")
	r.Client = 99
	mustFail("request from unknown client", k.prePrepare(0, k.request(1, 1, "ok"), r), k.ring)
	// A request signed with the wrong client's key.
	mustFail("request under wrong key", k.prePrepare(0, other.request(1, 1, "op")), k.ring)

	// Empty keyring.
	mustFail("empty keyring", k.prepare(0), auth.Keyring{})
}

// TestKeyringCrossContext registers one key pair as both a replica and a
// client: a signature under one context must not verify under the other.
func TestKeyringCrossContext(t *testing.T) {
	pub, priv, err := auth.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	ring := auth.Keyring{
		Replicas: map[msg.ReplicaID]auth.PublicKey{0: pub},
		Clients:  map[msg.ClientID]auth.PublicKey{0: pub},
	}
	payload := []byte("the same bytes")
	clientSig := auth.ClientSigner(priv).Sign(payload)
	replicaSig := auth.ReplicaSigner(priv).Sign(payload)
	if !ring.Client(0, payload, clientSig) || !ring.Replica(0, payload, replicaSig) {
		t.Fatal("signatures do not verify in their own context")
	}
	if ring.Replica(0, payload, clientSig) {
		t.Error("a client signature verifies as a replica's")
	}
	if ring.Client(0, payload, replicaSig) {
		t.Error("a replica signature verifies as a client's")
	}

	// Through msg.Verify: a prepare signed with the client signer.
	p := &msg.Prepare{Seq: 1, From: 0}
	p.Sig = auth.ClientSigner(priv).Sign(msg.SignedBytes(p))
	if err := msg.Verify(p, ring); !errors.Is(err, msg.ErrBadSignature) {
		t.Errorf("client-context prepare: Verify = %v, want ErrBadSignature", err)
	}
	// And a request signed with the replica signer.
	r := msg.Request{Client: 0, Number: 1, Op: []byte("op")}
	r.Sig = auth.ReplicaSigner(priv).Sign(r.SignedBytes())
	if err := msg.Verify(&msg.ClientRequest{Request: r}, ring); !errors.Is(err, msg.ErrBadSignature) {
		t.Errorf("replica-context request: Verify = %v, want ErrBadSignature", err)
	}
}

func TestSignerContexts(t *testing.T) {
	_, priv, err := auth.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	// The contexts are part of the protocol: changing them invalidates every
	// stored signature.
	if auth.ContextReplica != "braid/replica/v1" || auth.ContextClient != "braid/client/v1" {
		t.Errorf("contexts changed: %q, %q", auth.ContextReplica, auth.ContextClient)
	}
	if s := auth.ReplicaSigner(priv); s.Context != auth.ContextReplica {
		t.Errorf("ReplicaSigner context %q", s.Context)
	}
	if s := auth.ClientSigner(priv); s.Context != auth.ContextClient {
		t.Errorf("ClientSigner context %q", s.Context)
	}
	payload := []byte("p")
	if got, want := auth.ReplicaSigner(priv).Sign(payload), auth.Sign(priv, auth.ContextReplica, payload); string(got) != string(want) {
		t.Error("ReplicaSigner.Sign differs from auth.Sign under ContextReplica")
	}
	if sig := (auth.Signer{Key: priv[:10], Context: auth.ContextReplica}).Sign(payload); sig != nil {
		t.Errorf("malformed key signed: %x", sig)
	}
}
