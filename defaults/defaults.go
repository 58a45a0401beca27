// Package defaults holds the protocol's default parameters, once. The PBFT
// core, the RCC layer and the cluster configuration all take their defaults
// from here (and docs/config.md is checked against it), so none of them can
// drift from the others. It imports only quorum, so a client that reads a
// cluster file does not pull in the consensus cores to learn a default.
package defaults

import "github.com/braid-bft/braid/quorum"

const (
	// MaxBatch is the most requests a primary puts in one batch.
	MaxBatch = 100
	// CheckpointInterval is the rounds between checkpoints.
	CheckpointInterval = 16
	// WindowIntervals sizes the watermark window: Window = WindowIntervals
	// × CheckpointInterval.
	WindowIntervals = 4
	// BatchTicks is how long a primary holds a partial batch, in ticks.
	BatchTicks = 1
	// PipelineDepth bounds a primary's undecided proposals (1 measured best:
	// docs/benchmarks.md).
	PipelineDepth = 1
	// RequestTimeout, ProgressTimeout and ViewChangeTimeout are in ticks.
	RequestTimeout    = 40
	ProgressTimeout   = 40
	ViewChangeTimeout = 40
	// RetransmitTicks is the period of the stuck-replica beacon and of
	// view-change resends.
	RetransmitTicks = 10
)

// Sigma is σ for a window of w rounds: w/2, at least 2. The sweep in
// sim/sweep_test.go (docs/protocol.md R4) found no false suspicions at
// σ = 16 with a 32-round window under 5% loss and 20 ms jitter, against
// 11–22 at σ = 8 and 40–81 at σ ≤ 4, with detection of a throttling primary
// unaffected.
func Sigma(w uint64) uint64 { return max(w/2, 2) }

// Epsilon is ε for a checkpoint interval of k rounds: k/2, at least 1.
func Epsilon(k uint64) uint64 { return max(k/2, 1) }

// MaxSkip caps in-place recovery's doubling penalty: 64·ε.
func MaxSkip(epsilon uint64) uint64 { return 64 * epsilon }

// Instances is m for n replicas: n − f, the most that unified primary
// replacement supports (a spare replica for every instance's primary), and
// at least 1.
func Instances(n int) int { return max(quorum.Correct(n), 1) }
