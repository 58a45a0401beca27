package httpapi

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/braid-bft/braid/app/mux"
	"github.com/braid-bft/braid/ledger"
	"github.com/braid-bft/braid/msg"
)

// The API's JSON documents. They are the one encoding of a replica's
// status and blocks: the HTTP routes and `braid ledger show --json` write
// them with Encode, `braid status` and `braid ledger verify --http` read
// them back. Digests are lowercase hex, opaque bytes (operations,
// signatures) standard base64.

// Error is the body of every error answer.
type Error struct {
	Error string `json:"error"`
}

// Status is GET /v1/status: the replica's view of every instance.
type Status struct {
	ID     int    `json:"id"`
	N      int    `json:"n"`
	M      int    `json:"m"`
	Policy string `json:"policy"`
	// Round is the last executed round, Height the ledger's height (equal
	// for now: one block per round), Head the last block's hash.
	Round  uint64 `json:"round"`
	Height uint64 `json:"height"`
	Head   string `json:"head"`
	// StableCheckpoint is the last round certified by a quorum;
	// CheckpointLag is Round − StableCheckpoint.
	StableCheckpoint uint64 `json:"stable_checkpoint"`
	CheckpointLag    uint64 `json:"checkpoint_lag"`
	Transferring     bool   `json:"state_transfer"`
	// Failed is set once the replica stopped itself (fail-stop).
	Failed string `json:"failed,omitempty"`
	// FailedReplicas are those the failure rule (Figure 4) holds failed.
	FailedReplicas   []int            `json:"failed_replicas"`
	Instances        []InstanceStatus `json:"instances"`
	Peers            []PeerStatus     `json:"peers"`
	ClientsConnected int64            `json:"clients_connected"`
	// ClientLatency is the braid_client_latency_seconds histogram at the
	// same moment, so a reader (the dashboard) draws latency without
	// parsing /metrics; absent when the API records no histograms.
	ClientLatency *Histogram `json:"client_latency,omitempty"`
	// Byzantine is present when the replica runs a test-only Byzantine
	// behaviour (`braid replica --byzantine`), ByzantineTampered then the
	// frames it has tampered with.
	Byzantine         string `json:"byzantine,omitempty"`
	ByzantineTampered uint64 `json:"byzantine_tampered,omitempty"`
}

// Histogram is a Prometheus histogram as JSON: Count observations summing
// to Sum, and Buckets' cumulative counts by upper bound, ascending (the
// +Inf bucket is Count). Counters: a reader takes the deltas of two
// readings for the observations between them.
type Histogram struct {
	Count   uint64   `json:"count"`
	Sum     float64  `json:"sum"`
	Buckets []Bucket `json:"buckets"`
}

// Bucket is one cumulative histogram bucket: Count observations ≤ LE.
type Bucket struct {
	LE    float64 `json:"le"`
	Count uint64  `json:"count"`
}

// InstanceStatus is one PBFT instance in Status.
type InstanceStatus struct {
	Instance int    `json:"instance"`
	View     uint64 `json:"view"`
	// ViewChanging: this replica suspects the primary and is changing
	// view; ViewChangeReason says why.
	ViewChanging     bool   `json:"view_changing"`
	ViewChangeReason string `json:"view_change_reason,omitempty"`
	// Primary is the agreed primary (shell.InstanceStatus.Primary); -1
	// stands for none.
	Primary          int    `json:"primary"`
	PrimaryFailed    bool   `json:"primary_failed"`
	LastDecided      uint64 `json:"last_decided"`
	LowWatermark     uint64 `json:"low_watermark"`
	Decided          uint64 `json:"decided"`
	ExecutedRequests uint64 `json:"executed_requests"`
	ViewChanges      uint64 `json:"view_changes"`
	Failures         uint64 `json:"failures"`
	ResumeAt         uint64 `json:"resume_at"`
	Skipping         bool   `json:"skipping"`
}

