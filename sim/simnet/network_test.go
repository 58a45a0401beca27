package simnet

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

type delivery struct {
	at       Time
	from, to int
	payload  string
}

// recorder is a deliver callback that logs every delivery.
type recorder struct {
	s   *Scheduler
	got []delivery
}

func (r *recorder) deliver(from, to int, p []byte) {
	r.got = append(r.got, delivery{r.s.Now(), from, to, string(p)})
}

func newNet(seed uint64, n int) (*Scheduler, *Network, *recorder) {
	s := New(seed)
	r := &recorder{s: s}
	return s, NewNetwork(s, n, r.deliver), r
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// scenario is a small randomized workload exercising every feature of the
// network: nodes gossip on tickers with random destinations and payloads
// drawn from the scheduler's PRNG, over lossy, jittery, duplicating links,
// one of them bandwidth-limited, with partitions, cuts and crashes.
func scenario(seed uint64) ([32]byte, []delivery, Stats) {
	const n = 5
	s := New(seed)
	var log []delivery
	var nw *Network
	nw = NewNetwork(s, n, func(from, to int, p []byte) {
		log = append(log, delivery{s.Now(), from, to, string(p)})
		if p[0]%4 == 0 { // sometimes reply, to make traffic depend on deliveries
			nw.Send(to, from, append([]byte{p[0] + 1}, p[1:]...))
		}
	})
	nw.SetDefaultLink(Link{Latency: ms(10), Jitter: ms(20), Loss: 0.1, Duplicate: 0.05})
	nw.SetLink(0, 1, Link{Latency: ms(1), Jitter: ms(2), Bandwidth: 50_000})
	for i := range n {
		s.Every(ms(7+i), func() {
			to := s.Rand().IntN(n)
			msg := make([]byte, 1+s.Rand().IntN(100))
			for j := range msg {
				msg[j] = byte(s.Rand().Uint32())
			}
			nw.Send(i, to, msg)
		})
	}
	s.At(FromDuration(ms(300)), func() { nw.Partition([]int{0, 1}, []int{2, 3}) })
	s.At(FromDuration(ms(400)), func() { nw.Cut(4, 0); nw.Down(3) })
	s.At(FromDuration(ms(500)), func() { nw.Heal(); nw.Up(3) })
	s.At(FromDuration(ms(600)), func() { nw.Isolate(2) })
	s.At(FromDuration(ms(700)), func() { nw.Heal() })
	s.At(FromDuration(ms(750)), func() { s.Trace("harness.checkpoint", []byte("ok"), 1, 2, 3) })
	s.RunUntil(FromDuration(time.Second))
	return s.TraceHash(), log, nw.Stats()
}

func TestDeterminism(t *testing.T) {
	hashes := map[[32]byte]uint64{}
	for _, seed := range testSeeds() {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			h1, log1, st1 := scenario(seed)
			h2, log2, st2 := scenario(seed)
			t.Logf("seed=%d trace=%x deliveries=%d stats=%+v", seed, h1[:8], len(log1), st1)
			if h1 != h2 {
				t.Errorf("seed %d: trace hash differs between identical runs: %x vs %x", seed, h1, h2)
			}
			if !slices.Equal(log1, log2) || st1 != st2 {
				t.Errorf("seed %d: delivery log or stats differ between identical runs", seed)
			}
			if st1.Delivered == 0 || st1.DroppedLoss == 0 || st1.DroppedPartition == 0 ||
				st1.DroppedDown == 0 || st1.Duplicated == 0 {
				t.Errorf("seed %d: scenario did not exercise every path: %+v", seed, st1)
			}
			if other, ok := hashes[h1]; ok {
				t.Errorf("seeds %d and %d produced the same trace hash", seed, other)
			}
			hashes[h1] = seed
		})
	}
}

