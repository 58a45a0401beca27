// Package storage is a replica's durable state: the consensus core's
// write-ahead records, the ledger's blocks and certificates and small
// metadata in one embedded store with a journal in front of it (journal.go:
// a commit costs one fdatasync, not bbolt's two), and application snapshots
// as files beside it (snapshots.go says why).
//
// # Why bbolt
//
// The store is go.etcd.io/bbolt (the B+tree etcd keeps its data in) rather
// than Pebble. What Braid writes is small and append-mostly — a few WAL
// records and one block per round, a certificate every K rounds, a snapshot
// now and then — and every write that safety depends on must be durable
// before the replica sends the message that follows it. bbolt gives exactly
// that: serializable read-write transactions that are on disk when Commit
// returns (data pages, fdatasync, meta page, fdatasync), one file, no
// background compaction, no tuning, and a dependency surface of one module
// plus golang.org/x/sys. Pebble's LSM tree wins on write-heavy, large,
// random-key workloads, at the price of a large dependency tree, background
// compactions competing with consensus for the same two cores, and a WAL of
// its own layered under ours. Nothing here needs its strengths.
//
// bbolt checksums only its meta pages, so every value this package stores is
// prefixed by a CRC-32C of its payload: a flipped bit on disk becomes an error
// naming the record ("block 17: checksum mismatch") instead of a silently
// different block. bbolt may panic on a structurally corrupt page; every
// transaction here recovers such panics and returns them as errors.
//
// # Fsync policy
//
// Options.Fsync chooses when writes reach the disk:
//
//   - PerBatch: every call that writes (AppendRecords, PutBlock, …) commits
//     and fsyncs before returning. Simplest to reason about: if the call
//     returned, the data survives a power loss. Costs one commit (one
//     journal fdatasync) per call, so the disk's sync latency bounds the
//     rate of writes.
//   - GroupCommit{Interval}: writes go to an in-memory layer (visible to
//     reads at once) and are committed together, in one transaction and one
//     fsync, at most Interval after the first unsynced write. A crash loses
//     at most the last Interval of writes. A caller about to send something
//     safety depends on — a prepare, a commit vote, a checkpoint — calls Sync
//     first, which commits everything pending; all writes that arrived since
//     the last commit share that one fsync, so under load many rounds pay for
//     one sync.
//
// A failed commit makes the store unusable (every later call returns the
// error): after a failed fsync the kernel may have dropped the dirty pages,
// so retrying could report durability that does not exist.
//
// # Crash simulation
//
// NewMemory returns the same store over an in-memory engine. Its Crash
// drops everything not yet committed, which is how the simulator models the
// loss of unsynced writes. Memory never commits on a timer (the simulator owns
// time): under GroupCommit writes stay pending until Sync.
package storage
