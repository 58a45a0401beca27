package auth

import (
	"context"
	"fmt"
	"testing"
)

func BenchmarkSign(b *testing.B) {
	_, priv, _ := GenerateKey(nil)
	msg := make([]byte, 128)
	b.ReportAllocs()
	for b.Loop() {
		Sign(priv, testCtx, msg)
	}
}

func BenchmarkVerify(b *testing.B) {
	it := honestItems(b, 1, 1)[0]
	b.ReportAllocs()
	for b.Loop() {
		if !Verify(it.Key, it.Context, it.Msg, it.Sig) {
			b.Fatal("rejected")
		}
	}
}

// BenchmarkVerifyBatch reports ns/sig for clean batches, the common case.
func BenchmarkVerifyBatch(b *testing.B) {
	for _, n := range []int{1, 16, 64, 256} {
		items := honestItems(b, n, uint64(n))
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				VerifyBatch(items)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/sig")
		})
	}
}

// BenchmarkVerifyBatchInvalid reports the cost of fallback: one invalid
// item (bisection) and every item invalid (the bounded worst case).
func BenchmarkVerifyBatchInvalid(b *testing.B) {
	for _, n := range []int{64, 256} {
		for _, bad := range []string{"one", "all"} {
			items := honestItems(b, n, uint64(n))
			for i := range items {
				if bad == "all" || i == n/3 {
					items[i].Sig = flip(items[i].Sig, 5)
				}
			}
			b.Run(fmt.Sprintf("n=%d/bad=%s", n, bad), func(b *testing.B) {
				for b.Loop() {
					VerifyBatch(items)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/sig")
			})
		}
	}
}

// BenchmarkPool verifies 1024-signature submissions on a default-sized
// pool, from as many concurrent callers as GOMAXPROCS.
func BenchmarkPool(b *testing.B) {
	const n = 1024
	items := honestItems(b, n, 42)
	p := NewPool(0, 0)
	defer p.Close()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := p.Verify(context.Background(), items); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/sig")
}
