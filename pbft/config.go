package pbft

import (
	"errors"
	"fmt"
	"github.com/braid-bft/braid/defaults"

	"github.com/braid-bft/braid/msg"
)

// Config parameterises one instance on one replica. Durations are in ticks:
// the core has no clock, the shell decides how long a tick is.
type Config struct {
	ID       msg.ReplicaID
	N        int
	Instance uint32

	// Primary is the injected rule that names view v's primary: the
	// replica that proposes fresh batches in view v. Every replica must
	// use the same rule; the RCC layer supplies one that keeps the m
	// instances' primaries distinct. It may answer msg.NoReplica while the
	// view's primary is not yet agreed; call PrimaryChanged once it is.
	Primary func(view uint64) msg.ReplicaID
	// Leader names the replica that gathers view changes and sends the
	// NewView for view v. It must be known without further agreement
	// (a static rule). Default: Primary.
	Leader func(view uint64) msg.ReplicaID
	// Skip is how many no-op sequence numbers a NewView for view v appends
	// after the range it re-proposes (the paradigm's skip ε, or its doubling
	// restart penalty); the first of them is marked as the instance's
	// failure decision. Default: none (plain PBFT).
	Skip func(view uint64) uint64
	// ResumeHint reports the first sequence number the paradigm layer
	// needs from this instance again (0: no constraint). View changes carry
	// it; the new view puts its failure marker at or after the (f+1)-th
	// largest hint, so at least one correct replica vouches for the place.
	ResumeHint func() uint64
	// Signer signs this replica's messages (deterministically).
	Signer msg.Signer

	MaxBatch           int    // requests per batch; default 100
	Window             uint64 // outstanding sequence numbers above the stable checkpoint; default 64
	CheckpointInterval uint64 // K; default 16; Window must be ≥ 2K so proposals continue while a checkpoint stabilises
	BatchTicks         int    // a partial batch waits at most this many ticks; default 1
	// PipelineDepth bounds the undecided proposals below which ProposeQueued
	// cuts a partial batch at once instead of waiting for BatchTicks;
	// default 1 (measured with braid bench, n=4 m=3, 64 clients: 1159
	// req/s and p50 51 ms at 1, 945 req/s and p50 64 ms at 2 — deeper
	// pipelining makes smaller batches, and the CPU pays per batch).
	PipelineDepth     int
	RequestTimeout    int // a backup waits this long for a relayed request before suspecting the primary; default 40
	ProgressTimeout   int // ... and this long for an accepted pre-prepare to commit; default 40
	ViewChangeTimeout int // wait for a NewView, doubled after each failed attempt; default 40
	RetransmitTicks   int // period of the stuck-replica beacon and view-change resend; default 10
	// PadToCheckpoint makes an idle primary fill the sequence numbers up
	// to the next checkpoint with empty batches (see padToCheckpoint), so
	// an idle cluster stops at a stable checkpoint every correct replica
	// can reach. The runtime (package shell) turns it on.
	PadToCheckpoint bool
	MaxPending      int // queued requests at the primary / watched requests at a backup; default 100000
	// AnswerBytes bounds, per peer, what the peer can make us send by
	// asking — answers to its Status beacons and NewView resends to its
	// stale view changes: a token bucket of AnswerBytes encoded bytes,
	// refilled at AnswerBytes per RetransmitTicks. Answers are trimmed to it
	// (the earliest sequence numbers first, which is what the asker needs
	// next); a message is sent while the bucket is not empty, so over any T
	// ticks a peer draws at most (1 + T/RetransmitTicks)·AnswerBytes plus
	// one message. Default 1 MiB.
	AnswerBytes int
	InitialView uint64
}

func (c *Config) setDefaults() {
	if c.Leader == nil {
		c.Leader = c.Primary
	}
	if c.Skip == nil {
		c.Skip = func(uint64) uint64 { return 0 }
	}
	if c.ResumeHint == nil {
		c.ResumeHint = func() uint64 { return 0 }
	}
	orDefault(&c.MaxBatch, defaults.MaxBatch)
	orDefault(&c.CheckpointInterval, defaults.CheckpointInterval)
	orDefault(&c.Window, defaults.WindowIntervals*c.CheckpointInterval)
	orDefault(&c.BatchTicks, defaults.BatchTicks)
	orDefault(&c.PipelineDepth, defaults.PipelineDepth)
	orDefault(&c.RequestTimeout, defaults.RequestTimeout)
	orDefault(&c.ProgressTimeout, defaults.ProgressTimeout)
	orDefault(&c.ViewChangeTimeout, defaults.ViewChangeTimeout)
	orDefault(&c.RetransmitTicks, defaults.RetransmitTicks)
	orDefault(&c.MaxPending, 100000)
	orDefault(&c.AnswerBytes, 1<<20)
}

// orDefault sets an unset (zero) field to its default.
func orDefault[T int | uint64](field *T, def T) {
	if *field == 0 {
		*field = def
	}
}

func (c *Config) validate() error {
	var errs []error
	if c.N < 1 {
		errs = append(errs, fmt.Errorf("field N: %d, need at least 1 replica", c.N))
	}
	if int(c.ID) >= c.N {
		errs = append(errs, fmt.Errorf("field ID: %d is not below N=%d", c.ID, c.N))
	}
	if c.Primary == nil {
		errs = append(errs, errors.New("field Primary: a primary rule is required"))
	}
	if c.Signer == nil {
		errs = append(errs, errors.New("field Signer: a signer is required"))
	}
	if c.MaxBatch < 0 || c.MaxBatch > msg.MaxBatchSize {
		errs = append(errs, fmt.Errorf("field MaxBatch: %d outside [1, %d]", c.MaxBatch, msg.MaxBatchSize))
	}
	if c.Window < 2*c.CheckpointInterval {
		errs = append(errs, fmt.Errorf("field Window: %d must be at least 2×CheckpointInterval (%d)", c.Window, 2*c.CheckpointInterval))
	}
	if c.Window > msg.MaxProofs {
		errs = append(errs, fmt.Errorf("field Window: %d exceeds %d", c.Window, msg.MaxProofs))
	}
	if c.Window%c.CheckpointInterval != 0 {
		errs = append(errs, fmt.Errorf("field Window: %d must be a multiple of CheckpointInterval (%d)", c.Window, c.CheckpointInterval))
	}
	for _, t := range []struct {
		name string
		v    int
	}{{"BatchTicks", c.BatchTicks}, {"RequestTimeout", c.RequestTimeout}, {"ProgressTimeout", c.ProgressTimeout},
		{"ViewChangeTimeout", c.ViewChangeTimeout}, {"RetransmitTicks", c.RetransmitTicks}, {"MaxPending", c.MaxPending},
		{"AnswerBytes", c.AnswerBytes}} {
		if t.v < 1 {
			errs = append(errs, fmt.Errorf("field %s: %d must be positive", t.name, t.v))
		}
	}
	return errors.Join(errs...)
}
