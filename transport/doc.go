// Package transport is Braid's replica network layer: authenticated,
// framed, bounded-memory message delivery between replicas, and between
// clients and replicas.
//
// # Security model
//
// Replicas authenticate each other with mutually authenticated TLS 1.3.
// There is no certificate authority: every replica owns an ed25519 key and
// presents a self-signed certificate built from it at startup. The
// configuration pins each replica id to its ed25519 public key, and a
// connection is accepted only if the key proven in the TLS handshake equals
// the pinned key. Certificate chains, names and validity periods are
// deliberately ignored (InsecureSkipVerify plus our own VerifyConnection):
// for a closed, statically configured membership, the pinned key is the
// identity, and TLS 1.3's CertificateVerify already proves possession of the
// matching private key.
//
// After the handshake the dialer sends a hello frame naming its role
// (replica or client) and, for replicas, its id. The acceptor checks that the
// claimed id is pinned to the certificate key before it acknowledges the
// hello, so a replica can never speak for another one. Clients may present
// any ed25519 key; the key is their identity and is handed to the client
// handler. Request signatures are verified by higher layers.
//
// # Connection topology
//
// Exactly one TCP connection carries traffic between any pair of replicas,
// in both directions. To avoid two replicas dialing each other at the same
// time and ending up with duplicate connections, the replica with the lower
// id always dials the replica with the higher id; the acceptor rejects a
// replica hello from a higher id. If a new authenticated connection from a
// peer arrives while an old one is still open (for example the peer
// restarted and the old socket is half open), the newer connection wins and
// the old one is closed. The dialer reconnects after a drop with
// exponential backoff and jitter.
//
// # Memory bounds and backpressure
//
// Sending never blocks: each peer has a send queue bounded by frame count
// and bytes, and Send returns ErrQueueFull when it is full, so a slow or
// malicious peer cannot grow our memory or stall traffic to other peers.
// One writer goroutine per connection drains its queue, coalescing queued
// frames into as few TCP writes as possible. On the receive side, frames
// are length-prefixed and capped at MaxFrame; a larger length header closes
// the connection, and the reader allocates memory only as payload bytes
// actually arrive.
//
// Delivery is at-most-once and ordered per connection: frames queued but
// not yet written when a connection drops are lost. Consensus protocols
// built on top are expected to retransmit.
package transport
