package msg

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrMalformed wraps every decoding failure.
var ErrMalformed = errors.New("malformed message")

// Marshal encodes m canonically: equal messages give equal bytes.
func Marshal(m Message) []byte {
	var e encoder
	e.message(m, true)
	return e.b
}

// SignedBytes is what the sender of m signs: its canonical encoding with an
// empty signature, prefixed by a domain tag so no other structure signed with
// the same key can be mistaken for it.
func SignedBytes(m Message) []byte {
	var e encoder
	e.b = append(e.b, "braid/msg/v1"...)
	e.message(m, false)
	return e.b
}

// Unmarshal decodes one message and rejects trailing bytes.
func Unmarshal(b []byte) (Message, error) {
	if len(b) > MaxMessageBytes {
		return nil, fmt.Errorf("%w: %d bytes exceeds limit %d", ErrMalformed, len(b), MaxMessageBytes)
	}
	d := decoder{b: b}
	m := d.message()
	if d.err == nil && d.off != len(d.b) {
		d.fail("%d trailing bytes", len(d.b)-d.off)
	}
	if d.err != nil {
		return nil, d.err
	}
	return m, nil
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

func (e *encoder) u8(v uint8)      { e.b = append(e.b, v) }
func (e *encoder) u32(v uint32)    { e.b = binary.BigEndian.AppendUint32(e.b, v) }
func (e *encoder) u64(v uint64)    { e.b = binary.BigEndian.AppendUint64(e.b, v) }
func (e *encoder) digest(d Digest) { e.b = append(e.b, d[:]...) }
func (e *encoder) bytes(p []byte)  { e.u32(uint32(len(p))); e.b = append(e.b, p...) }
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
		e.u32(uint32(len(m.ViewChanges)))
		for i := range m.ViewChanges {
			e.viewChange(&m.ViewChanges[i], true)
		}
		e.u32(uint32(len(m.PrePrepares)))
		for i := range m.PrePrepares {
			e.prePrepare(&m.PrePrepares[i], true)
		}
		e.u32(uint32(m.From))
		e.sig(m.Sig, withSig)
	case *Fetch:
		e.u64(m.From)
		e.u64(m.To)
		e.u32(uint32(m.Sender))
	case *Blocks:
		e.u64(m.From)
		e.u32(uint32(len(m.Blocks)))
		for _, b := range m.Blocks {
			e.bytes(b)
		}
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
	e.u32(uint32(len(m.Batch.Requests)))
	for i := range m.Batch.Requests {
		e.request(&m.Batch.Requests[i])
	}
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
	e.u32(uint32(len(m.CheckpointProof)))
	for i := range m.CheckpointProof {
		e.checkpoint(&m.CheckpointProof[i], true)
	}
	e.u32(uint32(len(m.Prepared)))
	for i := range m.Prepared {
		p := &m.Prepared[i]
		e.prePrepare(&p.PrePrepare, true)
		e.u32(uint32(len(p.Prepares)))
		for j := range p.Prepares {
			q := &p.Prepares[j]
			e.vote(q.Instance, q.View, q.Seq, q.Digest, q.From)
			e.sig(q.Sig, true)
		}
	}
	e.u32(uint32(m.From))
	e.sig(m.Sig, withSig)
}

// decoder reads with bounds checks; the first error sticks and every later
// read returns zero values, so decoding code reads straight through.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w at byte %d: %s", ErrMalformed, d.off, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || len(d.b)-d.off < n {
		d.fail("need %d bytes, have %d", n, len(d.b)-d.off)
		return nil
	}
	p := d.b[d.off : d.off+n]
	d.off += n
	return p
}

func (d *decoder) u8() uint8 {
	p := d.take(1)
	if p == nil {
		return 0
	}
	return p[0]
}

func (d *decoder) u32() uint32 {
	p := d.take(4)
	if p == nil {
		return 0
	}
	return binary.BigEndian.Uint32(p)
}

func (d *decoder) u64() uint64 {
	p := d.take(8)
	if p == nil {
		return 0
	}
	return binary.BigEndian.Uint64(p)
}

func (d *decoder) digest() (x Digest) {
	copy(x[:], d.take(32))
	return x
}

func (d *decoder) boolean() bool {
	switch d.u8() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail("boolean out of range")
	return false
}

// count reads a length and checks it against limit and against the bytes
// left (each element needs at least minSize bytes), before anything is
// allocated for it.
func (d *decoder) count(limit, minSize int, what string) int {
	n := d.u32()
	if d.err != nil {
		return 0
	}
	if uint64(n) > uint64(limit) {
		d.fail("%s count %d exceeds limit %d", what, n, limit)
		return 0
	}
	if uint64(n)*uint64(minSize) > uint64(len(d.b)-d.off) {
		d.fail("%s count %d exceeds remaining bytes", what, n)
		return 0
	}
	return int(n)
}

func (d *decoder) bytes(limit int, what string) []byte {
	n := d.count(limit, 1, what)
	p := d.take(n)
	if p == nil || n == 0 {
		return nil
	}
	return append([]byte(nil), p...)
}

