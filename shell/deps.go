package shell

import (
	"github.com/braid-bft/braid/ledger"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/storage"
)

// Everything the shell needs from the world is in this file. Production
// (package replica) implements it with sockets, bbolt and goroutines; the
// simulator (package sim) with a virtual network, a simulated disk and a CPU
// cost model in virtual time. The shell is single-threaded: its methods are
// called from one loop, and every callback handed to a dependency below
// (a done func) must later be run on that same loop, never concurrently
// with a shell method. That is what lets the simulator run the shell as a
// pure function of its seed.

// Network carries frames to the other replicas. Delivery is best effort:
// a frame may be dropped (a full queue, a broken link) and the protocol
// retransmits. Neither method may block on the network.
type Network interface {
	Send(to msg.ReplicaID, frame []byte)
	Broadcast(frame []byte)
}

// ClientConn is a client's connection as the shell sees it: Client is the
// client id the connection authenticated as (its handshake key is the one
// the cluster admits for that id); replies go back through Send.
type ClientConn interface {
	Client() msg.ClientID
	Send(frame []byte)
}

// Disk is the replica's durable state. Reads and Apply are synchronous and
// see every write applied so far; Apply only stages a write (it may still be
// lost in a crash, always as a suffix of the applied batches). Commit makes
// everything applied before the call durable — one fsync for all of it,
// across every instance — and runs done on the loop once it is (or with the
// error that made it impossible; the shell then stops). Commits complete in
// the order they were asked for.
type Disk interface {
	ledger.Source // Height, Block, Certificate
	Records() ([][]byte, error)
	RecordBounds() (first, next uint64, err error)
	LatestSnapshot() (round uint64, data []byte, err error)
	GetMeta(key string) ([]byte, error)
	Apply(b *storage.Batch) error
	Commit(done func(error))
	// PutSnapshot stores a snapshot durably before it returns, and
	// TruncateSnapshotsBefore drops older ones. Both run in Worker jobs,
	// alongside the loop's reads, writes and commits, which never wait
	// for them.
	PutSnapshot(round uint64, data []byte) error
	TruncateSnapshotsBefore(round uint64) error
}

// Crypto checks signatures. Its methods run inside Worker jobs, off the
// loop, possibly several at once.
type Crypto interface {
	msg.Verifier
	// VerifyAll checks many signatures at once (batch verification where
	// the scheme has it), one result per item.
	VerifyAll(items []msg.Signature) []bool
}

// VerifyEach is VerifyAll for a scheme without batch verification: each
// signature checked on its own.
func VerifyEach(v msg.Verifier, items []msg.Signature) []bool {
	out := make([]bool, len(items))
	for i := range items {
		out[i] = items[i].Check(v)
	}
	return out
}

// Worker runs slow, self-contained work off the loop: work may read only
// what it captured (never the shell's state) and runs on some other
// goroutine or, in the simulator, at once; done then runs on the loop.
// work returns what it spent, for the simulator's CPU model: a view change
// costs its nested signatures, not one verification.
type Worker interface {
	Go(work func() Cost, done func())
	// Cores is how many jobs run at once: ingress keeps that many peer
	// checks on the workers and batches what arrives meanwhile.
	Cores() int
}

// Cost describes a job's CPU work: signature verifications (batched ones
// counted one by one), and bytes hashed or copied.
type Cost struct {
	Verifications int
	Bytes         int
	// ClientLane marks a batch check of client requests: admission runs
	// at most ClientLanes(cores) of them at once, so their time is a lane of
	// its own that can saturate before the cores do.
	ClientLane bool
}

// Observer sees what the shell does, for tests and the simulator's checker.
// Every field is optional; each runs on the loop and must not block.
type Observer struct {
	// Sent sees every message to peers just before it leaves.
	Sent func(m msg.Message)
	// Executed sees each block once it is applied (not yet durable), with
	// its requests' results in order.
	Executed func(b *ledger.Block, results [][]byte)
	// Transferred sees a state transfer installed up to block b.
	Transferred func(b *ledger.Block)
	// Replied sees each reply as it is sent.
	Replied func(rep *msg.Reply)
	// Received sees each client request as it arrives on its client's
	// connection, before admission checks its signature: production
	// measures client-facing latency from it to Replied (the shell has no
	// clock of its own).
	Received func(req *msg.Request)
}
