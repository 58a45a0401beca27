package mux

import (
	"testing"

	"github.com/braid-bft/braid/app/bank"
	"github.com/braid-bft/braid/app/kv"
)

func TestRoutesAndSnapshots(t *testing.T) {
	a := New(kv.Shared)
	alice := []byte("alice-key")
	if err := kv.DecodePut(a.Execute(alice, kv.Put([]byte("k"), []byte("v")))); err != nil {
		t.Fatalf("kv put through mux: %v", err)
	}
	if err := bank.DecodeOpen(a.Execute(alice, bank.Open("alice"))); err != nil {
		t.Fatalf("bank open through mux: %v", err)
	}
	if err := bank.DecodeDeposit(a.Execute(alice, bank.Deposit("alice", 50))); err != nil {
		t.Fatal(err)
	}
	v, found, err := kv.DecodeGet(a.Execute(alice, kv.Get([]byte("k"))))
	if err != nil || !found || string(v) != "v" {
		t.Fatalf("kv get through mux = %q %v %v", v, found, err)
	}
	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	b := New(kv.Shared)
	if err := b.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if a.Digest() != b.Digest() {
		t.Fatal("digest differs after snapshot/restore")
	}
	bal, err := bank.DecodeBalance(b.Execute(alice, bank.Balance("alice")))
	if err != nil || bal != 50 {
		t.Fatalf("balance after restore = %d, %v", bal, err)
	}
	before := b.Digest()
	for _, bad := range [][]byte{nil, snap[:5], append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, snap...)} {
		if err := b.Restore(bad); err == nil {
			t.Fatalf("restore accepted %d bad bytes", len(bad))
		}
	}
	if b.Digest() != before {
		t.Fatal("failed restore changed state")
	}
	if !a.ReadOnly(kv.Get([]byte("k"))) || !a.ReadOnly(bank.Balance("alice")) || a.ReadOnly(bank.Deposit("alice", 1)) {
		t.Fatal("ReadOnly routed wrongly")
	}
}

// A clone is the same state, and from then on its own: writes to either —
// kv puts and deletes, bank deposits and transfers — leave the other's
// snapshot and digest where they were.
func TestCloneIsIndependent(t *testing.T) {
	alice, bob := []byte("alice-key"), []byte("bob-key")
	a := New(kv.Shared)
	for _, op := range [][]byte{kv.Put([]byte("k"), []byte("v")), bank.Open("alice"), bank.Deposit("alice", 100)} {
		a.Execute(alice, op)
	}
	a.Execute(bob, bank.Open("bob"))
	snapshot := func(x *App) string {
		s, err := x.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		return string(s)
	}
	before, digest := snapshot(a), a.Digest()
	c := a.Clone()
	if snapshot(c) != before || c.Digest() != digest {
		t.Fatal("a clone differs from the state it was cloned from")
	}
	a.Execute(alice, kv.Put([]byte("k"), []byte("w")))
	a.Execute(alice, kv.Put([]byte("k2"), []byte("x")))
	a.Execute(alice, bank.Transfer("alice", "bob", 0, 30))
	a.Execute(alice, bank.Deposit("alice", 5))
	if snapshot(c) != before || c.Digest() != digest {
		t.Fatal("writes to the original changed its clone")
	}
	after, afterDigest := snapshot(a), a.Digest()
	c.Execute(alice, kv.Delete([]byte("k")))
	c.Execute(alice, bank.Transfer("alice", "bob", 0, 60))
	if snapshot(a) != after || a.Digest() != afterDigest {
		t.Fatal("writes to the clone changed the original")
	}
	bal, err := bank.DecodeBalance(c.Execute(bob, bank.Balance("bob")))
	if err != nil || bal != 60 {
		t.Fatalf("bob's balance in the clone = %d, %v; want 60", bal, err)
	}
	// And a snapshot restored from each reaches the digest each has.
	for _, x := range []*App{a, c} {
		y := New(kv.Shared)
		if err := y.Restore([]byte(snapshot(x))); err != nil || y.Digest() != x.Digest() {
			t.Fatalf("restore of a clone's snapshot: %v, digest equal %v", err, y.Digest() == x.Digest())
		}
	}
}

// RestoreWithDigest adopts the lanes at once and its check recomputes them:
// honest lanes pass, and a lie in either application's half is caught even
// after the restored state has moved on; lanes of the wrong size change
// nothing.
func TestRestoreWithDigestChecksTheLanes(t *testing.T) {
	a := New(kv.Shared)
	alice := []byte("alice-key")
	for i := range 100 {
		a.Execute(alice, kv.Put([]byte{byte(i)}, []byte("v")))
	}
	a.Execute(alice, bank.Open("alice"))
	a.Execute(alice, bank.Deposit("alice", 7))
	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	lanes := a.DigestLanes()
	b := New(kv.Shared)
	check, err := b.RestoreWithDigest(snap, lanes)
	if err != nil || b.Digest() != a.Digest() {
		t.Fatalf("honest lanes: error %v, digest matches %v", err, b.Digest() == a.Digest())
	}
	b.Execute(alice, kv.Put([]byte("later"), []byte("x"))) // the check covers the restored records only
	if err := check(); err != nil {
		t.Fatalf("honest lanes failed their check: %v", err)
	}
	for _, at := range []int{0, len(lanes) - 1} { // kv's half, bank's half
		bad := append([]byte(nil), lanes...)
		bad[at] ^= 0x80
		c := New(kv.Shared)
		check, err := c.RestoreWithDigest(snap, bad)
		if err != nil {
			t.Fatal(err)
		}
		if check() == nil {
			t.Fatalf("lanes altered at byte %d passed their check", at)
		}
	}
	c := New(kv.Shared)
	empty := c.Digest()
	if _, err := c.RestoreWithDigest(snap, lanes[1:]); err == nil || c.Digest() != empty {
		t.Fatalf("short lanes: error %v, state changed %v", err, c.Digest() != empty)
	}
}
