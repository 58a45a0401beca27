package transport

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	frames := [][]byte{{}, []byte("a"), bytes.Repeat([]byte("x"), readChunk-1), bytes.Repeat([]byte("y"), 3*readChunk+17)}
	for _, f := range frames {
		if err := WriteFrame(&buf, f); err != nil {
			t.Fatal(err)
		}
	}
	br := bufio.NewReader(&buf)
	for i, want := range frames {
		got, err := ReadFrame(br, 4*readChunk)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("frame %d: got %d bytes, want %d", i, len(got), len(want))
		}
	}
	if _, err := ReadFrame(br, 100); err != io.EOF {
		t.Fatalf("at end: %v, want io.EOF", err)
	}
}

func TestReadFrameErrors(t *testing.T) {
	hdr := func(n uint32, body string) *bufio.Reader {
		b := binary.BigEndian.AppendUint32(nil, n)
		return bufio.NewReader(strings.NewReader(string(b) + body))
	}
	cases := []struct {
		name string
		r    *bufio.Reader
		max  int
		want error
	}{
		{"partial header", bufio.NewReader(strings.NewReader("\x00\x00")), 10, io.ErrUnexpectedEOF},
		{"truncated small body", hdr(5, "abc"), 10, io.ErrUnexpectedEOF},
		{"truncated large body", hdr(1<<20, "abc"), 1 << 21, io.ErrUnexpectedEOF},
		{"over max", hdr(11, "0123456789a"), 10, ErrFrameTooLarge},
		{"max zero", hdr(1, "a"), 0, ErrFrameTooLarge},
		{"huge header", hdr(0xFFFFFFFF, ""), DefaultMaxFrame, ErrFrameTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ReadFrame(tc.r, tc.max)
			if !errors.Is(err, tc.want) || f != nil {
				t.Fatalf("got %d bytes, %v; want %v", len(f), err, tc.want)
			}
		})
	}
	if _, err := ReadFrame(hdr(0, ""), -1); err == nil {
		t.Fatal("negative max accepted")
	}
}

// TestReadFrameNoUpfrontAllocation: the length header is untrusted, so
// neither an over-limit header nor an in-limit header followed by a stall
// may make the reader allocate the claimed size.
func TestReadFrameNoUpfrontAllocation(t *testing.T) {
	allocated := func(f func()) uint64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	header := func(n uint32, body []byte) *bufio.Reader {
		return bufio.NewReader(bytes.NewReader(append(binary.BigEndian.AppendUint32(nil, n), body...)))
	}

	// Over the limit: rejected from the header alone.
	r := header(0xFFFFFFFF, nil)
	if n := allocated(func() {
		if _, err := ReadFrame(r, 1<<20); !errors.Is(err, ErrFrameTooLarge) {
			t.Errorf("err = %v", err)
		}
	}); n > 64<<10 {
		t.Errorf("over-limit header allocated %d bytes", n)
	}

	// Within a (huge) limit, 1 GiB announced but only 100 bytes sent:
	// allocation tracks the data that arrived, not the claim.
	r = header(1<<30, make([]byte, 100))
	if n := allocated(func() {
		if _, err := ReadFrame(r, 1<<31-1); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("err = %v", err)
		}
	}); n > 1<<20 {
		t.Errorf("1 GiB claim with 100 bytes of data allocated %d bytes", n)
	}
}

// FuzzReadFrame: arbitrary bytes never panic, never yield a frame over
// max, and whatever frames are returned re-encode to exactly the bytes
// consumed.
func FuzzReadFrame(f *testing.F) {
	enc := func(frames ...string) []byte {
		var b bytes.Buffer
		for _, fr := range frames {
			WriteFrame(&b, []byte(fr))
		}
		return b.Bytes()
	}
	f.Add(enc(), uint16(16))
	f.Add(enc(""), uint16(0))
	f.Add(enc("hello", "world"), uint16(16))
	f.Add(enc("too long for the limit"), uint16(4))
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0xFF}, uint16(1000))
	f.Add([]byte{0, 0, 1}, uint16(1000))
	f.Add(append(enc("ok"), 0, 0, 0, 9, 'a'), uint16(100))
	f.Add(append([]byte{0, 1, 0, 1}, make([]byte, 300)...), uint16(65535))
	f.Fuzz(func(t *testing.T, data []byte, max16 uint16) {
		max := int(max16)
		br := bufio.NewReaderSize(bytes.NewReader(data), 16)
		var reencoded bytes.Buffer
		for {
			fr, err := ReadFrame(br, max)
			if err != nil {
				if fr != nil {
					t.Fatalf("frame returned with error %v", err)
				}
				if err == io.EOF && reencoded.Len() != len(data) {
					t.Fatalf("io.EOF after %d of %d bytes", reencoded.Len(), len(data))
				}
				break
			}
			if len(fr) > max {
				t.Fatalf("frame of %d bytes exceeds max %d", len(fr), max)
			}
			WriteFrame(&reencoded, fr)
		}
		if !bytes.HasPrefix(data, reencoded.Bytes()) {
			t.Fatal("decoded frames do not re-encode to the consumed input")
		}
	})
}

// countingWriter records each Write call reaching the "socket".
type countingWriter struct {
	writes int
	buf    bytes.Buffer
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.buf.Write(p)
}

// TestWriteLoopCoalesces: many small queued frames reach the connection in
// a single write, in order.
func TestWriteLoopCoalesces(t *testing.T) {
	q := newSendQueue(1000, 1<<20)
	for i := 0; i < 500; i++ {
		if err := q.push(seqFrame(0, i, 20)); err != nil {
			t.Fatal(err)
		}
	}
	var w countingWriter
	stop := make(chan struct{})
	done := make(chan error, 1)
	flushed := make(chan int, 1)
	go func() {
		_, err := writeLoop(&w, q, stop, nil, func(frames, _ int) { flushed <- frames })
		done <- err
	}()
	if got := <-flushed; got != 500 {
		t.Fatalf("first flush carried %d frames", got)
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if w.writes != 1 {
		t.Errorf("%d writes for 500 small frames, want 1", w.writes)
	}
	br := bufio.NewReader(&w.buf)
	for i := 0; i < 500; i++ {
		f, err := ReadFrame(br, 100)
		if err != nil || !bytes.Equal(f, seqFrame(0, i, 20)) {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if q.bytes != 0 {
		t.Errorf("queue still accounts %d bytes after writing", q.bytes)
	}
}

func TestSendQueueBounds(t *testing.T) {
	q := newSendQueue(3, 100)
	if err := q.push(make([]byte, 97)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("frame over byte bound: %v", err)
	}
	for i := 0; i < 3; i++ {
		if err := q.push([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.push([]byte("x")); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("over frame bound: %v", err)
	}
	batch := q.popAll(nil)
	if len(batch) != 3 {
		t.Fatalf("popAll = %d", len(batch))
	}
	if err := q.push(make([]byte, 90)); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("unreleased bytes must still count: %v", err)
	}
	q.release(3 * frameCost([]byte("x")))
	if err := q.push(make([]byte, 90)); err != nil {
		t.Fatalf("after release: %v", err)
	}
	q.close()
	if err := q.push(nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
}