// TestRandConsumptionIndependentOfConnectivity checks the rule that lets a
// partition change what is delivered without changing every random draw
// after it: Send consumes the same randomness whether or not it drops.
func TestRandConsumptionIndependentOfConnectivity(t *testing.T) {
	links := []Link{
		{},
		{Loss: 0.5},
		{Jitter: ms(5)},
		{Loss: 0.3, Duplicate: 0.3, Jitter: ms(5), Bandwidth: 1000},
	}
	for _, seed := range testSeeds() {
		for li, l := range links {
			var after []uint64
			for _, mode := range []string{"open", "cut", "down", "partition"} {
				s, nw, _ := newNet(seed, 3)
				nw.SetDefaultLink(l)
				switch mode {
				case "cut":
					nw.Cut(0, 1)
				case "down":
					nw.Down(1)
				case "partition":
					nw.Partition([]int{0}, []int{1})
				}
				for range 50 {
					nw.Send(0, 1, []byte("m"))
				}
				after = append(after, s.Rand().Uint64())
			}
			for _, v := range after[1:] {
				if v != after[0] {
					t.Errorf("seed %d link %d: PRNG state after sends depends on connectivity: %x", seed, li, after)
					break
				}
			}
		}
	}
}

func TestLatencyAndFIFO(t *testing.T) {
	s, nw, r := newNet(1, 2)
	nw.SetDefaultLink(Link{Latency: ms(10)})
	for i := range 5 {
		s.At(FromDuration(ms(i)), func() { nw.Send(0, 1, []byte{byte(i)}) })
	}
	s.RunUntil(FromDuration(time.Second))
	if len(r.got) != 5 {
		t.Fatalf("delivered %d, want 5", len(r.got))
	}
	for i, d := range r.got {
		if d.at != FromDuration(ms(10+i)) || d.payload != string([]byte{byte(i)}) {
			t.Errorf("delivery %d = %+v, want at %v payload %d", i, d, ms(10+i), i)
		}
	}
}

func TestSendNeverDeliversSynchronously(t *testing.T) {
	s, nw, r := newNet(1, 2)
	nw.Send(0, 1, []byte("x"))
	if len(r.got) != 0 {
		t.Fatal("zero-delay Send delivered synchronously")
	}
	s.Step()
	if len(r.got) != 1 || r.got[0].at != 0 {
		t.Errorf("got %+v, want one delivery at 0", r.got)
	}
}

// The network copies what it is sent, so a sender may reuse its buffer once
// it moves on — and makes one copy for a buffer sent to several nodes in a
// row (a broadcast, a duplicate), which the deliveries share: receivers
// keep payloads but never modify them.
func TestPayloadIsCopiedOncePerBroadcast(t *testing.T) {
	s := New(1)
	var got [][]byte
	nw := NewNetwork(s, 3, func(_, _ int, p []byte) { got = append(got, p) })
	nw.SetDefaultLink(Link{Duplicate: 1})
	buf := []byte("hello")
	nw.Send(0, 1, buf)
	nw.Send(0, 2, buf)
	other := []byte("world")
	nw.Send(0, 1, other)
	buf[0], other[0] = 'J', 'J'
	s.RunUntil(1)
	if len(got) != 6 {
		t.Fatalf("delivered %d payloads, want 6", len(got))
	}
	hello, world := 0, 0
	for _, p := range got {
		switch string(p) {
		case "hello":
			hello++
		case "world":
			world++
		default:
			t.Fatalf("delivered %q: the sender's later change leaked", p)
		}
	}
	if hello != 4 || world != 2 {
		t.Fatalf("delivered hello %d, world %d times; want 4 and 2", hello, world)
	}
	var first []byte
	for _, p := range got {
		if string(p) != "hello" {
			continue
		}
		if first == nil {
			first = p
		} else if &p[0] != &first[0] {
			t.Fatalf("a broadcast of one buffer made more than one copy")
		}
	}
}

func TestLossRate(t *testing.T) {
	const sends = 20000
	for _, seed := range testSeeds() {
		for _, loss := range []float64{0, 0.01, 0.1, 0.5, 0.9, 1} {
			t.Run(fmt.Sprintf("seed=%d/loss=%v", seed, loss), func(t *testing.T) {
				s, nw, r := newNet(seed, 2)
				nw.SetDefaultLink(Link{Loss: loss, Latency: ms(1)})
				for range sends {
					nw.Send(0, 1, []byte("m"))
				}
				s.RunUntil(FromDuration(time.Second))
				st := nw.Stats()
				// Wide bounds: expected ± 0.02*sends (≥ 4.5σ for every p);
				// deterministic for a given seed in any case.
				want := loss * sends
				if got := float64(st.DroppedLoss); got < want-0.02*sends || got > want+0.02*sends {
					t.Errorf("seed %d: dropped %v of %d with loss %v, want ≈ %v", seed, got, sends, loss, want)
				}
				if int(st.Delivered) != len(r.got) || st.Delivered+st.DroppedLoss != sends {
					t.Errorf("seed %d: inconsistent stats %+v, %d delivered", seed, st, len(r.got))
				}
			})
		}
	}
}

