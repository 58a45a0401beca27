package msg

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// acceptAll accepts every signature; fuzzing only checks Verify does not panic.
type acceptAll struct{}

func (acceptAll) Replica(ReplicaID, []byte, []byte) bool { return true }
func (acceptAll) Client(ClientID, []byte, []byte) bool   { return true }

// FuzzUnmarshal checks that decoding never panics, that every accepted
// encoding is the canonical one, and that the decoded value's memory is
// bounded by a small multiple of the input.
func FuzzUnmarshal(f *testing.F) {
	for _, s := range samples() {
		if b := Marshal(s.m); len(b) <= 16<<10 {
			f.Add(b)
		}
	}
	for _, s := range signedSamples() {
		f.Add(Marshal(s.m))
	}
	for _, b := range hostile() {
		f.Add(b)
	}
	// Corrupt encodings: truncated, trailing byte, bad boolean, unknown kind.
	pp := Marshal(ptr(testPrePrepare(1, 2, 3, testBatch(2, 4), 1)))
	f.Add(pp[:len(pp)-1])
	f.Add(append(append([]byte(nil), pp...), 0))
	bad := append([]byte(nil), pp...)
	bad[1+4+8+8+32] = 2
	f.Add(bad)
	f.Add([]byte{0})
	f.Add([]byte{byte(kindEnd), 0, 0, 0, 0})
	f.Add(Marshal(&NewView{ViewChanges: make([]ViewChange, 13)}))

	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Unmarshal(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			if m != nil {
				t.Fatalf("message returned with error")
			}
			return
		}
		if m.Kind() != Kind(data[0]) {
			t.Fatalf("decoded kind %v from tag %d", m.Kind(), data[0])
		}
		if enc := Marshal(m); !bytes.Equal(enc, data) {
			t.Fatalf("accepted a non-canonical encoding:\n in  %x\n out %x", data, enc)
		}
		if size := heapSize(m); size > 8*len(data)+1024 {
			t.Fatalf("decoded %d heap bytes from %d input bytes", size, len(data))
		}
		m2, err := Unmarshal(Marshal(m))
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("re-decode: %v", err)
		}
		sb := SignedBytes(m)
		if bytes.Equal(sb, data) {
			t.Fatalf("SignedBytes equals the encoding")
		}
		_ = Verify(m, acceptAll{})
		_ = Verify(m, &fakeVerifier{})
	})
}
