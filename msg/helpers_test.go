package msg

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"math"
	"reflect"
)

// Shared fixtures for the msg tests: one or more sample messages of every
// kind, a normaliser for nil-vs-empty slices, and a structural size estimate.

func fill(n int, seed byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = seed + byte(i*7)
	}
	return p
}

func testSig(seed byte) []byte { return fill(64, seed) }

func testDigest(seed byte) Digest {
	return Digest(sha256.Sum256([]byte{seed}))
}

func testRequest(client, number uint64, opLen int) Request {
	return Request{
		Client: ClientID(client),
		Number: number,
		Op:     fill(opLen, byte(client+number)),
		Sig:    testSig(byte(number)),
	}
}

func testBatch(n, opLen int) Batch {
	var b Batch
	for i := 0; i < n; i++ {
		b.Requests = append(b.Requests, testRequest(uint64(i%7+1), uint64(i+1), opLen))
	}
	return b
}

func testPrePrepare(inst uint32, view, seq uint64, batch Batch, from ReplicaID) PrePrepare {
	return PrePrepare{
		Instance: inst, View: view, Seq: seq,
		Digest: batch.Digest(), Batch: batch, From: from, Sig: testSig(byte(seq) + 1),
	}
}

func testNullPrePrepare(inst uint32, view, seq uint64, from ReplicaID) PrePrepare {
	return PrePrepare{Instance: inst, View: view, Seq: seq, Digest: NullDigest, Null: true, From: from, Sig: testSig(byte(seq) + 2)}
}

func testPrepare(inst uint32, view, seq uint64, d Digest, from ReplicaID) Prepare {
	return Prepare{Instance: inst, View: view, Seq: seq, Digest: d, From: from, Sig: testSig(byte(from) + 3)}
}

func testCheckpoint(inst uint32, seq uint64, from ReplicaID) Checkpoint {
	return Checkpoint{Instance: inst, Seq: seq, State: testDigest(byte(seq)), From: from, Sig: testSig(byte(from) + 4)}
}

func testViewChange(inst uint32, newView uint64, from ReplicaID) ViewChange {
	vc := ViewChange{Instance: inst, NewView: newView, StableSeq: 100, From: from, Sig: testSig(byte(from) + 5)}
	for r := ReplicaID(0); r < 3; r++ {
		vc.CheckpointProof = append(vc.CheckpointProof, testCheckpoint(inst, 100, r))
	}
	for s := uint64(101); s <= 102; s++ {
		pp := testPrePrepare(inst, newView-1, s, testBatch(int(s-99), 16), 0)
		proof := PreparedProof{PrePrepare: pp}
		for r := ReplicaID(1); r <= 2; r++ {
			proof.Prepares = append(proof.Prepares, testPrepare(inst, newView-1, s, pp.Digest, r))
		}
		vc.Prepared = append(vc.Prepared, proof)
	}
	return vc
}

func testNewView(inst uint32, view uint64, from ReplicaID) NewView {
	nv := NewView{Instance: inst, View: view, From: from, Sig: testSig(byte(from) + 6)}
	for r := ReplicaID(0); r < 3; r++ {
		nv.ViewChanges = append(nv.ViewChanges, testViewChange(inst, view, r))
	}
	nv.PrePrepares = append(nv.PrePrepares,
		testPrePrepare(inst, view, 101, testBatch(2, 16), from),
		testPrePrepare(inst, view, 102, testBatch(3, 16), from),
		testNullPrePrepare(inst, view, 103, from),
	)
	return nv
}

type sample struct {
	name string
	m    Message
}

