package msg

import (
	"bytes"
	"testing"
)

func TestInstanceChangeOpRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		target uint32
		op     []byte
	}{{0, nil}, {3, []byte("put k v")}, {1<<32 - 1, bytes.Repeat([]byte{7}, MaxOpSize-InstanceChangeOverhead)}} {
		b := InstanceChangeOp(tc.target, tc.op)
		if len(b) != InstanceChangeOverhead+len(tc.op) || len(b) > MaxOpSize {
			t.Fatalf("InstanceChangeOp(%d, %d bytes) has %d bytes", tc.target, len(tc.op), len(b))
		}
		target, inner, ok := ParseInstanceChange(b)
		if !ok || target != tc.target || !bytes.Equal(inner, tc.op) {
			t.Fatalf("ParseInstanceChange(InstanceChangeOp(%d, %q)) = %d, %q, %v", tc.target, tc.op, target, inner, ok)
		}
	}
	// Not instance changes: ordinary ops, a truncated header, the v1 format.
	v1 := append([]byte("\x00braid/instance-change/v1"), 0, 0, 0, 1)
	for _, op := range [][]byte{nil, []byte("put k v"), InstanceChangeOp(1, nil)[:InstanceChangeOverhead-1], v1} {
		if _, _, ok := ParseInstanceChange(op); ok {
			t.Errorf("ParseInstanceChange(%q) recognised an instance change", op)
		}
	}
}

func TestReplyOutcomeOutOfRange(t *testing.T) {
	b := Marshal(&Reply{Client: 1, Number: 2, Outcome: NotMoved, Instance: 4, Result: []byte("r"), From: 1})
	const off = 1 + 8 + 8 + 8 + 4 // kind, client, number, view, primary
	if Outcome(b[off]) != NotMoved {
		t.Fatalf("outcome not at offset %d", off)
	}
	for _, v := range []byte{byte(maxOutcome) + 1, 0xff} {
		c := append([]byte(nil), b...)
		c[off] = v
		mustMalformed(t, "outcome "+itoa(int(v)), c)
	}
}

func TestPrimaryOf(t *testing.T) {
	seen := map[ReplicaID]bool{}
	for i := uint32(0); i < 4; i++ {
		p := PrimaryOf(4, i, 0)
		if seen[p] {
			t.Fatalf("instances share initial primary %d", p)
		}
		seen[p] = true
	}
	if PrimaryOf(4, 3, 2) != 1 {
		t.Fatalf("PrimaryOf(4, 3, 2) = %d, want (3+2) mod 4 = 1", PrimaryOf(4, 3, 2))
	}
}

// HomeInstance spreads clients over the m instances round-robin, and every
// layer (rcc, the SDK, the simulator, the demo) uses it.
func TestHomeInstance(t *testing.T) {
	for m := 1; m <= 10; m++ {
		count := make([]int, m)
		for c := ClientID(0); c < ClientID(10*m); c++ {
			h := HomeInstance(c, m)
			if int(h) >= m || h != uint32(uint64(c)%uint64(m)) {
				t.Fatalf("m=%d client %d: home %d", m, c, h)
			}
			count[h]++
		}
		for i, k := range count {
			if k != 10 {
				t.Fatalf("m=%d: instance %d serves %d of %d clients, want 10", m, i, k, 10*m)
			}
		}
	}
}
