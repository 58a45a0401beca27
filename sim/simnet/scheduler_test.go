package simnet

import (
	"flag"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// seedFlag lets a failing randomized test be replayed with a single seed:
//
//	go test ./sim/simnet/ -run TestDeterminism -args -seed=1234
var seedFlag = flag.Uint64("seed", 0, "run randomized tests with only this seed (0 = built-in seeds)")

// testSeeds returns the seeds randomized tests iterate over.
func testSeeds() []uint64 {
	if *seedFlag != 0 {
		return []uint64{*seedFlag}
	}
	return []uint64{1, 2, 42, 0xdeadbeef, 1 << 63}
}

func TestEventOrdering(t *testing.T) {
	type ev struct {
		at   Time
		name string
	}
	tests := []struct {
		name   string
		events []ev
		want   []string
	}{
		{"by time", []ev{{30, "c"}, {10, "a"}, {20, "b"}}, []string{"a", "b", "c"}},
		{"ties by insertion", []ev{{10, "x"}, {10, "y"}, {10, "z"}}, []string{"x", "y", "z"}},
		{"mixed", []ev{{20, "b1"}, {10, "a1"}, {20, "b2"}, {10, "a2"}, {0, "zero"}}, []string{"zero", "a1", "a2", "b1", "b2"}},
		{"many ties", func() []ev {
			var es []ev
			for i := range 100 {
				es = append(es, ev{5, string(rune('A' + i%26))})
			}
			return es
		}(), func() []string {
			var ws []string
			for i := range 100 {
				ws = append(ws, string(rune('A'+i%26)))
			}
			return ws
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := New(1)
			var got []string
			for _, e := range tc.events {
				s.At(e.at, func() { got = append(got, e.name) })
			}
			for s.Step() {
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("order = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestEventsScheduledDuringEvent(t *testing.T) {
	s := New(1)
	var got []string
	s.At(10, func() {
		got = append(got, "a")
		s.After(0, func() { got = append(got, "a-child") }) // same instant: after already-queued "b"
		s.After(5, func() { got = append(got, "a+5") })
	})
	s.At(10, func() { got = append(got, "b") })
	s.At(15, func() { got = append(got, "c") }) // queued before a+5, same time
	for s.Step() {
	}
	want := []string{"a", "b", "a-child", "c", "a+5"}
	if !slices.Equal(got, want) {
		t.Errorf("order = %v, want %v", got, want)
	}
	if s.Now() != 15 {
		t.Errorf("Now = %v, want 15ns", s.Now())
	}
}

func TestRunUntil(t *testing.T) {
	tests := []struct {
		name    string
		times   []Time
		until   Time
		ran     int
		now     Time
		pending int
	}{
		{"empty queue advances time", nil, 100, 0, 100, 0},
		{"inclusive bound", []Time{50, 100, 101}, 100, 2, 100, 1},
		{"all before", []Time{1, 2, 3}, 10, 3, 10, 0},
		{"none before", []Time{11}, 10, 0, 10, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := New(1)
			ran := 0
			for _, at := range tc.times {
				s.At(at, func() {
					ran++
					if s.Now() != at {
						t.Errorf("event for %v ran at %v", at, s.Now())
					}
				})
			}
			s.RunUntil(tc.until)
			if ran != tc.ran || s.Now() != tc.now || s.Pending() != tc.pending {
				t.Errorf("ran=%d now=%v pending=%d, want ran=%d now=%v pending=%d",
					ran, s.Now(), s.Pending(), tc.ran, tc.now, tc.pending)
			}
		})
	}

	t.Run("never moves backwards", func(t *testing.T) {
		s := New(1)
		s.RunUntil(100)
		s.RunUntil(50)
		if s.Now() != 100 {
			t.Errorf("Now = %v after RunUntil(50), want 100ns", s.Now())
		}
	})
	t.Run("runs events scheduled by events", func(t *testing.T) {
		s := New(1)
		n := 0
		var tick func()
		tick = func() { n++; s.After(10, tick) }
		s.At(0, tick)
		s.RunUntil(95)
		if n != 10 {
			t.Errorf("ran %d chained events by 95ns, want 10", n)
		}
	})
}

func TestRunWhile(t *testing.T) {
	tests := []struct {
		name     string
		stopAt   int // cond is false once this many events ran
		times    []Time
		limit    Time
		wantRet  bool
		wantRan  int
		wantTime Time
	}{
		{"cond stops it", 2, []Time{10, 20, 30}, 100, true, 2, 20},
		{"limit stops it", 10, []Time{10, 20, 30}, 25, false, 2, 25},
		{"queue drains", 10, []Time{10, 20}, 100, false, 2, 100},
		{"cond false at start", 0, []Time{10}, 100, true, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := New(1)
			ran := 0
			for _, at := range tc.times {
				s.At(at, func() { ran++ })
			}
			ret := s.RunWhile(func() bool { return ran < tc.stopAt }, tc.limit)
			if ret != tc.wantRet || ran != tc.wantRan || s.Now() != tc.wantTime {
				t.Errorf("ret=%v ran=%d now=%v, want ret=%v ran=%d now=%v",
					ret, ran, s.Now(), tc.wantRet, tc.wantRan, tc.wantTime)
			}
		})
	}
}

func TestTimerStop(t *testing.T) {
	t.Run("prevents callback", func(t *testing.T) {
		s := New(1)
		fired := false
		tm := s.After(time.Second, func() { fired = true })
		if s.Pending() != 1 {
			t.Fatalf("Pending = %d, want 1", s.Pending())
		}
		if !tm.Stop() {
			t.Error("Stop on pending timer returned false")
		}
		if tm.Stop() {
			t.Error("second Stop returned true")
		}
		if s.Pending() != 0 {
			t.Errorf("Pending = %d after Stop, want 0", s.Pending())
		}
		s.RunUntil(FromDuration(time.Hour))
		if fired {
			t.Error("stopped timer fired")
		}
	})
	t.Run("after firing", func(t *testing.T) {
		s := New(1)
		n := 0
		tm := s.After(time.Second, func() { n++ })
		s.RunUntil(FromDuration(2 * time.Second))
		if tm.Stop() {
			t.Error("Stop after firing returned true")
		}
		if n != 1 {
			t.Errorf("fired %d times, want 1", n)
		}
	})
	t.Run("stopped by an earlier event at the same time", func(t *testing.T) {
		s := New(1)
		var b *Timer
		fired := false
		s.At(10, func() { b.Stop() })
		b = s.At(10, func() { fired = true })
		s.RunUntil(10)
		if fired {
			t.Error("timer stopped by an earlier same-time event still fired")
		}
	})
	t.Run("stop in the middle of the heap keeps order", func(t *testing.T) {
		s := New(1)
		var got []int
		var timers []*Timer
		for i := range 20 {
			timers = append(timers, s.At(Time(20-i), func() { got = append(got, 20-i) }))
		}
		for i := 0; i < 20; i += 3 {
			timers[i].Stop()
		}
		for s.Step() {
		}
		var want []int
		for v := 1; v <= 20; v++ {
			if (20-v)%3 != 0 {
				want = append(want, v)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
	t.Run("nil timer", func(t *testing.T) {
		var tm *Timer
		if tm.Stop() {
			t.Error("nil Stop returned true")
		}
	})
}

func TestSchedulingErrors(t *testing.T) {
	s := New(1)
	s.RunUntil(100)
	mustPanic(t, "At in the past", func() { s.At(99, func() {}) })
	mustPanic(t, "At nil func", func() { s.At(100, nil) })
	mustPanic(t, "Every zero period", func() { s.Every(0, func() {}) })

	// Negative After is clamped to now, like time.AfterFunc.
	fired := Time(-1)
	s.After(-time.Second, func() { fired = s.Now() })
	s.Step()
	if fired != 100 {
		t.Errorf("After(-1s) fired at %v, want 100ns", fired)
	}
}

func mustPanic(t *testing.T, name string, fn func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s: did not panic", name)
		}
	}()
	fn()
}

func TestTicker(t *testing.T) {
	s := New(1)
	var at []Time
	tk := s.Every(100*time.Millisecond, func() { at = append(at, s.Now()) })
	s.RunUntil(FromDuration(350 * time.Millisecond))
	want := []Time{
		FromDuration(100 * time.Millisecond),
		FromDuration(200 * time.Millisecond),
		FromDuration(300 * time.Millisecond),
	}
	if !slices.Equal(at, want) {
		t.Errorf("ticks at %v, want %v", at, want)
	}
	if !tk.Stop() || tk.Stop() {
		t.Error("Stop should return true once, then false")
	}
	s.RunUntil(FromDuration(time.Second))
	if len(at) != 3 {
		t.Errorf("ticker fired after Stop: %v", at)
	}
	if s.Pending() != 0 {
		t.Errorf("Pending = %d after Stop, want 0", s.Pending())
	}

	// Stop from inside the callback.
	n := 0
	var self *Ticker
	self = s.Every(time.Millisecond, func() {
		n++
		if n == 5 {
			self.Stop()
		}
	})
	s.RunUntil(FromDuration(2 * time.Second))
	if n != 5 {
		t.Errorf("self-stopping ticker fired %d times, want 5", n)
	}
}

func TestRandIsSeededPCG(t *testing.T) {
	for _, seed := range testSeeds() {
		a, b := New(seed), New(seed)
		want := rand.New(rand.NewPCG(seed, pcgStream))
		for i := range 100 {
			x, y, w := a.Rand().Uint64(), b.Rand().Uint64(), want.Uint64()
			if x != y || x != w {
				t.Fatalf("seed %d: draw %d differs: %x %x %x", seed, i, x, y, w)
			}
		}
		if New(seed).Rand().Uint64() == New(seed+1).Rand().Uint64() {
			t.Errorf("seed %d and %d give the same first draw", seed, seed+1)
		}
	}
}

func TestTraceHash(t *testing.T) {
	type rec struct {
		at      Time
		kind    string
		payload string
		fields  []uint64
	}
	hashOf := func(recs []rec) [32]byte {
		s := New(1)
		for _, r := range recs {
			s.RunUntil(r.at)
			s.Trace(r.kind, []byte(r.payload), r.fields...)
		}
		return s.TraceHash()
	}
	base := []rec{{0, "a", "xy", []uint64{1, 2}}, {5, "b", "", nil}}
	tests := []struct {
		name  string
		other []rec
		same  bool
	}{
		{"identical", []rec{{0, "a", "xy", []uint64{1, 2}}, {5, "b", "", nil}}, true},
		{"different time", []rec{{0, "a", "xy", []uint64{1, 2}}, {6, "b", "", nil}}, false},
		{"different field", []rec{{0, "a", "xy", []uint64{1, 3}}, {5, "b", "", nil}}, false},
		{"field moved to next record", []rec{{0, "a", "xy", []uint64{1}}, {5, "b", "", []uint64{2}}}, false},
		{"kind/payload boundary", []rec{{0, "ax", "y", []uint64{1, 2}}, {5, "b", "", nil}}, false},
		{"reordered", []rec{{0, "b", "", nil}, {5, "a", "xy", []uint64{1, 2}}}, false},
		{"missing record", []rec{{0, "a", "xy", []uint64{1, 2}}}, false},
	}
	want := hashOf(base)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := hashOf(tc.other); (got == want) != tc.same {
				t.Errorf("hash equal = %v, want %v", got == want, tc.same)
			}
		})
	}

	s := New(1)
	var kinds []string
	s.SetTraceHook(func(_ Time, kind string, _ []uint64, _ []byte) { kinds = append(kinds, kind) })
	h0 := s.TraceHash()
	s.Trace("x", nil)
	s.Trace("y", nil, 7)
	if s.TraceHash() == h0 || s.TraceLen() != 2 || !slices.Equal(kinds, []string{"x", "y"}) {
		t.Errorf("hash changed=%v len=%d hook saw %v", s.TraceHash() != h0, s.TraceLen(), kinds)
	}
	if h1, h2 := s.TraceHash(), s.TraceHash(); h1 != h2 {
		t.Error("TraceHash is not idempotent")
	}
}

func TestTime(t *testing.T) {
	tm := FromDuration(1500 * time.Millisecond)
	if tm.Seconds() != 1.5 || tm.Duration() != 1500*time.Millisecond || tm.String() != "1.5s" {
		t.Errorf("got %v %v %q", tm.Seconds(), tm.Duration(), tm.String())
	}
	if tm.Add(500*time.Millisecond) != FromDuration(2*time.Second) || tm.Sub(FromDuration(time.Second)) != 500*time.Millisecond {
		t.Error("Add/Sub wrong")
	}
}
