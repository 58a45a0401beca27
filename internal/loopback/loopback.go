// Package loopback finds ports for local clusters (braid demo, braid bench,
// the loopback tests) that stay free until the replicas bind them.
package loopback

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strings"
)

// EphemeralRange is the kernel's range of source ports for outgoing
// connections (Linux: /proc/sys/net/ipv4/ip_local_port_range).
func EphemeralRange() (lo, hi int, ok bool) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0, false
	}
	if n, _ := fmt.Sscan(strings.TrimSpace(string(b)), &lo, &hi); n != 2 {
		return 0, 0, false
	}
	return lo, hi, lo > 0 && hi >= lo
}

// FreeBase finds k consecutive free loopback ports for a local
// cluster, outside the kernel's ephemeral range: a port in that range can
// be taken as the source port of any outgoing connection (a replica
// dialling a peer that is not listening yet) between this check and the
// replica's bind, which then fails with "address already in use". Where the
// range is unknown, ports come from 20000..32767 (below Linux's default).
func FreeBase(k int) (int, error) {
	const low, high = 10000, 65535
	lo, hi, ok := EphemeralRange()
	if !ok {
		lo, hi = 32768, 60999
	}
	// The candidate blocks: below the ephemeral range, then above it.
	var spans [][2]int
	if lo-k > 20000 {
		spans = append(spans, [2]int{20000, lo - k})
	} else if lo-k > low {
		spans = append(spans, [2]int{low, lo - k})
	}
	if hi+1 <= high-k {
		spans = append(spans, [2]int{hi + 1, high - k})
	}
	if len(spans) == 0 {
		return 0, fmt.Errorf("no room for %d loopback ports outside the ephemeral range %d..%d", k, lo, hi)
	}
	for try := 0; try < 200; try++ {
		sp := spans[rand.IntN(len(spans))]
		base := sp[0] + rand.IntN(sp[1]-sp[0]+1)
		free := true
		for p := base; p < base+k && free; p++ {
			if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err != nil {
				free = false
			} else {
				l.Close()
			}
		}
		if free {
			return base, nil
		}
	}
	return 0, errors.New("no block of free loopback ports found outside the ephemeral range")
}
