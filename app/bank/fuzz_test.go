package bank

import (
	"bytes"
	"testing"

	"github.com/braid-bft/braid/app"
	"github.com/braid-bft/braid/app/apptest"
)

func seededBank(t testing.TB) *Bank {
	bk := New()
	for i, c := range []app.Caller{alice, bob, eve} {
		name := names[i]
		bk.Execute(c, Open(name))
		bk.Execute(c, Deposit(name, 1000*uint64(i+1)))
	}
	return bk
}

func FuzzExecute(f *testing.F) {
	f.Add(Open("carol"), byte(0))
	f.Add(Deposit("alice", 5), byte(1))
	f.Add(Deposit("bob", ^uint64(0)), byte(2))
	f.Add(Balance("eve"), byte(3))
	f.Add(Transfer("alice", "bob", 500, 200), byte(0))
	f.Add(Transfer("bob", "eve", 400, 3000), byte(1))
	f.Add([]byte{opTransfer, 0xff, 0xff, 0xff, 0xff}, byte(2))
	f.Add([]byte{}, byte(3))
	f.Fuzz(func(t *testing.T, op []byte, sel byte) {
		caller := []app.Caller{alice, bob, eve, nil}[sel%4]
		bk := seededBank(t)
		_, decodeErr := decodeOp(op)
		apptest.Execute(t, bk, caller, op, decodeErr)
		checkDigest(t, bk)
		// Money is only created by deposits.
		var total uint64
		for _, n := range names {
			if v, err := DecodeBalance(bk.Execute(nil, Balance(n))); err == nil {
				total += v
			}
		}
		if op := op; len(op) > 0 && op[0] != opDeposit && total != 6000 {
			t.Fatalf("non-deposit op changed total money to %d", total)
		}
	})
}

func FuzzRestore(f *testing.F) {
	valid := mustSnapshot(f, seededBank(f))
	f.Add(valid)
	f.Add(valid[:len(valid)-1])
	f.Add([]byte("BRBK\x01\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte("BRBK\x01\xff\xff\xff\xff\xff\xff\xff\xff"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		bk := New()
		bk.Execute(bob, Open("keep"))
		if !apptest.Restore(t, bk, data) {
			return
		}
		checkDigest(t, bk)
		bk.Execute(alice, Open("after-restore"))
		checkDigest(t, bk)
	})
}

// BenchmarkTransfer measures executed transfers between 1000 accounts (four
// element-hash updates each: remove and re-add both accounts).
func BenchmarkTransfer(b *testing.B) {
	const n = 1000
	bk := New()
	accts := make([]string, n)
	owners := make([]app.Caller, n)
	for i := range accts {
		accts[i] = "acct-" + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676))
		owners[i] = bytes.Repeat([]byte{byte(i), byte(i >> 8)}, 16)
		bk.Execute(owners[i], Open(accts[i]))
		bk.Execute(owners[i], Deposit(accts[i], 1<<40))
	}
	ops := make([][]byte, n)
	for i := range ops {
		ops[i] = Transfer(accts[i], accts[(i*7+1)%n], 0, 1)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		j := i % n
		if ok, err := DecodeTransfer(bk.Execute(owners[j], ops[j])); err != nil || !ok {
			b.Fatalf("transfer failed: %v", err)
		}
		i++
	}
}