func TestDuplicate(t *testing.T) {
	for _, seed := range testSeeds() {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			s, nw, r := newNet(seed, 2)
			nw.SetLink(0, 1, Link{Duplicate: 1, Latency: ms(5), Jitter: ms(5)})
			nw.SetLink(1, 0, Link{Duplicate: 0.25, Latency: ms(5)})
			for i := range 100 {
				nw.Send(0, 1, []byte{byte(i)})
				nw.Send(1, 0, []byte{byte(i)})
			}
			s.RunUntil(FromDuration(time.Second))
			count := map[delivery]int{}
			back := 0
			for _, d := range r.got {
				if d.from == 0 {
					count[delivery{from: d.from, to: d.to, payload: d.payload}]++
				} else {
					back++
				}
			}
			for k, c := range count {
				if c != 2 {
					t.Errorf("seed %d: %v delivered %d times, want 2", seed, k, c)
				}
			}
			if len(count) != 100 {
				t.Errorf("seed %d: %d distinct messages 0→1, want 100", seed, len(count))
			}
			if back < 110 || back > 140 {
				t.Errorf("seed %d: 1→0 delivered %d with Duplicate 0.25, want ≈125", seed, back)
			}
			if st := nw.Stats(); st.Duplicated != uint64(100+(back-100)) || st.Delivered != uint64(len(r.got)) {
				t.Errorf("seed %d: stats %+v", seed, st)
			}
		})
	}
}

func TestJitter(t *testing.T) {
	for _, seed := range testSeeds() {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			s, nw, r := newNet(seed, 2)
			nw.SetDefaultLink(Link{Latency: ms(10), Jitter: ms(10)})
			for i := range 100 {
				s.At(FromDuration(time.Duration(i)*time.Millisecond/10), func() {
					nw.Send(0, 1, []byte{byte(i)})
				})
			}
			s.RunUntil(FromDuration(time.Second))
			if len(r.got) != 100 {
				t.Fatalf("seed %d: delivered %d, want 100", seed, len(r.got))
			}
			inversions := 0
			for i := 1; i < len(r.got); i++ {
				if r.got[i].payload[0] < r.got[i-1].payload[0] {
					inversions++
				}
			}
			if inversions == 0 {
				t.Errorf("seed %d: jitter produced no reordering", seed)
			}
			for _, d := range r.got {
				sent := FromDuration(time.Duration(d.payload[0]) * time.Millisecond / 10)
				if delay := d.at.Sub(sent); delay < ms(10) || delay >= ms(20) {
					t.Errorf("seed %d: delay %v outside [10ms, 20ms)", seed, delay)
				}
			}
		})
	}
}

func TestCut(t *testing.T) {
	s, nw, r := newNet(1, 3)
	nw.Cut(0, 1)
	nw.Send(0, 1, []byte("a→b"))
	nw.Send(1, 0, []byte("b→a"))
	nw.Send(0, 2, []byte("a→c"))
	s.RunUntil(1)
	want := []delivery{{0, 1, 0, "b→a"}, {0, 0, 2, "a→c"}}
	if !slices.Equal(r.got, want) {
		t.Errorf("got %+v, want %+v", r.got, want)
	}
	if st := nw.Stats(); st.DroppedPartition != 1 {
		t.Errorf("DroppedPartition = %d, want 1", st.DroppedPartition)
	}
	nw.Restore(0, 1)
	nw.Send(0, 1, []byte("again"))
	s.RunUntil(2)
	if len(r.got) != 3 || r.got[2].payload != "again" {
		t.Errorf("after Restore: %+v", r.got)
	}
}

