package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/braid-bft/braid/internal/atomicfile"

	"github.com/braid-bft/braid/shell"
	"github.com/braid-bft/braid/sim/simnet"
	"github.com/braid-bft/braid/storage"
)

// The simulated machine under each replica's runtime: a disk and CPU cores,
// both in virtual time, both deterministic.

// Machine is the cost model of one simulated replica's hardware. It is
// also the calibration file's format (`braid bench --calibrate` measures
// it, `--costs FILE` reads it); durations are in nanoseconds in JSON.
//
// Workers' jobs (signature checks, hashing) cost Verification, the batch
// figures and PerByte on one of Cores. The event loop's own work — signing,
// encoding and decoding messages, TLS records — costs nothing unless Sign,
// Message, Record or RecordByte is set; then the loop is one more core,
// busy for what each event costs, and later events wait for it (loop.go).
// A zero field keeps the figure the simulator had before calibration, so
// the fault scenarios and their trace hashes do not depend on the machine.
type Machine struct {
	Cores        int           `json:"cores"`     // verification workers; default 2
	Verification time.Duration `json:"verify_ns"` // one signature check alone; default 30µs
	// Per signature in a batch verification of 16, 64 and 256 (sizes in
	// between interpolate; zero: every signature costs Verification).
	Batch16  time.Duration `json:"verify_batch16_ns"`
	Batch64  time.Duration `json:"verify_batch64_ns"`
	Batch256 time.Duration `json:"verify_batch256_ns"`
	PerByte  time.Duration `json:"hash_byte_ns"` // hashing/copying one byte; default 1ns
	Fsync    time.Duration `json:"fsync_ns"`     // one group commit; default 1ms

	Sign       time.Duration `json:"sign_ns"`        // one replica signature, on the loop
	Message    time.Duration `json:"message_ns"`     // encoding or decoding one message, besides its bytes
	Record     time.Duration `json:"record_ns"`      // sealing or opening one TLS record
	RecordByte time.Duration `json:"record_byte_ns"` // per byte sealed or opened

	// Source says where the figures came from (machine, date, command);
	// every simulated figure prints it.
	Source string `json:"source,omitempty"`
}

// verifyCost is the time one batch verification of k signatures takes.
func (m Machine) verifyCost(k int) time.Duration {
	if k <= 1 || m.Batch16 == 0 {
		return time.Duration(k) * m.Verification
	}
	type point struct {
		size int
		per  time.Duration
	}
	pts := []point{{1, m.Verification}, {16, m.Batch16}, {64, m.Batch64}, {256, m.Batch256}}
	per := m.Batch256
	for i := 1; i < len(pts); i++ {
		if k <= pts[i].size {
			a, b := pts[i-1], pts[i]
			per = a.per + (b.per-a.per)*time.Duration(k-a.size)/time.Duration(b.size-a.size)
			break
		}
	}
	return time.Duration(k) * per
}

// loopModelled: some of the loop's work has a cost.
func (m Machine) loopModelled() bool {
	return m.Sign != 0 || m.Message != 0 || m.Record != 0 || m.RecordByte != 0
}

// LoadMachine reads a cost file written by `braid bench --calibrate`.
func LoadMachine(path string) (Machine, error) {
	raw, err := atomicfile.ReadLimited(path, 1<<16)
	if err != nil {
		return Machine{}, err
	}
	var m Machine
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Machine{}, fmt.Errorf("cost file %s: %w", path, err)
	}
	if err := m.Validate(); err != nil {
		return Machine{}, fmt.Errorf("cost file %s: %w", path, err)
	}
	return m, nil
}

// Validate rejects a model no machine has: negative costs, absurd ones
// (a second per signature), or batch figures given only in part.
func (m Machine) Validate() error {
	if m.Cores < 0 || m.Cores > 1024 {
		return fmt.Errorf("cores %d outside [0, 1024]", m.Cores)
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"verify_ns", m.Verification}, {"verify_batch16_ns", m.Batch16}, {"verify_batch64_ns", m.Batch64},
		{"verify_batch256_ns", m.Batch256}, {"hash_byte_ns", m.PerByte}, {"fsync_ns", m.Fsync}, {"sign_ns", m.Sign},
		{"message_ns", m.Message}, {"record_ns", m.Record}, {"record_byte_ns", m.RecordByte}} {
		if f.d < 0 || f.d > time.Second {
			return fmt.Errorf("%s = %d outside [0, 1s]", f.name, f.d)
		}
	}
	if (m.Batch16 == 0) != (m.Batch64 == 0) || (m.Batch16 == 0) != (m.Batch256 == 0) {
		return errors.New("verify_batch16_ns, verify_batch64_ns and verify_batch256_ns go together")
	}
	return nil
}

