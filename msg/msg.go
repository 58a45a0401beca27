// Package msg defines Braid's wire schema: identifiers, client requests,
// batches and every protocol message, with one canonical binary encoding.
//
// The encoding is hand-written rather than protobuf because signatures and
// digests are computed over encoded bytes, and protobuf does not promise a
// canonical encoding. Every decoder bounds every length before allocating,
// so hostile input can cost at most the size of the frame it arrived in.
package msg

import (
	"crypto/sha256"
	"encoding/binary"
)

// ReplicaID identifies a replica, 0 ≤ id < n.
type ReplicaID uint32

// NoReplica stands for "no replica": e.g. a view whose primary is not yet agreed.
const NoReplica ReplicaID = 1<<32 - 1

// ClientID identifies an admitted client. The cluster configuration maps it
// to the client's public key.
type ClientID uint64

// Digest is a SHA-256 digest.
type Digest [32]byte

// Limits on everything a decoder will accept. They bound memory per message;
// the transport bounds memory per connection.
const (
	MaxOpSize       = 64 << 10 // one client operation
	MaxSigSize      = 128      // one signature (ed25519 is 64)
	MaxBatchSize    = 4096     // requests in one batch
	MaxProofs       = 4096     // prepared proofs in one view change
	MaxQuorumMsgs   = 1024     // messages inside one certificate (≥ 2f+1 for n ≤ 1024)
	MaxMessageBytes = 64 << 20 // one encoded message
	MaxFetchBlocks  = 256      // blocks in one state-transfer answer
)

// Request is a client's signed operation. Number is the client's request
// counter: it increases by one per request and makes execution exactly-once.
type Request struct {
	Client ClientID
	Number uint64
	Op     []byte
	Sig    []byte
}

// SignedBytes is what the client signs: everything but the signature.
func (r *Request) SignedBytes() []byte {
	b := make([]byte, 0, 32+len(r.Op))
	b = append(b, "braid/request/v1"...)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Client))
	b = binary.BigEndian.AppendUint64(b, r.Number)
	return append(b, r.Op...)
}

// Key identifies a request for de-duplication.
func (r *Request) Key() RequestKey { return RequestKey{r.Client, r.Number} }

// RequestKey is (client, request number): the identity of a request.
type RequestKey struct {
	Client ClientID
	Number uint64
}

// Batch is the unit an instance agrees on. A nil or empty batch is a valid
// proposal ("nothing to order this round"); Null marks a no-op filled in by a
// view change for a sequence number nobody proved prepared.
type Batch struct {
	Requests []Request
}

// Digest binds the batch's full contents, signatures included, so that two
// batches with the same digest execute identically.
func (b *Batch) Digest() Digest {
	h := sha256.New()
	var hdr [8]byte
	h.Write([]byte("braid/batch/v1"))
	binary.BigEndian.PutUint64(hdr[:], uint64(len(b.Requests)))
	h.Write(hdr[:])
	var e encoder
	for i := range b.Requests {
		e.b = e.b[:0]
		e.request(&b.Requests[i])
		h.Write(e.b)
	}
	var d Digest
	h.Sum(d[:0])
	return d
}

// NullDigest is the digest of the no-op a new view fills gaps with.
var NullDigest = Digest(sha256.Sum256([]byte("braid/null/v1")))

// FailureDigest is the digest of the no-op that marks an instance's failure
// decision made by the NewView of view. It differs from NullDigest and from
// every other view's marker, so that prepares and commits, which carry only
// the digest, can never make a plain no-op and a failure marker — or two
// views' markers — count as the same decision: the view a failure belongs to
// is part of what is agreed.
func FailureDigest(view uint64) Digest {
	b := binary.BigEndian.AppendUint64([]byte("braid/failure/v1"), view)
	return Digest(sha256.Sum256(b))
}

// Kind tags a message on the wire.
type Kind uint8

