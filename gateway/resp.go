package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Limits on one RESP2 command, so that a connection's memory is bounded
// whatever a peer sends: the read buffer (readBufSize) plus one command
// (MaxCommandBytes) plus the reply being written.
const (
	// MaxInlineLen bounds an inline command line (and any header line).
	MaxInlineLen = readBufSize
	// MaxBulkLen bounds one argument. Anything larger than msg.MaxOpSize
	// could never reach the cluster, but an argument between the two gets
	// an ordinary -ERR and keeps the connection; beyond MaxBulkLen the
	// stream is treated as hostile and closed.
	MaxBulkLen = 1 << 20
	// MaxArgs bounds the arguments of one command (MSET k1 v1 … counts
	// each key and value).
	MaxArgs = 8192
	// MaxCommandBytes bounds the arguments of one command together.
	MaxCommandBytes = 4 << 20
)

const readBufSize = 16 << 10

// ProtocolError is a malformed RESP stream: the server answers
// "-ERR Protocol error: …" and closes the connection, since after a
// framing error nothing that follows can be trusted to start a command.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "Protocol error: " + e.Msg }

func protoErr(format string, args ...any) error {
	return &ProtocolError{Msg: fmt.Sprintf(format, args...)}
}

// Reader reads client commands: RESP2 arrays of bulk strings (what client
// libraries, redis-cli and redis-benchmark send) and inline commands (a
// line of space-separated words, what a person types into telnet).
type Reader struct {
	br *bufio.Reader
	// mem charges each command's arguments as they are allocated; a
	// server gives it a share of its budget, NewReader none (no limit
	// beyond those above).
	mem account
}

// NewReader returns a Reader over r.
func NewReader(r io.Reader) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, readBufSize)}
}

// Buffered reports whether a further command has already arrived, so that
// a server can hold replies to pipelined commands and flush them together.
func (r *Reader) Buffered() bool { return r.br.Buffered() > 0 }

// ReadCommand returns the next command's arguments (never empty). It
// returns io.EOF at a clean end of stream, *ProtocolError for a malformed
// one, and io.ErrUnexpectedEOF if the stream ends inside a command.
//
// The arguments of the previous command are charged to the reader's memory
// account until the next ReadCommand (or Release).
func (r *Reader) ReadCommand() ([][]byte, error) {
	r.mem.reset()
	for {
		b, err := r.br.Peek(1)
		if err != nil {
			return nil, err
		}
		var args [][]byte
		if b[0] == '*' {
			args, err = r.readArray()
		} else {
			args, err = r.readInline()
		}
		if err != nil || len(args) > 0 {
			return args, err
		}
		// An empty array or a blank line: nothing to run, read on.
	}
}

// Release gives back the memory charged for the last command: its
// arguments must no longer be used.
func (r *Reader) Release() { r.mem.reset() }

// line returns the next line without its CRLF (or LF: inline commands
// typed by hand may end in a bare newline). The slice is only valid until
// the next read.
func (r *Reader) line() ([]byte, error) {
	l, err := r.br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, protoErr("line longer than %d bytes", MaxInlineLen)
	case errors.Is(err, io.EOF) && len(l) > 0:
		return nil, io.ErrUnexpectedEOF
	case err != nil:
		return nil, err
	}
	l = l[:len(l)-1]
	if n := len(l); n > 0 && l[n-1] == '\r' {
		l = l[:n-1]
	}
	return l, nil
}

func (r *Reader) readInline() ([][]byte, error) {
	l, err := r.line()
	if err != nil {
		return nil, err
	}
	var args [][]byte
	for _, f := range bytes.FieldsFunc(l, func(c rune) bool { return c == ' ' || c == '\t' }) {
		args = append(args, bytes.Clone(f))
	}
	return args, nil
}

