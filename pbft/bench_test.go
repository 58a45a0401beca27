package pbft

import (
	"fmt"
	"testing"

	"github.com/braid-bft/braid/msg"
)

type nopSigner struct{}

func (nopSigner) Sign([]byte) []byte { return nil }

// BenchmarkDecide measures the core's bookkeeping per decided request on a
// 4-replica cluster: every replica's work (propose, prepare, commit, decide,
// checkpoint) summed, without crypto or I/O. One op is one decided request.
func BenchmarkDecide(b *testing.B) {
	for _, batch := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			c := newCluster(b, 4, func(cfg *Config) { cfg.MaxBatch = batch; cfg.Signer = nopSigner{} })
			c.noKeep = true
			reqs := make([]msg.Request, b.N)
			for i := range reqs {
				reqs[i] = msg.Request{Client: msg.ClientID(i % 64), Number: uint64(i/64 + 1), Op: []byte("put k v")}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range reqs {
				c.nodes[0].Request(reqs[i])
				if (i+1)%batch == 0 {
					c.Settle()
				}
			}
			c.Tick(2)
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/4, "ns/req/replica")
			if got := len(decidedRequests(c.decided[3])); got != b.N {
				b.Fatalf("decided %d of %d", got, b.N)
			}
			c.decided = make([][]Decision, 4)
			c.records = make([][]msg.Message, 4)
		})
	}
}
