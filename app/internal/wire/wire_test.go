package wire

import (
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
			a, b, c, d := r.U8("a"), r.U32("b"), r.Bytes("c", tc.max), r.U64("d")
			err := r.Done()
			if (err != nil) != tc.wantErr || errors.Is(err, ErrTruncated) != tc.trunc {
				t.Fatalf("err = %v, wantErr %v, truncated %v", err, tc.wantErr, tc.trunc)
			}
			if err == nil && (a != 7 || b != 9 || string(c) != "abc" || d != 1<<40) {
				t.Fatalf("decoded %d %d %q %d", a, b, c, d)
			}
		})
	}
}

func TestBytesCapped(t *testing.T) {
	buf := AppendBytes(AppendBytes(nil, []byte("ab")), []byte("cd"))
	r := NewReader(buf)
	first := r.Bytes("x", 10)
	_ = append(first, 'Z') // must not overwrite the next field
	if second := r.Bytes("y", 10); string(second) != "cd" || r.Done() != nil {
		t.Fatalf("append through a decoded field clobbered input: %q", second)
	}
}
