package coretest

// Chooser makes the choices of a randomised test: a fuzz input (Bytes), or
// anything else deterministic.
type Chooser interface {
	// Intn returns a choice in [0, n); n must be positive.
	Intn(n int) int
}

// Bytes reads a fuzz input as a stream of choices. Past its end every
// choice is 0, so any input, however short or long, is a complete
// program: the fuzzer's mutations never produce an input the interpreter
// must reject, and the corpus minimiser can cut from anywhere.
type Bytes struct {
	b []byte
	i int
}

// NewBytes reads choices from b.
func NewBytes(b []byte) *Bytes { return &Bytes{b: b} }

// Done reports whether every byte has been read.
func (r *Bytes) Done() bool { return r.i >= len(r.b) }

// Byte returns the next byte, 0 once the input is used up.
func (r *Bytes) Byte() byte {
	if r.i >= len(r.b) {
		return 0
	}
	c := r.b[r.i]
	r.i++
	return c
}

// Intn implements Chooser with one byte per choice (two when n > 256), so
// that one input byte changed by the fuzzer changes one choice.
func (r *Bytes) Intn(n int) int {
	if n <= 1 {
		return 0
	}
	v := int(r.Byte())
	if n > 256 {
		v = v<<8 | int(r.Byte())
	}
	return v % n
}

// Take returns the next k bytes (fewer at the end of the input).
func (r *Bytes) Take(k int) []byte {
	end := min(r.i+k, len(r.b))
	out := r.b[r.i:end]
	r.i = end
	return out
}
