package transport

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// frameHeaderLen is the size of the big-endian length prefix of a frame.
const frameHeaderLen = 4

// DefaultMaxFrame is the default cap on a frame's payload size.
const DefaultMaxFrame = 16 << 20

// readChunk bounds how much ReadFrame allocates ahead of the data that has
// actually arrived. A remote that announces a large frame and then stalls
// costs us at most this much (plus what it really sent).
const readChunk = 64 << 10

// ErrFrameTooLarge reports a frame whose length exceeds the configured cap.
var ErrFrameTooLarge = errors.New("transport: frame too large")

// ReadFrame reads one length-prefixed frame from r. The payload may be at
// most max bytes; a larger length header yields an error wrapping
// ErrFrameTooLarge without reading or allocating the payload.
//
// It returns io.EOF only if r ends cleanly before a frame starts, and
// io.ErrUnexpectedEOF if it ends inside a frame. The returned slice is
// freshly allocated and owned by the caller.
//
// Memory is allocated incrementally as payload bytes arrive rather than
// up front from the (untrusted) header, so a peer cannot make us reserve
// max bytes per connection just by sending four bytes.
func ReadFrame(r *bufio.Reader, max int) ([]byte, error) {
	if max < 0 {
		return nil, fmt.Errorf("transport: negative max frame size %d", max)
	}
	var hdr [frameHeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		// io.ReadFull returns io.EOF only when nothing was read, which is a
		// clean end of stream between frames; a partial header becomes
		// io.ErrUnexpectedEOF.
		return nil, err
	}
	n := uint64(binary.BigEndian.Uint32(hdr[:]))
	if n > uint64(max) {
		return nil, fmt.Errorf("%w: length header %d exceeds limit %d", ErrFrameTooLarge, n, max)
	}
	size := int(n)
	if size <= readChunk {
		buf := make([]byte, size)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, noEOF(err)
		}
		return buf, nil
	}
	buf := make([]byte, 0, readChunk)
	for len(buf) < size {
		if len(buf) == cap(buf) {
			// Grow geometrically, never past the announced size.
			newCap := min(2*cap(buf), size)
			nb := make([]byte, len(buf), newCap)
			copy(nb, buf)
			buf = nb
		}
		m, err := io.ReadFull(r, buf[len(buf):min(cap(buf), size)])
		buf = buf[:len(buf)+m]
		if err != nil {
			return nil, noEOF(err)
		}
	}
	return buf, nil
}

// noEOF converts io.EOF into io.ErrUnexpectedEOF: after a header has been
// read, the stream ending is always a truncated frame.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// WriteFrame writes p to w as one length-prefixed frame. When w is a
// bufio.Writer, consecutive frames are coalesced into one underlying write.
func WriteFrame(w io.Writer, p []byte) error {
	if uint64(len(p)) > math.MaxUint32 {
		return fmt.Errorf("%w: %d bytes does not fit the length header", ErrFrameTooLarge, len(p))
	}
	var hdr [frameHeaderLen]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(p)))
	if _, err := w.Write(hdr[:]); err != nil {
		return fmt.Errorf("transport: write frame header: %w", err)
	}
	if _, err := w.Write(p); err != nil {
		return fmt.Errorf("transport: write frame payload: %w", err)
	}
	return nil
}
