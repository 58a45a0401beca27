package auth

import (
	"bytes"
	"sync"
	"testing"
)

var (
	fuzzHonestOnce sync.Once
	fuzzHonest     []BatchItem
)

// fuzzFillers returns fixed valid items to surround fuzzed ones, so that
// fuzzed input goes through the batch equation and bisection, not just the
// single-item path.
func fuzzFillers(t testing.TB) []BatchItem {
	fuzzHonestOnce.Do(func() { fuzzHonest = honestItems(t, 16, 77) })
	return fuzzHonest
}

func addEdgeSeeds(f *testing.F) {
	for _, tc := range edgeCases(f) {
		f.Add([]byte(tc.item.Key), tc.item.Context, tc.item.Msg, tc.item.Sig)
	}
	f.Add([]byte{}, "", []byte{}, []byte{})
}

// FuzzVerify checks that Verify never panics and that batch verification
// agrees with it on arbitrary key, context, message and signature bytes,
// both as a batch of one and inside a batch of valid signatures.
func FuzzVerify(f *testing.F) {
	addEdgeSeeds(f)
	f.Fuzz(func(t *testing.T, key []byte, context string, msg, sig []byte) {
		want := Verify(PublicKey(key), context, msg, sig)
		it := BatchItem{Key: PublicKey(key), Context: context, Msg: msg, Sig: sig}
		if got := VerifyBatch([]BatchItem{it})[0]; got != want {
			t.Fatalf("batch of one = %v, Verify = %v", got, want)
		}
		items := append(append([]BatchItem{}, fuzzFillers(t)[:5]...), it)
		got := VerifyBatch(items)
		for i, ok := range got {
			w := true
			if i == len(items)-1 {
				w = want
			}
			if ok != w {
				t.Fatalf("in batch: item %d = %v, want %v", i, ok, w)
			}
		}
	})
}

// FuzzVerifyBatch damages a chosen subset of a batch of valid items with
// fuzzer-supplied bytes (XORed into signatures or keys, or replacing them)
// and checks VerifyBatch against per-item Verify.
func FuzzVerifyBatch(f *testing.F) {
	f.Add(uint8(8), uint64(0), []byte{}, []byte{})
	f.Add(uint8(16), uint64(1), []byte{1}, []byte{})
	f.Add(uint8(16), uint64(0x8001), []byte{0, 0, 0, 0x80}, []byte{0x10})
	f.Add(uint8(5), uint64(0xffffffffffffffff), bytes.Repeat([]byte{0xff}, 64), bytes.Repeat([]byte{1}, 32))
	f.Add(uint8(3), uint64(0x100000002), mustHex(order8Hex), mustHex(order8Hex))
	f.Fuzz(func(t *testing.T, n uint8, mask uint64, sigX, keyX []byte) {
		fill := fuzzFillers(t)
		items := append([]BatchItem{}, fill[:1+int(n)%len(fill)]...)
		for i := range items {
			it := &items[i]
			switch (mask >> (2 * i)) & 3 {
			case 1: // XOR into the signature
				s := bytes.Clone(it.Sig)
				for j := range min(len(s), len(sigX)) {
					s[j] ^= sigX[j]
				}
				it.Sig = s
			case 2: // replace the signature outright
				it.Sig = sigX
			case 3: // XOR into the key, or replace it if keyX is not key-sized
				if len(keyX) != PublicKeySize {
					it.Key = PublicKey(keyX)
					break
				}
				k := bytes.Clone(it.Key)
				for j := range k {
					k[j] ^= keyX[j]
				}
				it.Key = k
			}
		}
		checkAgree(t, items, VerifyBatch(items))
	})
}
