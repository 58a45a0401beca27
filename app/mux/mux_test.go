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
