package quorum

import "testing"

// The definitions against their purpose, for every n a cluster may have:
// two quorums intersect in more than f replicas, a quorum is reachable with
// f replicas silent, and f+1 include a correct replica.
func TestArithmetic(t *testing.T) {
	for n := 1; n <= 100; n++ {
		f, q := Faults(n), Size(n)
		if 3*f+1 > n || 3*(f+1)+1 <= n {
			t.Fatalf("n=%d: f=%d is not the largest f with 3f+1 ≤ n", n, f)
		}
		if 2*q-n <= f {
			t.Fatalf("n=%d: two quorums of %d intersect in %d ≤ f=%d replicas", n, q, 2*q-n, f)
		}
		if q > n-f {
			t.Fatalf("n=%d: quorum %d needs some of the f=%d faulty replicas", n, q, f)
		}
		if Vouch(n) != f+1 || Correct(n) != n-f {
			t.Fatalf("n=%d: vouch %d, correct %d", n, Vouch(n), Correct(n))
		}
	}
	for n, want := range map[int][2]int{4: {1, 3}, 7: {2, 5}, 10: {3, 7}, 5: {1, 4}} {
		if Faults(n) != want[0] || Size(n) != want[1] {
			t.Fatalf("n=%d: f=%d q=%d, want %v", n, Faults(n), Size(n), want)
		}
	}
}