// String is the model in one line, for every simulated figure.
func (m Machine) String() string {
	m = m.withDefaults()
	s := fmt.Sprintf("cores %d, verify %v (batch of 16/64/256: %v/%v/%v each), %v/byte hashed, fsync %v, sign %v, message %v, TLS record %v + %v/byte",
		m.Cores, m.Verification, m.Batch16, m.Batch64, m.Batch256, m.PerByte, m.Fsync, m.Sign, m.Message, m.Record, m.RecordByte)
	if m.Source != "" {
		s += " (" + m.Source + ")"
	}
	return s
}

func (m Machine) withDefaults() Machine {
	if m.Cores <= 0 {
		m.Cores = 2
	}
	if m.Verification == 0 {
		m.Verification = 30 * time.Microsecond
	}
	if m.PerByte == 0 {
		m.PerByte = time.Nanosecond
	}
	if m.Fsync == 0 {
		m.Fsync = time.Millisecond
	}
	return m
}

var (
	errDiskFull = errors.New("simulated disk: no space left on device")
	errFsync    = errors.New("simulated disk: fsync: input/output error")
)

// simDisk is a replica's disk: writes are staged (storage.Memory under
// group commit never commits on its own), a commit takes Fsync of virtual
// time, one at a time, and a crash loses every write not yet committed.
// Faults: full (writes fail) and failing fsyncs, until heal.
type simDisk struct {
	*storage.Memory
	w        *world
	r        *replica
	inflight bool          // a commit is under way
	waiting  []func(error) // commits asked for since it started
	full     bool
	badFsync bool
}

func newMemory() *storage.Memory {
	m, err := storage.NewMemory(storage.Options{Fsync: storage.GroupCommit{Interval: time.Hour}})
	if err != nil {
		panic(err) // an in-memory store cannot fail to open
	}
	return m
}

func newSimDisk(w *world, r *replica) *simDisk {
	return &simDisk{Memory: newMemory(), w: w, r: r}
}

func (d *simDisk) Apply(b *storage.Batch) error {
	if d.full {
		return errDiskFull
	}
	return d.Memory.Apply(b)
}

// PutSnapshot writes a snapshot file: it fails like any write on a full
// disk and like its fsync on a failing one.
func (d *simDisk) PutSnapshot(round uint64, data []byte) error {
	switch {
	case d.full:
		return errDiskFull
	case d.badFsync:
		return errFsync
	}
	return d.Memory.PutSnapshot(round, data)
}

// Commit implements shell.Disk the way production's committer does: one
// fsync at a time, and every commit asked for while one is in flight joins
// the next (group commit).
func (d *simDisk) Commit(done func(error)) {
	d.waiting = append(d.waiting, done)
	if !d.inflight {
		d.startCommit()
	}
}

func (d *simDisk) startCommit() {
	d.inflight = true
	batch := d.waiting
	d.waiting = nil
	epoch := d.r.epoch
	now := d.w.s.Now()
	d.w.book(&d.r.used.disk, now, now+simnet.FromDuration(d.w.machine.Fsync))
	d.w.s.After(d.w.machine.Fsync, func() {
		if d.r.epoch != epoch || !d.r.up {
			return // the replica crashed meanwhile: the writes are lost
		}
		d.inflight = false
		err := errFsync
		if !d.badFsync {
			err = d.Memory.Sync()
		}
		for _, done := range batch {
			done(err)
		}
		if len(d.waiting) > 0 {
			d.startCommit()
		}
		d.r.flush()
	})
}

// crash loses what was not committed.
func (d *simDisk) crash() {
	d.Memory.Crash()
	d.inflight, d.waiting = false, nil
}

// wipe loses everything.
func (d *simDisk) wipe() { d.Memory = newMemory() }

// heal clears injected faults (the operator freed space, replaced the disk).
func (d *simDisk) heal() { d.full, d.badFsync = false, false }

// cpu runs the runtime's off-loop jobs on Cores simulated cores: a job's
// work runs at once (it is deterministic), its completion arrives when a
// core would have finished it.
type cpu struct {
	w    *world
	r    *replica
	free []simnet.Time // per core: when it is next idle
}

func newCPU(w *world, r *replica) *cpu {
	return &cpu{w: w, r: r, free: make([]simnet.Time, w.machine.Cores)}
}

// Cores implements shell.Worker.
func (c *cpu) Cores() int { return len(c.free) }

// Go implements shell.Worker.
func (c *cpu) Go(work func() shell.Cost, done func()) {
	cost := work()
	k := 0
	for i := range c.free {
		if c.free[i] < c.free[k] {
			k = i
		}
	}
	d := c.w.machine.verifyCost(cost.Verifications) + time.Duration(cost.Bytes)*c.w.machine.PerByte
	start := max(c.w.s.Now(), c.free[k])
	c.free[k] = start + simnet.FromDuration(d)
	c.w.book(&c.r.used.workers, start, c.free[k])
	if cost.ClientLane {
		c.w.book(&c.r.used.clientLane, start, c.free[k])
	}
	epoch := c.r.epoch
	c.w.s.At(c.free[k], func() {
		if c.r.epoch != epoch || !c.r.up {
			return
		}
		done()
		c.r.flush()
	})
}