// PeerStatus is one peer's queues in Status.
type PeerStatus struct {
	ID            int   `json:"id"`
	EgressFrames  int   `json:"egress_frames"`
	EgressBytes   int   `json:"egress_bytes"`
	IngressFrames int64 `json:"ingress_frames"`
}

// NewStatus is the status document of a snapshot.
func NewStatus(s *Snapshot) Status {
	sh := &s.Shell
	st := Status{
		ID: int(sh.ID), N: sh.N, M: sh.M, Policy: sh.Policy, Round: sh.Round, Height: sh.Round, Head: hexDigest(sh.Head),
		StableCheckpoint: sh.StableCheckpoint, CheckpointLag: sh.Round - min(sh.Round, sh.StableCheckpoint),
		Transferring: sh.Transferring, Failed: sh.Failed, FailedReplicas: []int{}, ClientsConnected: s.Clients.ClientsConnected,
		Instances: []InstanceStatus{}, Peers: []PeerStatus{},
		Byzantine: s.Byzantine, ByzantineTampered: s.Tampered,
	}
	for _, r := range sh.FailedReplicas {
		st.FailedReplicas = append(st.FailedReplicas, int(r))
	}
	for _, in := range sh.Instances {
		st.Instances = append(st.Instances, InstanceStatus{
			Instance: in.Instance, View: in.View, ViewChanging: in.Changing, ViewChangeReason: in.Reason,
			Primary: replicaNumber(in.Primary), PrimaryFailed: in.PrimaryFailed,
			LastDecided: in.LastDecided, LowWatermark: in.LowWatermark, Decided: in.Counters.Decided,
			ExecutedRequests: in.Executed, ViewChanges: in.Counters.ViewChanges,
			Failures: in.Failures, ResumeAt: in.ResumeAt, Skipping: in.Skipping,
		})
	}
	for _, q := range s.Egress {
		p := PeerStatus{ID: q.Peer, EgressFrames: q.Frames, EgressBytes: q.Bytes}
		if q.Peer < len(s.Ingress) {
			p.IngressFrames = s.Ingress[q.Peer]
		}
		st.Peers = append(st.Peers, p)
	}
	return st
}

// replicaNumber is a replica id as JSON has it: -1 for none.
func replicaNumber(r msg.ReplicaID) int {
	if r == msg.NoReplica {
		return -1
	}
	return int(r)
}

// Block is GET /v1/blocks/{height}: a block, its ordered requests and the
// certificate stored with it (every checkpoint interval's last block has
// one). It holds every byte of the block, so Ledger rebuilds it exactly and
// a verifier needs nothing else.
type Block struct {
	Height        uint64       `json:"height"`
	Round         uint64       `json:"round"`
	Hash          string       `json:"hash"`
	Prev          string       `json:"prev"`
	ResultsDigest string       `json:"results_digest"`
	StateDigest   string       `json:"state_digest"`
	Requests      []Request    `json:"requests"`
	Certificate   *Certificate `json:"certificate"`
}

// Request is one executed request, in execution order.
type Request struct {
	Client   uint64 `json:"client"`
	Number   uint64 `json:"number"`
	Instance uint32 `json:"instance"` // the instance that ordered it
	Outcome  string `json:"outcome"`  // executed, moved or not-moved (instance changes)
	// Summary names the operation ("kv put"); Op is its bytes.
	Summary string `json:"summary"`
	Op      []byte `json:"op"`
	Sig     []byte `json:"sig"`
}

// Certificate is a stable checkpoint: a quorum of signed checkpoints.
type Certificate struct {
	Round       uint64       `json:"round"`
	BlockHash   string       `json:"block_hash"`
	StateDigest string       `json:"state_digest"`
	Signatures  []Checkpoint `json:"signatures"`
}

// Checkpoint is one replica's signed checkpoint in a Certificate.
type Checkpoint struct {
	From     int    `json:"from"`
	Instance uint32 `json:"instance"`
	Seq      uint64 `json:"seq"`
	State    string `json:"state"`
	Sig      []byte `json:"sig"`
}