func TestPartitionAndHeal(t *testing.T) {
	type pair struct{ from, to int }
	const n = 5
	tests := []struct {
		name    string
		setup   func(nw *Network)
		blocked []pair // all other pairs (including self) must be open
	}{
		{"none", func(nw *Network) {}, nil},
		{"two groups", func(nw *Network) { nw.Partition([]int{0, 1}, []int{2, 3, 4}) },
			[]pair{{0, 2}, {0, 3}, {0, 4}, {1, 2}, {1, 3}, {1, 4}, {2, 0}, {3, 0}, {4, 0}, {2, 1}, {3, 1}, {4, 1}}},
		{"unlisted nodes stay connected", func(nw *Network) { nw.Partition([]int{0}, []int{1}) },
			[]pair{{0, 1}, {1, 0}}},
		{"repartition replaces", func(nw *Network) { nw.Partition([]int{0}, []int{1}); nw.Partition([]int{3}, []int{4}) },
			[]pair{{3, 4}, {4, 3}}},
		{"isolate", func(nw *Network) { nw.Isolate(2) },
			[]pair{{2, 0}, {2, 1}, {2, 3}, {2, 4}, {0, 2}, {1, 2}, {3, 2}, {4, 2}}},
		{"one-way cut", func(nw *Network) { nw.Cut(3, 1) }, []pair{{3, 1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, heal := range []bool{false, true} {
				s, nw, r := newNet(1, n)
				tc.setup(nw)
				if heal {
					nw.Heal()
				}
				for from := range n {
					for to := range n {
						nw.Send(from, to, []byte{byte(from), byte(to)})
					}
				}
				s.RunUntil(1)
				got := map[pair]bool{}
				for _, d := range r.got {
					got[pair{d.from, d.to}] = true
				}
				for from := range n {
					for to := range n {
						p := pair{from, to}
						wantOpen := heal || !slices.Contains(tc.blocked, p)
						if got[p] != wantOpen {
							t.Errorf("heal=%v: %d→%d delivered=%v, want %v", heal, from, to, got[p], wantOpen)
						}
					}
				}
			}
		})
	}
	mustPanic(t, "node in two groups", func() {
		_, nw, _ := newNet(1, 3)
		nw.Partition([]int{0, 1}, []int{1, 2})
	})
}

func TestPartitionDropsInFlight(t *testing.T) {
	s, nw, r := newNet(1, 2)
	nw.SetDefaultLink(Link{Latency: ms(10)})
	nw.Send(0, 1, []byte("in flight"))
	s.RunUntil(FromDuration(ms(5)))
	nw.Partition([]int{0}, []int{1})
	s.RunUntil(FromDuration(ms(20)))
	if len(r.got) != 0 || nw.Stats().DroppedPartition != 1 {
		t.Errorf("message crossing a new partition: got %+v stats %+v", r.got, nw.Stats())
	}
}

func TestDown(t *testing.T) {
	tests := []struct {
		name    string
		ops     func(s *Scheduler, nw *Network) // run at 5ms; messages sent at 0 arrive at 10ms
		want    []string
		dropped uint64
	}{
		{"stays up", func(s *Scheduler, nw *Network) {}, []string{"0→1", "1→0"}, 0},
		{"down drops in-flight to it", func(s *Scheduler, nw *Network) { nw.Down(1) }, []string{"1→0"}, 1},
		{"down and up again still drops in-flight", func(s *Scheduler, nw *Network) { nw.Down(1); nw.Up(1) }, []string{"1→0"}, 1},
		{"up at arrival time is too late", func(s *Scheduler, nw *Network) {
			nw.Down(1)
			s.At(FromDuration(ms(10)), func() { nw.Up(1) })
		}, []string{"1→0"}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, nw, r := newNet(1, 2)
			nw.SetDefaultLink(Link{Latency: ms(10)})
			nw.Send(0, 1, []byte("0→1"))
			nw.Send(1, 0, []byte("1→0"))
			s.At(FromDuration(ms(5)), func() { tc.ops(s, nw) })
			s.RunUntil(FromDuration(time.Second))
			var got []string
			for _, d := range r.got {
				got = append(got, d.payload)
			}
			if !slices.Equal(got, tc.want) || nw.Stats().DroppedDown != tc.dropped {
				t.Errorf("delivered %v dropped %d, want %v dropped %d", got, nw.Stats().DroppedDown, tc.want, tc.dropped)
			}
		})
	}

	t.Run("sends to and from a down node are dropped", func(t *testing.T) {
		s, nw, r := newNet(1, 3)
		nw.Down(1)
		if !nw.IsDown(1) {
			t.Fatal("IsDown(1) = false")
		}
		nw.Send(0, 1, []byte("x"))
		nw.Send(1, 2, []byte("y"))
		nw.Heal() // Heal does not revive nodes
		nw.Send(0, 1, []byte("z"))
		s.RunUntil(1)
		if len(r.got) != 0 || nw.Stats().DroppedDown != 3 {
			t.Errorf("got %+v stats %+v", r.got, nw.Stats())
		}
		nw.Up(1)
		nw.Send(0, 1, []byte("w"))
		s.RunUntil(2)
		if len(r.got) != 1 {
			t.Errorf("after Up: got %+v", r.got)
		}
	})
}

