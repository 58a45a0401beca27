package wire

import (
	"bytes"
	"errors"
	"testing"
)

func TestReader(t *testing.T) {
	good := AppendU64(AppendBytes(AppendU32([]byte{7}, 9), []byte("abc")), 1<<40)
	tests := []struct {
		name    string
		in      []byte
		max     int
		wantErr bool
		trunc   bool
	}{
		{"ok", good, 3, false, false},
		{"bytes over max", good, 2, true, false},
		{"trailing", append(append([]byte{}, good...), 0), 3, true, false},
		{"truncated u64", good[:len(good)-1], 3, true, true},
		{"truncated bytes", good[:8], 3, true, true},
		{"truncated u32", good[:3], 3, true, true},
		{"empty", nil, 3, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(tc.in)
			a, b, c, d := r.U8(), r.U32(), r.View(tc.max, "c"), r.U64()
			err := r.Done()
			if (err != nil) != tc.wantErr || errors.Is(err, ErrTruncated) != tc.trunc || (err != nil && !errors.Is(err, ErrMalformed)) {
				t.Fatalf("err = %v, wantErr %v, truncated %v", err, tc.wantErr, tc.trunc)
			}
			if err == nil && (a != 7 || b != 9 || string(c) != "abc" || d != 1<<40) {
				t.Fatalf("decoded %d %d %q %d", a, b, c, d)
			}
		})
	}
}

// A view is capped at its own length, so appending to it cannot overwrite
// the next field; Bytes copies.
func TestViewCappedBytesCopied(t *testing.T) {
	buf := AppendBytes(AppendBytes(nil, []byte("ab")), []byte("cd"))
	r := NewReader(buf)
	first := r.View(10, "x")
	_ = append(first, 'Z')
	if second := r.View(10, "y"); string(second) != "cd" || r.Done() != nil {
		t.Fatalf("append through a decoded field clobbered input: %q", second)
	}
	r = NewReader(buf)
	c := r.Bytes(10, "x")
	c[0] = 'Q'
	if buf[4] != 'a' {
		t.Fatal("Bytes returned an alias of the buffer")
	}
	if v := NewReader(AppendBytes(nil, nil)).View(1, "e"); v == nil || len(v) != 0 {
		t.Fatalf("View of an empty field = %v; want empty, not nil", v)
	}
	if v := NewReader(AppendBytes(nil, nil)).Bytes(1, "e"); v != nil {
		t.Fatalf("Bytes of an empty field = %v; want nil", v)
	}
}

// A count is checked against its limit and against what is left before
// anything is allocated for it.
func TestCountBounded(t *testing.T) {
	r := NewReader(AppendU32(nil, 5))
	if n := r.Count(4, 1, "items"); n != 0 || r.Err() == nil {
		t.Fatalf("count 5 over limit 4: got %d, err %v", n, r.Err())
	}
	r = NewReader(append(AppendU32(nil, 3), make([]byte, 5)...))
	if n := r.Count(10, 2, "pairs"); n != 0 || !errors.Is(r.Err(), ErrTruncated) {
		t.Fatalf("3 pairs of 2 bytes in 5: got %d, err %v", n, r.Err())
	}
}

// Errors wrap the reader's kind and name what it decodes; the first one
// sticks.
func TestKindAndStickyError(t *testing.T) {
	own := errors.New("own kind")
	r := NewReader([]byte{2}).Kind(own, "block")
	if r.Bool(); !errors.Is(r.Err(), own) || !bytes.Contains([]byte(r.Err().Error()), []byte("block at byte 1")) {
		t.Fatalf("err = %v", r.Err())
	}
	first := r.Err()
	r.U64()
	if r.Err() != first || r.Remaining() != 0 {
		t.Fatalf("a later read replaced the first error: %v", r.Err())
	}
	if got := AppendBool(AppendBool(nil, true), false); !bytes.Equal(got, []byte{1, 0}) {
		t.Fatalf("AppendBool = %v", got)
	}
}
