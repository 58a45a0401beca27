package msg

import (
	"errors"
	"fmt"
	"github.com/braid-bft/braid/internal/wire"
)

// ErrMalformed wraps every decoding failure.
var ErrMalformed = errors.New("malformed message")

// Marshal encodes m canonically: equal messages give equal bytes.
func Marshal(m Message) []byte {
	e := encoder{b: make([]byte, 0, sizeHint(m))}
	e.message(m, true)
	return e.b
}

// SignedBytes is what the sender of m signs: its canonical encoding with an
// empty signature, prefixed by a domain tag so no other structure signed with
// the same key can be mistaken for it.
func SignedBytes(m Message) []byte {
	e := encoder{b: make([]byte, 0, 16+sizeHint(m))}
	e.b = append(e.b, "braid/msg/v1"...)
	e.message(m, false)
	return e.b
}

// Unmarshal decodes one message and rejects trailing bytes.
func Unmarshal(b []byte) (Message, error) {
	if len(b) > MaxMessageBytes {
		return nil, fmt.Errorf("%w: %d bytes exceeds limit %d", ErrMalformed, len(b), MaxMessageBytes)
	}
	d := decoder{wire.NewReader(b).Kind(ErrMalformed, "")}
	m := d.message()
	if err := d.Done(); err != nil {
		return nil, err
	}
	return m, nil
}

// UnmarshalAs decodes one message that must be of kind T (a *Reply for a
// client, a *ClientRequest for a replica's client port); anything else, or
// bytes that do not decode, is false.
func UnmarshalAs[T Message](b []byte) (T, bool) {
	m, err := Unmarshal(b)
	if err != nil {
		var zero T
		return zero, false
	}
	t, ok := m.(T)
	return t, ok
}

// SetSig attaches a signature to a signable message. Status and client
// requests carry none (Status relies on link authentication).
func SetSig(m Message, sig []byte) {
	switch m := m.(type) {
	case *PrePrepare:
		m.Sig = sig
	case *Prepare:
		m.Sig = sig
	case *Commit:
		m.Sig = sig
	case *Checkpoint:
		m.Sig = sig
	case *ViewChange:
		m.Sig = sig
	case *NewView:
		m.Sig = sig
	}
}

// Sig returns the signature attached to m, if any.
func Sig(m Message) []byte {
	switch m := m.(type) {
	case *PrePrepare:
		return m.Sig
	case *Prepare:
		return m.Sig
	case *Commit:
		return m.Sig
	case *Checkpoint:
		return m.Sig
	case *ViewChange:
		return m.Sig
	case *NewView:
		return m.Sig
	}
	return nil
}

type encoder struct{ b []byte }

// sizeHint is about the encoded size of m where it is large enough that
// growing the buffer by doubling costs: a pre-prepare of a hundred
// requests grew its buffer eight times, 10% of a simulated n = 32 run's
// CPU (pprof). Small messages start from Go's own growth.
func sizeHint(m Message) int {
	pp, ok := m.(*PrePrepare)
	if !ok {
		return 64
	}
	k := 128 + len(pp.Sig)
	for i := range pp.Batch.Requests {
		r := &pp.Batch.Requests[i]
		k += 24 + len(r.Op) + len(r.Sig)
	}
	return k
}

// The shortest encodings of the elements a count is checked against,
// derived from the encoder (a zero value encodes shortest: empty byte
// strings and lists), so no decoder hand-sums field widths.
var (
	minRequest    = encodedLen(func(e *encoder) { e.request(&Request{}) })
	minPrePrepare = encodedLen(func(e *encoder) { e.prePrepare(&PrePrepare{}, true) })
	minCheckpoint = encodedLen(func(e *encoder) { e.checkpoint(&Checkpoint{}, true) })
	minViewChange = encodedLen(func(e *encoder) { e.viewChange(&ViewChange{}, true) })
	minPrepare    = encodedLen(func(e *encoder) { e.vote(0, 0, 0, Digest{}, 0); e.sig(nil, true) })
	// A prepared proof is its pre-prepare and its count of prepares.
	minPreparedProof = minPrePrepare + 4
	// A block in a Blocks message is a length-prefixed byte string.
	minBlock = wire.BytesLen(nil)
)

func encodedLen(encode func(e *encoder)) int {
	var e encoder
	encode(&e)
	return len(e.b)
}

func (e *encoder) u8(v uint8)      { e.b = wire.AppendU8(e.b, v) }
func (e *encoder) u32(v uint32)    { e.b = wire.AppendU32(e.b, v) }
func (e *encoder) u64(v uint64)    { e.b = wire.AppendU64(e.b, v) }
func (e *encoder) digest(d Digest) { e.b = append(e.b, d[:]...) }
func (e *encoder) bytes(p []byte)  { e.b = wire.AppendBytes(e.b, p) }
func (e *encoder) sig(p []byte, with bool) {
	if with {
		e.bytes(p)
	} else {
		e.u32(0)
	}
}
func (e *encoder) boolean(v bool) {
	if v {
		e.u8(1)
	} else {
		e.u8(0)
	}
}