// Blocks is GET /v1/blocks?from=A&to=B: blocks From to To (To may stop
// short of what was asked when the answer reached MaxRangeBytes, or at
// the ledger's height) and the ledger's Height when they were read.
type Blocks struct {
	From   uint64  `json:"from"`
	To     uint64  `json:"to"`
	Height uint64  `json:"height"`
	Blocks []Block `json:"blocks"`
}

// NewBlock is the document of block b and its certificate c (nil if none).
func NewBlock(b *ledger.Block, c *ledger.Certificate) Block {
	out := Block{
		Height: b.Height, Round: b.Round, Hash: hexDigest(b.Hash()), Prev: hexDigest(b.Prev),
		ResultsDigest: hexDigest(b.ResultsDigest), StateDigest: hexDigest(b.StateDigest), Requests: []Request{},
	}
	for i := range b.Requests {
		r, o := &b.Requests[i], b.Ordering(i)
		out.Requests = append(out.Requests, Request{
			Client: uint64(r.Client), Number: r.Number, Instance: o.Instance, Outcome: o.Outcome.String(),
			Summary: Summary(r.Op), Op: r.Op, Sig: r.Sig,
		})
	}
	if c != nil {
		cert := &Certificate{Round: c.Round, BlockHash: hexDigest(c.BlockHash), StateDigest: hexDigest(c.StateDigest), Signatures: []Checkpoint{}}
		for _, cp := range c.Signatures {
			cert.Signatures = append(cert.Signatures, Checkpoint{From: int(cp.From), Instance: cp.Instance, Seq: cp.Seq, State: hexDigest(cp.State), Sig: cp.Sig})
		}
		out.Certificate = cert
	}
	return out
}

// Summary describes an operation for a listing: the application's name
// for it, what an instance change carries, or its first byte.
func Summary(op []byte) string {
	if target, inner, ok := msg.ParseInstanceChange(op); ok {
		if len(inner) == 0 {
			return fmt.Sprintf("instance change to %d", target)
		}
		return fmt.Sprintf("instance change to %d carrying %s", target, Summary(inner))
	}
	if name := mux.OpName(op); name != "" {
		return name
	}
	if len(op) == 0 {
		return "empty"
	}
	return fmt.Sprintf("unknown op 0x%02x", op[0])
}

// Ledger rebuilds the block and its certificate from the document. It
// checks the encoding of every field, not the ledger's rules (ledger.Verify
// does that): a document that lies about its hash is caught there, since
// the hash is recomputed.
func (b *Block) Ledger() (*ledger.Block, *ledger.Certificate, error) {
	lb := &ledger.Block{Height: b.Height, Round: b.Round}
	var err error
	for _, d := range []struct {
		name string
		s    string
		to   *msg.Digest
	}{{"prev", b.Prev, &lb.Prev}, {"results_digest", b.ResultsDigest, &lb.ResultsDigest}, {"state_digest", b.StateDigest, &lb.StateDigest}} {
		if *d.to, err = parseDigest(d.s); err != nil {
			return nil, nil, fmt.Errorf("block %d: %s: %w", b.Height, d.name, err)
		}
	}
	if len(b.Requests) > ledger.MaxBlockRequests {
		return nil, nil, fmt.Errorf("block %d: %d requests, at most %d", b.Height, len(b.Requests), ledger.MaxBlockRequests)
	}
	plain := true
	for _, r := range b.Requests {
		out, ok := outcomes[r.Outcome]
		if !ok {
			return nil, nil, fmt.Errorf("block %d: request %d of client %d: unknown outcome %q", b.Height, r.Number, r.Client, r.Outcome)
		}
		lb.Requests = append(lb.Requests, msg.Request{Client: msg.ClientID(r.Client), Number: r.Number, Op: r.Op, Sig: r.Sig})
		o := ledger.Ordering{Instance: r.Instance, Outcome: out}
		lb.Orderings = append(lb.Orderings, o)
		plain = plain && o == (ledger.Ordering{})
	}
	if plain {
		lb.Orderings = nil // as DecodeBlock has it: the encoding is the same either way
	}
	if b.Certificate == nil {
		return lb, nil, nil
	}
	c := b.Certificate
	lc := &ledger.Certificate{Round: c.Round}
	if lc.BlockHash, err = parseDigest(c.BlockHash); err != nil {
		return nil, nil, fmt.Errorf("certificate %d: block_hash: %w", c.Round, err)
	}
	if lc.StateDigest, err = parseDigest(c.StateDigest); err != nil {
		return nil, nil, fmt.Errorf("certificate %d: state_digest: %w", c.Round, err)
	}
	if len(c.Signatures) > msg.MaxQuorumMsgs {
		return nil, nil, fmt.Errorf("certificate %d: %d signatures, at most %d", c.Round, len(c.Signatures), msg.MaxQuorumMsgs)
	}
	for i, s := range c.Signatures {
		state, err := parseDigest(s.State)
		if err != nil {
			return nil, nil, fmt.Errorf("certificate %d: signature %d: state: %w", c.Round, i, err)
		}
		if s.From < 0 || s.From >= msg.MaxQuorumMsgs {
			return nil, nil, fmt.Errorf("certificate %d: signature %d: replica %d out of range", c.Round, i, s.From)
		}
		lc.Signatures = append(lc.Signatures, msg.Checkpoint{Instance: s.Instance, Seq: s.Seq, State: state, From: msg.ReplicaID(s.From), Sig: s.Sig})
	}
	return lb, lc, nil
}

