package shell

import (
	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/storage"
)

// Test dependencies: the test is the loop, so every completion runs at
// once (a commit is a synchronous Sync).

type dropNet struct{}

func (dropNet) Send(to msg.ReplicaID, frame []byte) {}
func (dropNet) Broadcast(frame []byte)              {}

type syncDisk struct{ storage.Interface }

func (d syncDisk) Commit(done func(error)) { done(d.Sync()) }

type inline struct{}

func (inline) Cores() int                       { return 1 }
func (inline) Go(work func() Cost, done func()) { work(); done() }

type testCrypto struct{ auth.Keyring }

func (k testCrypto) VerifyAll(items []msg.Signature) []bool { return VerifyEach(k.Keyring, items) }
