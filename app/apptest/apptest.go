// Package apptest holds the checks every replicated application's tests
// make the same way: snapshots that must succeed, an incrementally kept
// digest that must match one recomputed from scratch, and the contracts of
// Execute and Restore on arbitrary input (fuzzing).
package apptest

import (
	"bytes"
	"testing"

	"github.com/braid-bft/braid/app"
)

// Callers the applications' tests act as.
var (
	Alice = app.Caller(bytes.Repeat([]byte{0xa1}, 32))
	Bob   = app.Caller(bytes.Repeat([]byte{0xb0}, 32))
	Eve   = app.Caller(bytes.Repeat([]byte{0xee}, 32))
)

// State is what the checks need from an application.
type State interface {
	Execute(caller app.Caller, op []byte) []byte
	ReadOnly(op []byte) bool
	Digest() [32]byte
	Snapshot() ([]byte, error)
	Restore(snapshot []byte) error
}

// Snapshot returns s's snapshot or fails the test.
func Snapshot(t testing.TB, s State) []byte {
	t.Helper()
	b, err := s.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	return b
}

// CheckDigest restores s's snapshot into fresh (an empty state of the same
// configuration; Restore hashes every record from scratch) and fails the
// test unless its digest equals s's incrementally maintained one.
func CheckDigest(t testing.TB, s, fresh State) {
	t.Helper()
	if err := fresh.Restore(Snapshot(t, s)); err != nil {
		t.Fatalf("Restore of own snapshot: %v", err)
	}
	if got, want := s.Digest(), fresh.Digest(); got != want {
		t.Fatalf("incremental digest %x != recomputed %x", got, want)
	}
}

// Execute runs op on s and checks the contract of Execute for any input:
// the result decodes; the status is BadOp exactly when the operation does
// not decode (decodeErr); an operation that fails or is read-only changes
// neither the digest nor the snapshot. It returns the status.
func Execute(t testing.TB, s State, caller app.Caller, op []byte, decodeErr error) app.Status {
	t.Helper()
	digest, snap := s.Digest(), Snapshot(t, s)
	readOnly := s.ReadOnly(op)
	res := s.Execute(caller, op)
	st, _, err := app.DecodeResult(res)
	if err != nil {
		t.Fatalf("malformed result %x: %v", res, err)
	}
	if (st == app.StatusBadOp) != (decodeErr != nil) {
		t.Fatalf("status %v but decode error %v", st, decodeErr)
	}
	if st != app.StatusOK || readOnly {
		if s.Digest() != digest || !bytes.Equal(Snapshot(t, s), snap) {
			t.Fatalf("op with status %v (read-only %v) changed state", st, readOnly)
		}
	}
	return st
}

// Restore restores data into s and checks the contract of Restore for any
// input: a rejected snapshot changes neither the digest nor the snapshot,
// and an accepted one is canonical (s's snapshot is data again, so one state
// has one encoding). It reports whether data was accepted; the caller then
// checks the restored digest with CheckDigest, as only it can make a fresh
// state.
func Restore(t testing.TB, s State, data []byte) bool {
	t.Helper()
	digest, snap := s.Digest(), Snapshot(t, s)
	if err := s.Restore(data); err != nil {
		if s.Digest() != digest || !bytes.Equal(Snapshot(t, s), snap) {
			t.Fatalf("failed Restore (%v) changed state", err)
		}
		return false
	}
	if got := Snapshot(t, s); !bytes.Equal(got, data) {
		t.Fatalf("accepted snapshot is not canonical:\n in  %x\n out %x", data, got)
	}
	return true
}