var outcomes = map[string]msg.Outcome{
	msg.Executed.String(): msg.Executed, msg.Moved.String(): msg.Moved, msg.NotMoved.String(): msg.NotMoved,
}

func hexDigest(d msg.Digest) string { return hex.EncodeToString(d[:]) }

func parseDigest(s string) (msg.Digest, error) {
	var d msg.Digest
	if len(s) != 2*len(d) {
		return d, fmt.Errorf("%q is not a digest (%d hex digits)", truncate(s, 80), 2*len(d))
	}
	if _, err := hex.Decode(d[:], []byte(s)); err != nil {
		return d, fmt.Errorf("%q is not a digest: %v", truncate(s, 80), err)
	}
	return d, nil
}

// ReadBlock reads block h and its certificate from src as a document.
func ReadBlock(src ledger.Source, h uint64) (Block, error) {
	b, err := src.Block(h)
	if err != nil {
		return Block{}, err
	}
	if b == nil {
		return Block{}, fmt.Errorf("block %d missing", h)
	}
	c, err := src.Certificate(h)
	if err != nil {
		return Block{}, fmt.Errorf("certificate %d: %w", h, err)
	}
	return NewBlock(b, c), nil
}

// ReadRange reads blocks from to to (both stored) from src as one
// document, stopping after the block that takes it past maxBytes of block
// encodings (one block at least, so a range always advances).
func ReadRange(src ledger.Source, from, to, height uint64, maxBytes int) (Blocks, error) {
	out := Blocks{From: from, To: from - 1, Height: height, Blocks: []Block{}}
	size := 0
	for h := from; h <= to && size < maxBytes; h++ {
		b, err := src.Block(h)
		if err != nil {
			return Blocks{}, err
		}
		if b == nil {
			return Blocks{}, fmt.Errorf("block %d missing", h)
		}
		c, err := src.Certificate(h)
		if err != nil {
			return Blocks{}, fmt.Errorf("certificate %d: %w", h, err)
		}
		size += len(b.Encode())
		out.Blocks = append(out.Blocks, NewBlock(b, c))
		out.To = h
	}
	return out, nil
}

// Encode writes v as the API writes it: indented JSON and a newline. One
// encoder for the HTTP answers and the command line, so `braid ledger show
// --json` and GET /v1/blocks/{height} give the same bytes.
func Encode(w io.Writer, v any) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(v)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = Encode(w, v)
}

func writeError(w http.ResponseWriter, code int, message string) {
	writeJSON(w, code, Error{Error: message})
}