func TestBandwidth(t *testing.T) {
	tests := []struct {
		name     string
		link     Link
		msgs     int
		size     int
		wantLast time.Duration
	}{
		{"10x1000B at 10kB/s", Link{Bandwidth: 10_000}, 10, 1000, time.Second},
		{"with latency", Link{Bandwidth: 10_000, Latency: ms(50)}, 10, 1000, time.Second + ms(50)},
		{"single message", Link{Bandwidth: 1_000_000}, 1, 1000, ms(1)},
		{"rounds up", Link{Bandwidth: 3}, 1, 1, 333_333_334},
		{"unlimited", Link{}, 10, 1000, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, nw, r := newNet(1, 3)
			nw.SetLink(0, 1, tc.link)
			for range tc.msgs {
				nw.Send(0, 1, make([]byte, tc.size))
			}
			nw.Send(0, 2, []byte("other link is not queued behind"))
			s.RunUntil(FromDuration(time.Hour))
			if len(r.got) != tc.msgs+1 {
				t.Fatalf("delivered %d, want %d", len(r.got), tc.msgs+1)
			}
			var last Time
			for i, d := range r.got {
				if d.to == 2 {
					if d.at != 0 {
						t.Errorf("0→2 delivered at %v, want 0", d.at)
					}
					continue
				}
				if d.at < last {
					t.Errorf("delivery %d at %v before previous %v", i, d.at, last)
				}
				last = d.at
			}
			if last != FromDuration(tc.wantLast) {
				t.Errorf("last delivery at %v, want %v", last, tc.wantLast)
			}
		})
	}

	t.Run("queue drains while idle", func(t *testing.T) {
		s, nw, r := newNet(1, 2)
		nw.SetDefaultLink(Link{Bandwidth: 1000})
		nw.Send(0, 1, make([]byte, 100)) // busy until 100ms
		s.RunUntil(FromDuration(time.Second))
		nw.Send(0, 1, make([]byte, 100)) // link idle again: 1.1s
		s.RunUntil(FromDuration(time.Hour))
		if len(r.got) != 2 || r.got[1].at != FromDuration(1100*time.Millisecond) {
			t.Errorf("got %+v", r.got)
		}
	})
}

func TestStatsInvariant(t *testing.T) {
	for _, seed := range testSeeds() {
		_, _, st := scenario(seed)
		if st.Sent+st.Duplicated != st.Delivered+st.Dropped()+st.InFlight {
			t.Errorf("seed %d: Sent+Duplicated != Delivered+Dropped+InFlight: %+v", seed, st)
		}
	}
}

func TestInvalidArguments(t *testing.T) {
	s, nw, _ := newNet(1, 2)
	mustPanic(t, "send to unknown node", func() { nw.Send(0, 2, nil) })
	mustPanic(t, "negative node", func() { nw.Cut(-1, 0) })
	mustPanic(t, "loss > 1", func() { nw.SetDefaultLink(Link{Loss: 1.5}) })
	mustPanic(t, "negative jitter", func() { nw.SetLink(0, 1, Link{Jitter: -1}) })
	mustPanic(t, "nil deliver", func() { NewNetwork(s, 2, nil) })
	mustPanic(t, "no nodes", func() { NewNetwork(s, 0, func(int, int, []byte) {}) })
}

