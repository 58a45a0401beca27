// Package wire is Braid's one bounded binary codec: the messages (msg), the
// ledger's blocks and certificates (ledger), the paradigm state (rcc) and
// the applications' operations and snapshots (app/...) all encode with its
// Append functions and decode with its Reader.
//
// Integers are fixed-width big-endian and every variable-length field is a
// 4-byte length followed by that many bytes, so each value has exactly one
// encoding; with Done rejecting trailing bytes, a decoder accepts exactly one
// byte string per value, which is what makes hashes over encodings (blocks,
// snapshots, signed payloads) well defined.
//
// Input is hostile (network frames, disk pages): every length is checked
// against its limit and against the bytes left before anything is sliced or
// allocated, and the first failure sticks — later reads return zero values —
// so a decoder reads straight through and checks once.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

var (
	// ErrMalformed is wrapped by every decoding error of a Reader that was
	// not given a kind of its own (Reader.Kind).
	ErrMalformed = errors.New("malformed input")
	// ErrTruncated is wrapped, in addition, when the input ends inside a
	// field.
	ErrTruncated = errors.New("truncated input")
)

// AppendU8 appends v.
func AppendU8(dst []byte, v uint8) []byte { return append(dst, v) }

// AppendU32 appends v big-endian.
func AppendU32(dst []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(dst, v) }

// AppendU64 appends v big-endian.
func AppendU64(dst []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(dst, v) }

// AppendBool appends 1 for true, 0 for false.
func AppendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, 1)
	}
	return append(dst, 0)
}

// AppendBytes appends a length-prefixed byte string. Slices longer than
// 2^32-1 bytes cannot be represented; they are encoded with a length that
// will not match the data, so the decoder rejects the value rather than
// misreading it.
func AppendBytes(dst, b []byte) []byte {
	dst = AppendU32(dst, uint32(len(b)))
	return append(dst, b...)
}

// BytesLen is the encoded size of AppendBytes(nil, b).
func BytesLen(b []byte) int { return 4 + len(b) }

// Reader decodes fields from a buffer with bounds checks. Byte slices it
// returns alias the buffer except where a method says it copies.
type Reader struct {
	b    []byte
	off  int
	err  error
	kind error  // wrapped by every error (ErrMalformed unless set)
	what string // what is being decoded, for error messages
}

// NewReader returns a Reader over b.
func NewReader(b []byte) *Reader { return &Reader{b: b, kind: ErrMalformed} }

// Kind makes every error of r wrap kind and name what r decodes (both
// optional: nil and "" keep the defaults). It returns r.
func (r *Reader) Kind(kind error, what string) *Reader {
	if kind != nil {
		r.kind = kind
	}
	r.what = what
	return r
}

// Err returns the first decoding error.
func (r *Reader) Err() error { return r.err }

// Off is how many bytes have been read.
func (r *Reader) Off() int { return r.off }

// Remaining is the number of unread bytes (0 after an error).
func (r *Reader) Remaining() int {
	if r.err != nil {
		return 0
	}
	return len(r.b) - r.off
}

// Fail records an error at the current offset (the first one sticks).
func (r *Reader) Fail(format string, args ...any) { r.failWrap(nil, format, args...) }

func (r *Reader) failWrap(also error, format string, args ...any) {
	if r.err != nil {
		return
	}
	what := ""
	if r.what != "" {
		what = " " + r.what
	}
	if also != nil {
		r.err = fmt.Errorf("%w%s at byte %d: %w: %s", r.kind, what, r.off, also, fmt.Sprintf(format, args...))
	} else {
		r.err = fmt.Errorf("%w%s at byte %d: %s", r.kind, what, r.off, fmt.Sprintf(format, args...))
	}
}

// Take returns the next n bytes (aliasing the buffer), or nil after an
// error or if fewer remain.
func (r *Reader) Take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b)-r.off < n {
		r.failWrap(ErrTruncated, "need %d bytes, have %d", n, len(r.b)-r.off)
		return nil
	}
	p := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return p
}

// U8 reads one byte.
func (r *Reader) U8() uint8 {
	if p := r.Take(1); p != nil {
		return p[0]
	}
	return 0
}

// U32 reads a big-endian uint32.
func (r *Reader) U32() uint32 {
	if p := r.Take(4); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

// U64 reads a big-endian uint64.
func (r *Reader) U64() uint64 {
	if p := r.Take(8); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

// Digest reads 32 bytes.
func (r *Reader) Digest() (x [32]byte) {
	copy(x[:], r.Take(32))
	return x
}

// Bool reads a byte that must be 0 or 1.
func (r *Reader) Bool() bool {
	switch r.U8() {
	case 0:
		return false
	case 1:
		return true
	}
	r.Fail("boolean out of range")
	return false
}

// Count reads an element count and checks it against limit and against the
// bytes left (each element needs at least minSize bytes), before anything
// is allocated for it.
func (r *Reader) Count(limit, minSize int, what string) int {
	n := r.U32()
	if r.err != nil {
		return 0
	}
	if uint64(n) > uint64(limit) {
		r.Fail("%s count %d exceeds limit %d", what, n, limit)
		return 0
	}
	if uint64(n)*uint64(minSize) > uint64(len(r.b)-r.off) {
		r.failWrap(ErrTruncated, "%s count %d exceeds remaining bytes", what, n)
		return 0
	}
	return int(n)
}

// Bytes reads a length-prefixed byte string of at most limit bytes and
// returns a copy (nil when empty), so the value outlives the buffer.
func (r *Reader) Bytes(limit int, what string) []byte {
	p := r.Take(r.Count(limit, 1, what))
	if len(p) == 0 {
		return nil
	}
	return append([]byte(nil), p...)
}

// View reads a length-prefixed byte string of at most limit bytes without
// copying: the result aliases the buffer (empty, not nil, for a zero
// length; nil after an error).
func (r *Reader) View(limit int, what string) []byte {
	n := r.Count(limit, 1, what)
	if r.err != nil {
		return nil
	}
	return r.Take(n)
}

// Done reports the first error, or an error if input remains: trailing
// bytes would mean two different byte strings decode to the same value.
func (r *Reader) Done() error {
	if r.err == nil && r.off != len(r.b) {
		r.Fail("%d trailing bytes", len(r.b)-r.off)
	}
	return r.err
}