func (e *encoder) request(r *Request) {
	e.u64(uint64(r.Client))
	e.u64(r.Number)
	e.bytes(r.Op)
	e.bytes(r.Sig)
}

func (e *encoder) message(m Message, withSig bool) {
	e.u8(uint8(m.Kind()))
	switch m := m.(type) {
	case *ClientRequest:
		e.u32(m.Instance)
		e.request(&m.Request)
	case *PrePrepare:
		e.prePrepare(m, withSig)
	case *Prepare:
		e.vote(m.Instance, m.View, m.Seq, m.Digest, m.From)
		e.sig(m.Sig, withSig)
	case *Commit:
		e.vote(m.Instance, m.View, m.Seq, m.Digest, m.From)
		e.sig(m.Sig, withSig)
	case *Checkpoint:
		e.checkpoint(m, withSig)
	case *ViewChange:
		e.viewChange(m, withSig)
	case *NewView:
		e.u32(m.Instance)
		e.u64(m.View)
		list(e, m.ViewChanges, func(vc *ViewChange) { e.viewChange(vc, true) })
		list(e, m.PrePrepares, func(pp *PrePrepare) { e.prePrepare(pp, true) })
		e.u32(uint32(m.From))
		e.sig(m.Sig, withSig)
	case *Fetch:
		e.u64(m.From)
		e.u64(m.To)
		e.u32(uint32(m.Sender))
	case *Blocks:
		e.u64(m.From)
		list(e, m.Blocks, func(b *[]byte) { e.bytes(*b) })
		e.bytes(m.Paradigm)
		e.u32(uint32(m.Sender))
	case *Reply:
		e.u64(uint64(m.Client))
		e.u64(m.Number)
		e.u64(m.View)
		e.u32(uint32(m.Primary))
		e.u8(uint8(m.Outcome))
		e.u32(m.Instance)
		e.bytes(m.Result)
		e.u32(uint32(m.From))
	case *Status:
		e.u32(m.Instance)
		e.u64(m.View)
		e.u64(m.StableSeq)
		e.u64(m.NextSeq)
		e.u64(m.Accepted)
		e.u32(uint32(m.From))
	}
}

func (e *encoder) vote(inst uint32, view, seq uint64, d Digest, from ReplicaID) {
	e.u32(inst)
	e.u64(view)
	e.u64(seq)
	e.digest(d)
	e.u32(uint32(from))
}

func (e *encoder) prePrepare(m *PrePrepare, withSig bool) {
	e.u32(m.Instance)
	e.u64(m.View)
	e.u64(m.Seq)
	e.digest(m.Digest)
	e.boolean(m.Null)
	e.boolean(m.Failure)
	e.u64(m.FailureView)
	list(e, m.Batch.Requests, e.request)
	e.u32(uint32(m.From))
	e.sig(m.Sig, withSig)
}

func (e *encoder) checkpoint(m *Checkpoint, withSig bool) {
	e.u32(m.Instance)
	e.u64(m.Seq)
	e.digest(m.State)
	e.u32(uint32(m.From))
	e.sig(m.Sig, withSig)
}

func (e *encoder) viewChange(m *ViewChange, withSig bool) {
	e.u32(m.Instance)
	e.u64(m.NewView)
	e.u64(m.StableSeq)
	e.u64(m.Resume)
	list(e, m.CheckpointProof, func(c *Checkpoint) { e.checkpoint(c, true) })
	list(e, m.Prepared, func(p *PreparedProof) {
		e.prePrepare(&p.PrePrepare, true)
		list(e, p.Prepares, func(q *Prepare) {
			e.vote(q.Instance, q.View, q.Seq, q.Digest, q.From)
			e.sig(q.Sig, true)
		})
	})
	e.u32(uint32(m.From))
	e.sig(m.Sig, withSig)
}

// list writes a count and then each item, the wire's one shape for a
// repeated field.
func list[T any](e *encoder, items []T, each func(*T)) {
	e.u32(uint32(len(items)))
	for i := range items {
		each(&items[i])
	}
}

// decoder is the bounded wire reader plus the message kinds' decoders.
type decoder struct{ *wire.Reader }

func (d *decoder) request() Request {
	return Request{
		Client: ClientID(d.U64()),
		Number: d.U64(),
		Op:     d.Bytes(MaxOpSize, "op"),
		Sig:    d.Bytes(MaxSigSize, "request signature"),
	}
}