const (
	KindRequest Kind = iota + 1
	KindPrePrepare
	KindPrepare
	KindCommit
	KindCheckpoint
	KindViewChange
	KindNewView
	KindStatus
	KindReply
	KindFetch
	KindBlocks
	kindEnd
)

var kindNames = [...]string{"", "request", "pre-prepare", "prepare", "commit", "checkpoint", "view-change", "new-view", "status", "reply", "fetch", "blocks"}

func (k Kind) String() string {
	if k > 0 && k < kindEnd {
		return kindNames[k]
	}
	return "unknown"
}

// Message is any protocol message.
type Message interface {
	Kind() Kind
}

// ClientRequest carries a request from a client to a replica, or from a
// backup to the primary of Instance (a relay).
type ClientRequest struct {
	Instance uint32
	Request  Request
}

// PrePrepare is the primary's proposal of Batch for (View, Seq). Null marks a
// view-change no-op (then Batch is empty and Digest is NullDigest). Failure
// marks the first no-op a NewView appends after the re-proposed range: the
// instance's agreed "failure decision" for that round, on which the paradigm
// layer acts (a new primary, or a restart penalty).
type PrePrepare struct {
	Instance uint32
	View     uint64
	Seq      uint64
	Digest   Digest
	Null     bool
	Failure  bool
	// FailureView is, on a failure marker, the view whose NewView created
	// it (a marker re-proposed by a later view keeps it).
	FailureView uint64
	Batch       Batch
	From        ReplicaID
	Sig         []byte
}

// Prepare is a backup's vote that it accepted the pre-prepare for (View, Seq, Digest).
type Prepare struct {
	Instance uint32
	View     uint64
	Seq      uint64
	Digest   Digest
	From     ReplicaID
	Sig      []byte
}

// Commit is a replica's vote that (View, Seq, Digest) is prepared. Commits are
// never forwarded inside certificates, so they need only link authentication.
type Commit struct {
	Instance uint32
	View     uint64
	Seq      uint64
	Digest   Digest
	From     ReplicaID
	Sig      []byte
}

// Checkpoint says the sender's state after Seq has digest State.
type Checkpoint struct {
	Instance uint32
	Seq      uint64
	State    Digest
	From     ReplicaID
	Sig      []byte
}

// PreparedProof proves that (PrePrepare.View, Seq, Digest) prepared: the
// primary's pre-prepare plus 2f matching prepares from distinct backups.
type PreparedProof struct {
	PrePrepare PrePrepare
	Prepares   []Prepare
}

// ViewChange asks to move to NewView, carrying the sender's stable
// checkpoint (with its 2f+1 proof) and every sequence number above it that
// the sender saw prepared.
//
// Resume is the sender's view of the first sequence number the paradigm
// layer needs from this instance again (0 if none): a hint that lets the
// new view place its failure decision where the paradigm layer will act on
// it. It is never trusted alone (see pbft's plan).
type ViewChange struct {
	Instance        uint32
	NewView         uint64
	StableSeq       uint64
	Resume          uint64
	CheckpointProof []Checkpoint
	Prepared        []PreparedProof
	From            ReplicaID
	Sig             []byte
}

// NewView starts View: 2f+1 view changes and the pre-prepares they imply.
type NewView struct {
	Instance    uint32
	View        uint64
	ViewChanges []ViewChange
	PrePrepares []PrePrepare
	From        ReplicaID
	Sig         []byte
}

// Status is a replica's "I am stuck" beacon: its view and low watermark.
// Peers answer by resending what the sender may have missed. It is sent only
// while something is outstanding, so an idle cluster stays silent.
type Status struct {
	Instance  uint32
	View      uint64
	StableSeq uint64
	NextSeq   uint64 // lowest sequence number the sender has not committed
	// Accepted: the sender holds an accepted pre-prepare of View for every
	// sequence number from NextSeq to Accepted (none if Accepted < NextSeq),
	// so an answer needs only votes there. Without it a replica that is
	// merely slow (its checks queued) is sent every pre-prepare it already
	// has, by every peer: at n = 32 that was 25 MB from one primary in
	// 70 ms (docs/benchmarks.md, session 10). A lie only shortens the
	// answers to the liar.
	Accepted uint64
	From     ReplicaID
}

