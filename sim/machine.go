package sim

import (
	"errors"
	"time"

	"github.com/braid-bft/braid/shell"
	"github.com/braid-bft/braid/sim/simnet"
	"github.com/braid-bft/braid/storage"
)

// The simulated machine under each replica's runtime: a disk and CPU cores,
// both in virtual time, both deterministic.

// Machine is the cost model of one simulated replica's hardware.
type Machine struct {
	Cores        int           // verification workers; default 2
	Verification time.Duration // one signature check; default 30µs
	PerByte      time.Duration // hashing/copying one byte; default 1ns
	Fsync        time.Duration // one group commit; default 1ms
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

// Go implements shell.Worker.
func (c *cpu) Go(work func() shell.Cost, done func()) {
	cost := work()
	k := 0
	for i := range c.free {
		if c.free[i] < c.free[k] {
			k = i
		}
	}
	d := time.Duration(cost.Verifications)*c.w.machine.Verification + time.Duration(cost.Bytes)*c.w.machine.PerByte
	start := max(c.w.s.Now(), c.free[k])
	c.free[k] = start + simnet.FromDuration(d)
	epoch := c.r.epoch
	c.w.s.At(c.free[k], func() {
		if c.r.epoch != epoch || !c.r.up {
			return
		}
		done()
		c.r.flush()
	})
}
