package defaults

import "testing"

func TestDerived(t *testing.T) {
	for _, tc := range []struct{ w, k, sigma, epsilon uint64 }{{64, 16, 32, 8}, {2, 1, 2, 1}, {0, 0, 2, 1}, {32, 3, 16, 1}} {
		if Sigma(tc.w) != tc.sigma || Epsilon(tc.k) != tc.epsilon {
			t.Errorf("w=%d k=%d: sigma %d epsilon %d, want %d %d", tc.w, tc.k, Sigma(tc.w), Epsilon(tc.k), tc.sigma, tc.epsilon)
		}
	}
	if MaxSkip(8) != 512 {
		t.Errorf("MaxSkip(8) = %d", MaxSkip(8))
	}
	for n, m := range map[int]int{1: 1, 4: 3, 7: 5, 10: 7} {
		if Instances(n) != m {
			t.Errorf("Instances(%d) = %d, want %d", n, Instances(n), m)
		}
	}
	if Sigma(WindowIntervals*CheckpointInterval)+CheckpointInterval >= WindowIntervals*CheckpointInterval {
		t.Error("the default sigma plus a checkpoint interval reaches the default window: healthy instances would stall before a laggard is suspected")
	}
}
