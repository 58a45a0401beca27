// Package wire holds the strict binary encoding helpers shared by Braid's
// applications. Every variable-length field is a 4-byte big-endian length
// followed by that many bytes; integers are fixed-width big-endian. Fixed
// widths (rather than varints) make every value's encoding unique, so a
// decoder that also rejects trailing bytes accepts exactly one encoding per
// message — which is what makes accepted snapshots canonical.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrTruncated is returned when input ends inside a field.
var ErrTruncated = errors.New("truncated input")

// AppendU32 appends v big-endian.
func AppendU32(dst []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(dst, v) }

// AppendU64 appends v big-endian.
func AppendU64(dst []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(dst, v) }

// AppendBytes appends a length-prefixed byte string. Slices longer than
// 2^32-1 bytes cannot be represented; they are encoded with a length that
// will not match the data, so the decoder rejects the message rather than
// misreading it.
func AppendBytes(dst, b []byte) []byte {
	dst = AppendU32(dst, uint32(len(b)))
	return append(dst, b...)
}

// BytesLen is the encoded size of AppendBytes(nil, b).
func BytesLen(b []byte) int { return 4 + len(b) }

// Reader decodes fields from a buffer. The first failure is sticky: later
// calls return zero values and Err reports the first error, so decoders can
// read a whole message and check once.
type Reader struct {
	b   []byte
	err error
}

// NewReader returns a Reader over b. Returned byte slices alias b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Err returns the first decoding error.
func (r *Reader) Err() error { return r.err }

// Remaining is the number of undecoded bytes.
func (r *Reader) Remaining() int { return len(r.b) }

func (r *Reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.b = nil
}

// U8 reads one byte.
func (r *Reader) U8(what string) byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 1 {
		r.fail(fmt.Errorf("%s: %w", what, ErrTruncated))
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

// U32 reads a big-endian uint32.
func (r *Reader) U32(what string) uint32 {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 4 {
		r.fail(fmt.Errorf("%s: %w", what, ErrTruncated))
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

// U64 reads a big-endian uint64.
func (r *Reader) U64(what string) uint64 {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 8 {
		r.fail(fmt.Errorf("%s: %w", what, ErrTruncated))
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

// Bytes reads a length-prefixed byte string of at most max bytes. The length
// is checked against max and against the remaining input before anything is
// sliced, so a hostile length can neither panic nor cause allocation.
func (r *Reader) Bytes(what string, max int) []byte {
	n := r.U32(what + " length")
	if r.err != nil {
		return nil
	}
	if uint64(n) > uint64(max) {
		r.fail(fmt.Errorf("%s: length %d exceeds max %d", what, n, max))
		return nil
	}
	if uint64(n) > uint64(len(r.b)) {
		r.fail(fmt.Errorf("%s: %w", what, ErrTruncated))
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// Done reports the first error, or an error if input remains: trailing bytes
// would mean two different byte strings decode to the same message.
func (r *Reader) Done() error {
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%d trailing bytes", len(r.b))
	}
	return nil
}
