// Package app defines the interface between Braid's replication layer and the
// deterministic state machines ("applications") it replicates, plus the pieces
// those applications share: the result encoding and an incremental multiset
// hash (LtHash) for state digests.
//
// Every non-faulty replica executes the same ordered requests against its own
// Application instance, so an Application must be a pure function of
// (state, caller, op): no clocks, no randomness, no map iteration order, no
// dependence on anything outside the op and the state. A divergence here is
// indistinguishable from a Byzantine replica.
package app

// MaxCallerLen bounds the caller identity an application will store or use to
// namespace state. Braid callers are ed25519 public keys (32 bytes); the
// bound leaves headroom for other key types while keeping a single op from
// growing state by an attacker-chosen amount. It must stay ≤ 255 because
// applications length-prefix callers with one byte.
const MaxCallerLen = 64

// Caller identifies who sent a request: the client's ed25519 public key (32
// bytes), already authenticated by the replication layer. It is opaque to
// applications: they only compare it for equality, store it, or use it as a
// namespace prefix.
type Caller []byte

// CallerID is the caller identity replicas use today: the client's id,
// 8 bytes big-endian. One function, so the convention cannot drift between
// execution, restart replay and state transfer.
func CallerID(id uint64) Caller {
	return Caller{byte(id >> 56), byte(id >> 48), byte(id >> 40), byte(id >> 32), byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}
}

// ValidCaller reports whether c is usable as an identity (non-empty and at
// most MaxCallerLen bytes). An empty caller would collapse every anonymous
// request into one shared identity, so applications refuse it wherever
// identity matters.
func ValidCaller(c Caller) bool { return len(c) > 0 && len(c) <= MaxCallerLen }

// Application is a deterministic replicated state machine.
//
// Implementations in this module are safe for concurrent use: reads
// (ReadOnly ops, Digest, Snapshot) may run in parallel with each other, and
// writes are serialized. The replication layer is still responsible for
// feeding state-changing ops in the agreed order.
type Application interface {
	// Execute applies op deterministically. It never panics on malformed op;
	// malformed or rejected ops return a result that encodes the failure and
	// its reason (a normal, replicated result; see OK and Fail), and leave
	// state unchanged.
	Execute(caller Caller, op []byte) []byte
	// ReadOnly reports whether op cannot change state (so it may be served
	// without ordering later). Implementations answer conservatively: false
	// unless op is a well-formed read.
	ReadOnly(op []byte) bool
	// Digest is the state digest, maintained incrementally (never by
	// rehashing the whole state). Equal states have equal digests regardless
	// of the history that produced them.
	Digest() [32]byte
	// Snapshot serializes the full state deterministically (same state ⇒
	// same bytes).
	Snapshot() ([]byte, error)
	// Restore replaces the state with a snapshot; on error state is
	// unchanged. It validates hostile input (bounded sizes) and never
	// panics. A snapshot that Restore accepts is canonical: Snapshot()
	// immediately afterwards returns the same bytes.
	Restore(snapshot []byte) error
}
