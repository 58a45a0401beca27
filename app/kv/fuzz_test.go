package kv

import (
	"bytes"
	"testing"

	"github.com/braid-bft/braid/app"
	"github.com/braid-bft/braid/app/apptest"
)

func seededStore(t testing.TB, scope Scope) *Store {
	s := New(Config{Scope: scope})
	for _, c := range []app.Caller{alice, bob} {
		for _, k := range []string{"", "a", "k", "key", "z"} {
			s.Execute(c, Put([]byte(k), []byte("v"+k)))
		}
		// Integers at and beyond incr's edges, so that fuzzing reaches its
		// successes, overflows and non-canonical refusals.
		for k, v := range seededInts {
			s.Execute(c, Put([]byte(k), []byte(v)))
		}
	}
	return s
}

var seededInts = map[string]string{
	"i0": "0", "i-1": "-1", "imax": "9223372036854775807", "imin": "-9223372036854775808",
	"i01": "01", "i-0": "-0", "i+1": "+1",
}

func FuzzExecute(f *testing.F) {
	f.Add(Put([]byte("k"), []byte("v")), byte(0))
	f.Add(Get([]byte("a")), byte(1))
	f.Add(Delete([]byte("key")), byte(2))
	f.Add(CAS([]byte("a"), []byte("va"), false, []byte("new")), byte(3))
	f.Add(CAS([]byte("n"), nil, true, []byte("new")), byte(0))
	f.Add(Scan([]byte("a"), []byte("z"), 3), byte(1))
	f.Add([]byte{opScan, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, byte(2))
	f.Add(Incr([]byte("k"), 1), byte(0))
	f.Add(Incr([]byte("a"), -1<<63), byte(3))
	f.Add(Incr([]byte("i0"), 41), byte(0))
	f.Add(Incr([]byte("i-1"), 1), byte(2))
	f.Add(Incr([]byte("imax"), 1), byte(0))
	f.Add(Incr([]byte("imax"), -1), byte(1))
	f.Add(Incr([]byte("imin"), -1), byte(0))
	f.Add(Incr([]byte("imin"), 1<<63-1), byte(3))
	f.Add(Incr([]byte("i01"), 1), byte(0))
	f.Add(Incr([]byte("i-0"), 1), byte(2))
	f.Add(Incr([]byte("missing"), -1<<63), byte(0))
	f.Add([]byte{}, byte(5))
	f.Fuzz(func(t *testing.T, op []byte, sel byte) {
		scope := Shared
		if sel&1 == 1 {
			scope = PerClient
		}
		caller := []app.Caller{alice, bob, nil, make(app.Caller, app.MaxCallerLen+1)}[(sel>>1)%4]
		s := seededStore(t, scope)
		_, decodeErr := decodeOp(op)
		apptest.Execute(t, s, caller, op, decodeErr)
		checkDigest(t, s)
	})
}

func FuzzRestore(f *testing.F) {
	shared, perClient := mustSnapshot(f, seededStore(f, Shared)), mustSnapshot(f, seededStore(f, PerClient))
	f.Add(shared)
	f.Add(perClient)
	f.Add(shared[:len(shared)-3])
	f.Add([]byte("BRKV\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte("BRKV\x01\x00\xff\xff\xff\xff\xff\xff\xff\xff"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, scope := range []Scope{Shared, PerClient} {
			s := New(Config{Scope: scope})
			s.Execute(alice, Put([]byte("keep"), []byte("me")))
			if !apptest.Restore(t, s, data) {
				continue
			}
			// Accepted snapshots, canonical as Restore checked, are also
			// self-consistent.
			checkDigest(t, s)
			// The restored store keeps working.
			s.Execute(alice, Put([]byte("after"), []byte("restore")))
			checkDigest(t, s)
		}
	})
}

// BenchmarkPut measures a put into a store holding 100k keys, cycling over
// existing keys (overwrite: two element hashes) and fresh ones (insert: one
// element hash plus tree rebalancing).
func BenchmarkPut(b *testing.B) {
	for _, mode := range []string{"overwrite", "insert"} {
		b.Run(mode, func(b *testing.B) {
			s := New(Config{Scope: PerClient})
			const n = 100_000
			keys := make([][]byte, n)
			for i := range keys {
				keys[i] = []byte{byte(i >> 16), byte(i >> 8), byte(i), 'k'}
				s.Execute(alice, Put(keys[i], []byte("initial value")))
			}
			ops := make([][]byte, n)
			for i := range ops {
				k := keys[(i*7919)%n]
				if mode == "insert" {
					k = append(bytes.Clone(k), 'x')
				}
				ops[i] = Put(k, bytes.Repeat([]byte{'v'}, 100))
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i == n { // every key inserted: start over so inserts stay inserts
					b.StopTimer()
					for _, op := range ops {
						o, _ := decodeOp(op)
						s.Execute(alice, Delete(o.key))
					}
					b.StartTimer()
					i = 0
				}
				s.Execute(alice, ops[i])
				i++
			}
		})
	}
}

func BenchmarkGet(b *testing.B) {
	s := New(Config{})
	const n = 100_000
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = []byte{byte(i >> 16), byte(i >> 8), byte(i)}
		s.Execute(alice, Put(keys[i], []byte("value")))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s.Execute(alice, Get(keys[i%n]))
		i++
	}
}
