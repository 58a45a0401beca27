package auth

import "github.com/braid-bft/braid/msg"

// Domain-separation contexts of protocol signatures. These are the only two
// contexts protocol signatures use: every signature a replica makes (on
// pre-prepares, prepares, checkpoints — including the ledger's certificate
// checkpoints —, view changes and new views) is under ContextReplica, and
// every client request signature is under ContextClient. Within one context
// the payload itself tells message types apart (msg.SignedBytes starts with
// its own tag and the message kind; msg.Request.SignedBytes with
// "braid/request/v1"). Keeping replicas and clients in different contexts
// means that a client signature never verifies as a replica's, even if the
// same key were registered as both.
const (
	ContextReplica = "braid/replica/v1"
	ContextClient  = "braid/client/v1"
)

// Keyring is the production msg.Verifier: Ed25519 (ZIP-215, see Verify)
// under the replica and client public keys of the cluster configuration.
// It is read-only once built and then safe for concurrent use.
type Keyring struct {
	// Replicas maps each replica id to its public key.
	Replicas map[msg.ReplicaID]PublicKey
	// Clients maps each admitted client id to its public key. A client id
	// missing here is rejected: a signature cannot be checked without the
	// signer's key.
	Clients map[msg.ClientID]PublicKey
}

var (
	_ msg.Verifier = Keyring{}
	_ msg.Signer   = Signer{}
)

// Replica reports whether sig is replica id's signature over payload under
// ContextReplica. An unknown id yields false.
func (k Keyring) Replica(id msg.ReplicaID, payload, sig []byte) bool {
	key, ok := k.Replicas[id]
	return ok && Verify(key, ContextReplica, payload, sig)
}

// Client reports whether sig is client id's signature over payload under
// ContextClient. An unknown id yields false.
func (k Keyring) Client(id msg.ClientID, payload, sig []byte) bool {
	key, ok := k.Clients[id]
	return ok && Verify(key, ContextClient, payload, sig)
}

// Signer is the production msg.Signer: Ed25519 signatures by Key under
// Context. Use ReplicaSigner or ClientSigner rather than choosing a context
// by hand. A malformed Key or Context makes Sign return nil, which never
// verifies.
type Signer struct {
	Key     PrivateKey
	Context string
}

// ReplicaSigner returns the signer a replica signs its protocol messages
// with (ContextReplica).
func ReplicaSigner(priv PrivateKey) Signer { return Signer{Key: priv, Context: ContextReplica} }

// ClientSigner returns the signer a client signs its requests with
// (ContextClient).
func ClientSigner(priv PrivateKey) Signer { return Signer{Key: priv, Context: ContextClient} }

// Sign returns the signature of payload by s.Key under s.Context.
func (s Signer) Sign(payload []byte) []byte { return Sign(s.Key, s.Context, payload) }