func (d *decoder) request() Request {
	return Request{
		Client: ClientID(d.u64()),
		Number: d.u64(),
		Op:     d.bytes(MaxOpSize, "op"),
		Sig:    d.bytes(MaxSigSize, "request signature"),
	}
}

func (d *decoder) message() Message {
	k := Kind(d.u8())
	switch k {
	case KindRequest:
		m := &ClientRequest{Instance: d.u32()}
		m.Request = d.request()
		return m
	case KindPrePrepare:
		return d.prePrepare()
	case KindPrepare:
		m := &Prepare{Instance: d.u32(), View: d.u64(), Seq: d.u64(), Digest: d.digest(), From: ReplicaID(d.u32())}
		m.Sig = d.bytes(MaxSigSize, "signature")
		return m
	case KindCommit:
		m := &Commit{Instance: d.u32(), View: d.u64(), Seq: d.u64(), Digest: d.digest(), From: ReplicaID(d.u32())}
		m.Sig = d.bytes(MaxSigSize, "signature")
		return m
	case KindCheckpoint:
		return d.checkpoint()
	case KindViewChange:
		return d.viewChange()
	case KindNewView:
		m := &NewView{Instance: d.u32(), View: d.u64()}
		n := d.count(MaxQuorumMsgs, 4+8+8+8+4+4+4+4, "view changes")
		for i := 0; i < n && d.err == nil; i++ {
			m.ViewChanges = append(m.ViewChanges, *d.viewChange())
		}
		n = d.count(MaxProofs, 4+8+8+32+1+1+8+4+4+4, "pre-prepares")
		for i := 0; i < n && d.err == nil; i++ {
			m.PrePrepares = append(m.PrePrepares, *d.prePrepare())
		}
		m.From = ReplicaID(d.u32())
		m.Sig = d.bytes(MaxSigSize, "signature")
		return m
	case KindFetch:
		return &Fetch{From: d.u64(), To: d.u64(), Sender: ReplicaID(d.u32())}
	case KindBlocks:
		m := &Blocks{From: d.u64()}
		n := d.count(MaxFetchBlocks, 4, "blocks")
		for i := 0; i < n && d.err == nil; i++ {
			m.Blocks = append(m.Blocks, d.bytes(MaxMessageBytes, "block"))
		}
		m.Paradigm = d.bytes(MaxMessageBytes, "paradigm state")
		m.Sender = ReplicaID(d.u32())
		return m
	case KindReply:
		m := &Reply{Client: ClientID(d.u64()), Number: d.u64(), View: d.u64(), Primary: ReplicaID(d.u32())}
		if m.Outcome = Outcome(d.u8()); m.Outcome > maxOutcome {
			d.fail("reply outcome %d out of range", m.Outcome)
		}
		m.Instance = d.u32()
		m.Result = d.bytes(MaxOpSize, "result")
		m.From = ReplicaID(d.u32())
		return m
	case KindStatus:
		return &Status{Instance: d.u32(), View: d.u64(), StableSeq: d.u64(), NextSeq: d.u64(), From: ReplicaID(d.u32())}
	}
	d.fail("unknown kind %d", k)
	return nil
}

func (d *decoder) prePrepare() *PrePrepare {
	m := &PrePrepare{Instance: d.u32(), View: d.u64(), Seq: d.u64(), Digest: d.digest(), Null: d.boolean(), Failure: d.boolean(), FailureView: d.u64()}
	n := d.count(MaxBatchSize, 8+8+4+4, "requests")
	if n > 0 {
		m.Batch.Requests = make([]Request, 0, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		m.Batch.Requests = append(m.Batch.Requests, d.request())
	}
	m.From = ReplicaID(d.u32())
	m.Sig = d.bytes(MaxSigSize, "signature")
	return m
}

func (d *decoder) checkpoint() *Checkpoint {
	m := &Checkpoint{Instance: d.u32(), Seq: d.u64(), State: d.digest(), From: ReplicaID(d.u32())}
	m.Sig = d.bytes(MaxSigSize, "signature")
	return m
}

func (d *decoder) viewChange() *ViewChange {
	m := &ViewChange{Instance: d.u32(), NewView: d.u64(), StableSeq: d.u64(), Resume: d.u64()}
	n := d.count(MaxQuorumMsgs, 4+8+32+4+4, "checkpoint proof")
	for i := 0; i < n && d.err == nil; i++ {
		m.CheckpointProof = append(m.CheckpointProof, *d.checkpoint())
	}
	n = d.count(MaxProofs, 4+8+8+32+1+1+8+4+4+4+4, "prepared proofs")
	for i := 0; i < n && d.err == nil; i++ {
		var p PreparedProof
		p.PrePrepare = *d.prePrepare()
		k := d.count(MaxQuorumMsgs, 4+8+8+32+4+4, "prepares")
		for j := 0; j < k && d.err == nil; j++ {
			q := Prepare{Instance: d.u32(), View: d.u64(), Seq: d.u64(), Digest: d.digest(), From: ReplicaID(d.u32())}
			q.Sig = d.bytes(MaxSigSize, "signature")
			p.Prepares = append(p.Prepares, q)
		}
		m.Prepared = append(m.Prepared, p)
	}
	m.From = ReplicaID(d.u32())
	m.Sig = d.bytes(MaxSigSize, "signature")
	return m
}