// Reply is a replica's answer to a client: the result of executing the
// client's request Number. A client accepts a result once f+1 replicas sent
// matching replies, so at least one correct replica vouches for it.
// View hints at the view (of the instance that ordered the request) so the
// client can address the current primary next time.
// Primary is the replying replica's belief of the current primary of the
// client's instance (NoReplica if unknown): a hint, never trusted for safety.
// Outcome says whether the request was an instance change and whether it
// moved the client; Instance is the instance that ordered the request
// (after a granted move: the one serving the client now). Both are agreed,
// like Result, and part of what a client matches.
type Reply struct {
	Client   ClientID
	Number   uint64
	View     uint64
	Primary  ReplicaID
	Outcome  Outcome
	Instance uint32
	Result   []byte
	From     ReplicaID
}

// Fetch asks a replica for the ledger blocks From..To (inclusive) and the
// paradigm state after To: state transfer for a replica that fell behind a
// stable checkpoint. Everything returned is checked against the certified
// checkpoint digest, so the answering replica needs no trust.
type Fetch struct {
	From, To uint64
	Sender   ReplicaID
}

// Blocks answers a Fetch: encoded ledger blocks from From on (possibly fewer
// than asked, to bound the message), and, if the last one is the requested
// To, the paradigm state after it.
type Blocks struct {
	From     uint64
	Blocks   [][]byte
	Paradigm []byte
	Sender   ReplicaID
}

func (*Fetch) Kind() Kind         { return KindFetch }
func (*Blocks) Kind() Kind        { return KindBlocks }
func (*ClientRequest) Kind() Kind { return KindRequest }
func (*Reply) Kind() Kind         { return KindReply }
func (*PrePrepare) Kind() Kind    { return KindPrePrepare }
func (*Prepare) Kind() Kind       { return KindPrepare }
func (*Commit) Kind() Kind        { return KindCommit }
func (*Checkpoint) Kind() Kind    { return KindCheckpoint }
func (*ViewChange) Kind() Kind    { return KindViewChange }
func (*NewView) Kind() Kind       { return KindNewView }
func (*Status) Kind() Kind        { return KindStatus }

// sent is a message that names its sender; instanced, one that names its
// consensus instance.
type (
	sent      interface{ sender() ReplicaID }
	instanced interface{ instance() uint32 }
)

func (m *PrePrepare) sender() ReplicaID { return m.From }
func (m *Prepare) sender() ReplicaID    { return m.From }
func (m *Commit) sender() ReplicaID     { return m.From }
func (m *Checkpoint) sender() ReplicaID { return m.From }
func (m *ViewChange) sender() ReplicaID { return m.From }
func (m *NewView) sender() ReplicaID    { return m.From }
func (m *Status) sender() ReplicaID     { return m.From }
func (m *Reply) sender() ReplicaID      { return m.From }

func (m *ClientRequest) instance() uint32 { return m.Instance }
func (m *PrePrepare) instance() uint32    { return m.Instance }
func (m *Prepare) instance() uint32       { return m.Instance }
func (m *Commit) instance() uint32        { return m.Instance }
func (m *Checkpoint) instance() uint32    { return m.Instance }
func (m *ViewChange) instance() uint32    { return m.Instance }
func (m *NewView) instance() uint32       { return m.Instance }
func (m *Status) instance() uint32        { return m.Instance }

// Sender returns the replica a message claims to come from, and false for
// client requests.
func Sender(m Message) (ReplicaID, bool) {
	if s, ok := m.(sent); ok {
		return s.sender(), true
	}
	return 0, false
}

// InstanceOf returns the consensus instance a message belongs to (0 for
// messages outside any instance).
func InstanceOf(m Message) uint32 {
	if i, ok := m.(instanced); ok {
		return i.instance()
	}
	return 0
}