func (d *decoder) message() Message {
	k := Kind(d.U8())
	switch k {
	case KindRequest:
		m := &ClientRequest{Instance: d.U32()}
		m.Request = d.request()
		return m
	case KindPrePrepare:
		return d.prePrepare()
	case KindPrepare:
		m := &Prepare{Instance: d.U32(), View: d.U64(), Seq: d.U64(), Digest: d.Digest(), From: ReplicaID(d.U32())}
		m.Sig = d.Bytes(MaxSigSize, "signature")
		return m
	case KindCommit:
		m := &Commit{Instance: d.U32(), View: d.U64(), Seq: d.U64(), Digest: d.Digest(), From: ReplicaID(d.U32())}
		m.Sig = d.Bytes(MaxSigSize, "signature")
		return m
	case KindCheckpoint:
		return d.checkpoint()
	case KindViewChange:
		return d.viewChange()
	case KindNewView:
		m := &NewView{Instance: d.U32(), View: d.U64()}
		n := d.Count(MaxQuorumMsgs, minViewChange, "view changes")
		for i := 0; i < n && d.Err() == nil; i++ {
			m.ViewChanges = append(m.ViewChanges, *d.viewChange())
		}
		n = d.Count(MaxProofs, minPrePrepare, "pre-prepares")
		for i := 0; i < n && d.Err() == nil; i++ {
			m.PrePrepares = append(m.PrePrepares, *d.prePrepare())
		}
		m.From = ReplicaID(d.U32())
		m.Sig = d.Bytes(MaxSigSize, "signature")
		return m
	case KindFetch:
		return &Fetch{From: d.U64(), To: d.U64(), Sender: ReplicaID(d.U32())}
	case KindBlocks:
		m := &Blocks{From: d.U64()}
		n := d.Count(MaxFetchBlocks, minBlock, "blocks")
		for i := 0; i < n && d.Err() == nil; i++ {
			m.Blocks = append(m.Blocks, d.Bytes(MaxMessageBytes, "block"))
		}
		m.Paradigm = d.Bytes(MaxMessageBytes, "paradigm state")
		m.Sender = ReplicaID(d.U32())
		return m
	case KindReply:
		m := &Reply{Client: ClientID(d.U64()), Number: d.U64(), View: d.U64(), Primary: ReplicaID(d.U32())}
		if m.Outcome = Outcome(d.U8()); m.Outcome > maxOutcome {
			d.Fail("reply outcome %d out of range", m.Outcome)
		}
		m.Instance = d.U32()
		m.Result = d.Bytes(MaxOpSize, "result")
		m.From = ReplicaID(d.U32())
		return m
	case KindStatus:
		return &Status{Instance: d.U32(), View: d.U64(), StableSeq: d.U64(), NextSeq: d.U64(), Accepted: d.U64(), From: ReplicaID(d.U32())}
	}
	d.Fail("unknown kind %d", k)
	return nil
}

func (d *decoder) prePrepare() *PrePrepare {
	m := &PrePrepare{Instance: d.U32(), View: d.U64(), Seq: d.U64(), Digest: d.Digest(), Null: d.Bool(), Failure: d.Bool(), FailureView: d.U64()}
	n := d.Count(MaxBatchSize, minRequest, "requests")
	if n > 0 {
		m.Batch.Requests = make([]Request, 0, n)
	}
	for i := 0; i < n && d.Err() == nil; i++ {
		m.Batch.Requests = append(m.Batch.Requests, d.request())
	}
	m.From = ReplicaID(d.U32())
	m.Sig = d.Bytes(MaxSigSize, "signature")
	return m
}

func (d *decoder) checkpoint() *Checkpoint {
	m := &Checkpoint{Instance: d.U32(), Seq: d.U64(), State: d.Digest(), From: ReplicaID(d.U32())}
	m.Sig = d.Bytes(MaxSigSize, "signature")
	return m
}

func (d *decoder) viewChange() *ViewChange {
	m := &ViewChange{Instance: d.U32(), NewView: d.U64(), StableSeq: d.U64(), Resume: d.U64()}
	n := d.Count(MaxQuorumMsgs, minCheckpoint, "checkpoint proof")
	for i := 0; i < n && d.Err() == nil; i++ {
		m.CheckpointProof = append(m.CheckpointProof, *d.checkpoint())
	}
	n = d.Count(MaxProofs, minPreparedProof, "prepared proofs")
	for i := 0; i < n && d.Err() == nil; i++ {
		var p PreparedProof
		p.PrePrepare = *d.prePrepare()
		k := d.Count(MaxQuorumMsgs, minPrepare, "prepares")
		for j := 0; j < k && d.Err() == nil; j++ {
			q := Prepare{Instance: d.U32(), View: d.U64(), Seq: d.U64(), Digest: d.Digest(), From: ReplicaID(d.U32())}
			q.Sig = d.Bytes(MaxSigSize, "signature")
			p.Prepares = append(p.Prepares, q)
		}
		m.Prepared = append(m.Prepared, p)
	}
	m.From = ReplicaID(d.U32())
	m.Sig = d.Bytes(MaxSigSize, "signature")
	return m
}