// BenchmarkSendDeliver measures scheduler+network throughput: a ring of
// nodes forwarding a message on jittery, lossless links, so every iteration
// is one Send and one delivery event.
func BenchmarkSendDeliver(b *testing.B) {
	for _, size := range []int{64, 1024} {
		b.Run(fmt.Sprintf("payload=%d", size), func(b *testing.B) {
			const n = 16
			s := New(1)
			var nw *Network
			nw = NewNetwork(s, n, func(from, to int, p []byte) { nw.Send(to, (to+1)%n, p) })
			nw.SetDefaultLink(Link{Latency: ms(1), Jitter: ms(1)})
			for i := range n { // n messages in flight so the heap is not trivial
				nw.Send(i, (i+1)%n, make([]byte, size))
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				s.Step()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkScheduler measures the bare event queue: After + Step.
func BenchmarkScheduler(b *testing.B) {
	s := New(1)
	var fn func()
	fn = func() { s.After(time.Duration(s.Rand().IntN(1000)), fn) }
	for range 1000 {
		s.After(0, fn)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		s.Step()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// A node's card serialises everything it sends: two 1,000-byte messages to
// different peers on a 1 MB/s card leave 1 ms apart, though each link is
// unlimited.
func TestNICSerialisesANodesSends(t *testing.T) {
	s := New(1)
	var at []Time
	nw := NewNetwork(s, 3, func(from, to int, p []byte) { at = append(at, s.Now()) })
	nw.SetNIC(0, 1_000_000)
	nw.Send(0, 1, make([]byte, 1000))
	nw.Send(0, 2, make([]byte, 1000))
	nw.Send(1, 2, make([]byte, 1000)) // another node's card: unlimited
	s.RunUntil(FromDuration(time.Second))
	if len(at) != 3 || at[0] != 0 || at[1] != FromDuration(time.Millisecond) || at[2] != FromDuration(2*time.Millisecond) {
		t.Fatalf("delivered at %v; want 0 (node 1's), 1ms, 2ms", at)
	}
}

// A NIC's per-link queue holds at most the bound; once frames have left,
// there is room again, and other links are not affected.
func TestSendQueueBoundDropsBeyondIt(t *testing.T) {
	s := New(1)
	delivered := map[int]int{}
	nw := NewNetwork(s, 3, func(from, to int, p []byte) { delivered[to]++ })
	nw.SetNIC(0, 1_000_000) // 1 ms per 1,000-byte frame
	nw.SetSendQueue(2, 0)
	for i := 0; i < 4; i++ {
		nw.Send(0, 1, make([]byte, 1000)) // the first leaves at once; two wait; the fourth is dropped
	}
	nw.Send(0, 2, make([]byte, 1000)) // another link: its own queue
	if st := nw.Stats(); st.DroppedQueueFull != 1 {
		t.Fatalf("dropped %d for a full queue; want 1", st.DroppedQueueFull)
	}
	s.RunUntil(FromDuration(10 * time.Millisecond))
	nw.Send(0, 1, make([]byte, 1000)) // the queue drained meanwhile
	s.RunUntil(FromDuration(time.Second))
	if delivered[1] != 4 || delivered[2] != 1 {
		t.Fatalf("delivered %v; want 4 to node 1 and 1 to node 2", delivered)
	}
	if st := nw.Stats(); st.Sent+st.Duplicated != st.Delivered+st.Dropped()+st.InFlight {
		t.Fatalf("stats do not balance: %+v", st)
	}
	nw2 := NewNetwork(New(1), 2, func(int, int, []byte) {})
	nw2.SetNIC(0, 1_000_000)
	nw2.SetSendQueue(0, 1500) // a byte bound
	nw2.Send(0, 1, make([]byte, 1000))
	nw2.Send(0, 1, make([]byte, 1000))
	nw2.Send(0, 1, make([]byte, 1000))
	if st := nw2.Stats(); st.DroppedQueueFull != 1 {
		t.Fatalf("byte bound: dropped %d; want 1", st.DroppedQueueFull)
	}
}