func (r *Reader) readArray() ([][]byte, error) {
	l, err := r.line()
	if err != nil {
		return nil, err
	}
	n, ok := parseLen(l[1:])
	switch {
	case !ok && string(l[1:]) == "-1":
		return nil, nil // a null array: nothing to run
	case !ok:
		return nil, protoErr("invalid multibulk length")
	case n > MaxArgs:
		return nil, protoErr("multibulk length %d exceeds %d", n, MaxArgs)
	}
	// Grow as arguments arrive: a declared count allocates nothing.
	var args [][]byte
	total := 0
	for range n {
		l, err := r.line()
		if err != nil {
			return nil, eofInside(err)
		}
		if len(l) == 0 || l[0] != '$' {
			c := "end of line"
			if len(l) > 0 {
				c = strconv.QuoteRune(rune(l[0]))
			}
			return nil, protoErr("expected '$', got %s", c)
		}
		size, ok := parseLen(l[1:])
		switch {
		case !ok:
			return nil, protoErr("invalid bulk length")
		case size > MaxBulkLen:
			return nil, protoErr("bulk length %d exceeds %d", size, MaxBulkLen)
		case total+size > MaxCommandBytes:
			return nil, protoErr("command larger than %d bytes", MaxCommandBytes)
		}
		total += size
		buf, err := r.readBulk(size + 2)
		if err != nil {
			return nil, err
		}
		if buf[size] != '\r' || buf[size+1] != '\n' {
			return nil, protoErr("bulk string not terminated by CRLF")
		}
		args = append(args, buf[:size:size])
	}
	return args, nil
}

// firstChunk bounds the first allocation for a bulk string: a header
// alone ("$1048576\r\n", a dozen bytes) cannot make the gateway allocate
// a MiB; the buffer grows (doubling) only as the data arrives.
const firstChunk = 64 << 10

// sliceHeader is what each argument costs beyond its bytes, charged to the
// memory account with them so that many empty arguments count too.
const sliceHeader = 24

// readBulk reads n bytes, allocating them as they arrive and charging
// each allocation to the memory account.
func (r *Reader) readBulk(n int) ([]byte, error) {
	c := min(n, firstChunk)
	if err := r.mem.charge(c + sliceHeader); err != nil {
		return nil, err
	}
	buf := make([]byte, 0, c)
	for {
		m, err := io.ReadFull(r.br, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err != nil {
			return nil, eofInside(err)
		}
		if len(buf) == n {
			return buf, nil
		}
		grown := min(n, 2*cap(buf))
		if err := r.mem.charge(grown - cap(buf)); err != nil {
			return nil, err
		}
		nb := make([]byte, len(buf), grown)
		copy(nb, buf)
		buf = nb
	}
}

func eofInside(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// parseLen parses a non-negative decimal length of at most 10 digits
// (enough for every bound above, and no overflow on any platform).
func parseLen(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// Writer writes RESP2 replies into a buffer; Flush sends them.
type Writer struct {
	bw *bufio.Writer
}

// NewWriter returns a Writer over w.
func NewWriter(w io.Writer) *Writer { return &Writer{bw: bufio.NewWriterSize(w, 4<<10)} }

// Simple writes a status reply (+OK). s must not contain CR or LF.
func (w *Writer) Simple(s string) {
	w.bw.WriteByte('+')
	w.bw.WriteString(s)
	w.bw.WriteString("\r\n")
}

// Error writes an error reply. msg starts with the error code (ERR,
// WRONGTYPE, …); CR and LF in it are replaced so that the reply stays one
// line.
func (w *Writer) Error(msg string) {
	w.bw.WriteByte('-')
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		w.bw.WriteByte(c)
	}
	w.bw.WriteString("\r\n")
}

// Int writes an integer reply.
func (w *Writer) Int(n int64) {
	w.bw.WriteByte(':')
	w.bw.Write(strconv.AppendInt(w.scratch(), n, 10))
	w.bw.WriteString("\r\n")
}

// Bulk writes a bulk string reply.
func (w *Writer) Bulk(b []byte) {
	w.bw.WriteByte('$')
	w.bw.Write(strconv.AppendInt(w.scratch(), int64(len(b)), 10))
	w.bw.WriteString("\r\n")
	w.bw.Write(b)
	w.bw.WriteString("\r\n")
}

// Null writes the null bulk string ($-1), RESP2's "no value".
func (w *Writer) Null() { w.bw.WriteString("$-1\r\n") }

// Array writes the header of an array of n replies, which the caller
// writes next.
func (w *Writer) Array(n int) {
	w.bw.WriteByte('*')
	w.bw.Write(strconv.AppendInt(w.scratch(), int64(n), 10))
	w.bw.WriteString("\r\n")
}

// Flush sends what was written.
func (w *Writer) Flush() error { return w.bw.Flush() }

func (w *Writer) scratch() []byte {
	var b [24]byte
	return b[:0]
}
