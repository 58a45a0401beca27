package msg

import "testing"

func benchPrePrepare() *PrePrepare {
	return ptr(testPrePrepare(1, 7, 1000, testBatch(100, 256), 2))
}

func BenchmarkMarshalPrePrepare(b *testing.B) {
	m := benchPrePrepare()
	b.ReportAllocs()
	b.SetBytes(int64(len(Marshal(m))))
	for b.Loop() {
		_ = Marshal(m)
	}
}

func BenchmarkUnmarshalPrePrepare(b *testing.B) {
	enc := Marshal(benchPrePrepare())
	b.ReportAllocs()
	b.SetBytes(int64(len(enc)))
	for b.Loop() {
		if _, err := Unmarshal(enc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBatchDigest(b *testing.B) {
	batch := testBatch(100, 256)
	b.ReportAllocs()
	for b.Loop() {
		_ = batch.Digest()
	}
}

func BenchmarkSignedBytesNewView(b *testing.B) {
	m := ptr(testNewView(1, 4, 0))
	b.ReportAllocs()
	for b.Loop() {
		_ = SignedBytes(m)
	}
}
