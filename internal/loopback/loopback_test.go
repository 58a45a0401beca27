package loopback

import (
	"fmt"
	"net"
	"testing"
)

// The ports a local cluster is given must stay free until its replicas
// bind them, a moment later. Ports in the kernel's ephemeral range do not:
// any outgoing connection (a replica dialling a peer that is not up yet)
// may take one as its source port, and the replica then fails with
// "address already in use" (seen: braid bench, one run in six).
func TestFreeBaseAvoidsEphemeralRange(t *testing.T) {
	lo, hi, ok := EphemeralRange()
	if !ok {
		t.Skip("no ephemeral port range on this system")
	}
	for i := 0; i < 20; i++ {
		base, err := FreeBase(12)
		if err != nil {
			t.Fatal(err)
		}
		if base+12 > lo && base <= hi {
			t.Fatalf("ports %d..%d overlap the ephemeral range %d..%d", base, base+11, lo, hi)
		}
		for p := base; p < base+12; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				t.Fatalf("port %d of the block is not free: %v", p, err)
			}
			l.Close()
		}
	}
}