// samples returns fresh sample messages of every kind, including edge cases.
func samples() []sample {
	big := testBatch(100, 256)
	maxBatch := testBatch(MaxBatchSize, 1)
	return []sample{
		{"request", &ClientRequest{Instance: 3, Request: testRequest(42, 7, 32)}},
		{"request/empty", &ClientRequest{}},
		{"request/max-op-and-sig", &ClientRequest{Instance: math.MaxUint32, Request: Request{Client: math.MaxUint64, Number: math.MaxUint64, Op: fill(MaxOpSize, 1), Sig: fill(MaxSigSize, 2)}}},
		{"preprepare/empty-batch", &PrePrepare{Instance: 1, View: 2, Seq: 3, Digest: (&Batch{}).Digest(), From: 1, Sig: testSig(9)}},
		{"preprepare/null", ptr(testNullPrePrepare(1, 5, 77, 2))},
		{"preprepare/one", ptr(testPrePrepare(0, 1, 1, testBatch(1, 8), 0))},
		{"preprepare/100x256", ptr(testPrePrepare(2, 9, 1000, big, 1))},
		{"preprepare/max-batch", ptr(testPrePrepare(2, 9, 1001, maxBatch, 1))},
		{"preprepare/unsigned", &PrePrepare{Seq: 1}},
		{"prepare", ptr(testPrepare(1, 2, 3, testDigest(1), 3))},
		{"prepare/max", &Prepare{Instance: math.MaxUint32, View: math.MaxUint64, Seq: math.MaxUint64, Digest: testDigest(2), From: math.MaxUint32, Sig: fill(MaxSigSize, 3)}},
		{"commit", &Commit{Instance: 1, View: 2, Seq: 3, Digest: testDigest(1), From: 3, Sig: testSig(1)}},
		{"commit/unsigned", &Commit{Instance: 1, View: 2, Seq: 3, Digest: testDigest(1), From: 3}},
		{"checkpoint", ptr(testCheckpoint(4, 200, 2))},
		{"viewchange/empty", &ViewChange{Instance: 1, NewView: 2, From: 1, Sig: testSig(1)}},
		{"viewchange/full", ptr(testViewChange(1, 4, 3))},
		{"newview/empty", &NewView{Instance: 1, View: 2, From: 2, Sig: testSig(2)}},
		{"newview/full", ptr(testNewView(1, 4, 0))},
		{"status", &Status{Instance: 1, View: 2, StableSeq: 3, NextSeq: 4, From: 5}},
		{"status/zero", &Status{}},
		{"reply", &Reply{Client: 9, Number: 10, View: 11, Result: []byte("ok"), From: 3}},
		{"reply/empty", &Reply{Client: 9, Number: 10, From: 3}},
		{"reply/max-result", &Reply{Client: 9, Number: 10, Result: fill(MaxOpSize, 5), From: 3}},
		{"reply/moved", &Reply{Client: 9, Number: 10, View: 1, Primary: 2, Outcome: Moved, Instance: 3, Result: []byte("r"), From: 3}},
		{"reply/not-moved", &Reply{Client: 9, Number: 10, Outcome: NotMoved, Instance: math.MaxUint32, From: 3}},
	}
}

func ptr[T any](v T) *T { return &v }

// normalize replaces every empty (non-nil, zero-length) slice in v with nil,
// recursively, which is the canonical form the decoder produces.
func normalize(v any) {
	normalizeValue(reflect.ValueOf(v))
}

func normalizeValue(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			normalizeValue(v.Elem())
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			normalizeValue(v.Field(i))
		}
	case reflect.Slice:
		if v.IsNil() {
			return
		}
		if v.Len() == 0 {
			if v.CanSet() {
				v.Set(reflect.Zero(v.Type()))
			}
			return
		}
		for i := 0; i < v.Len(); i++ {
			normalizeValue(v.Index(i))
		}
	}
}

// heapSize estimates the heap bytes reachable from v: the backing arrays of
// every slice (by capacity) and every pointed-to value.
func heapSize(v any) int {
	return heapSizeValue(reflect.ValueOf(v))
}

func heapSizeValue(v reflect.Value) int {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return 0
		}
		return int(v.Type().Elem().Size()) + heapSizeValue(v.Elem())
	case reflect.Interface:
		if v.IsNil() {
			return 0
		}
		return heapSizeValue(v.Elem())
	case reflect.Struct:
		n := 0
		for i := 0; i < v.NumField(); i++ {
			n += heapSizeValue(v.Field(i))
		}
		return n
	case reflect.Slice:
		if v.IsNil() {
			return 0
		}
		n := v.Cap() * int(v.Type().Elem().Size())
		for i := 0; i < v.Len(); i++ {
			n += heapSizeValue(v.Index(i))
		}
		return n
	}
	return 0
}

// be32 is a big-endian uint32, for hand-crafting encodings.
func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
