// Package mux serves several applications from one replicated state: an
// operation's first byte picks the application (kv uses 0x0_, bank 0x1_),
// the state digest binds both digests, and a snapshot holds both snapshots.
package mux

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/braid-bft/braid/app"
	"github.com/braid-bft/braid/app/bank"
	"github.com/braid-bft/braid/app/kv"
	"github.com/braid-bft/braid/internal/wire"
)

// App is kv and bank behind one app.Application.
type App struct {
	scope kv.Scope
	kv    *kv.Store
	bank  *bank.Bank
}

// New returns an empty kv + bank application.
func New(scope kv.Scope) *App {
	return &App{scope: scope, kv: kv.New(kv.Config{Scope: scope}), bank: bank.New()}
}

var _ app.Application = (*App)(nil)

func (a *App) route(op []byte) app.Application {
	if len(op) > 0 && op[0]&0xf0 == 0x10 {
		return a.bank
	}
	return a.kv
}

// Execute runs op on the application its first byte names.
func (a *App) Execute(caller app.Caller, op []byte) []byte { return a.route(op).Execute(caller, op) }

// ReadOnly reports whether op cannot change state.
func (a *App) ReadOnly(op []byte) bool { return a.route(op).ReadOnly(op) }

// Digest binds both applications' digests.
func (a *App) Digest() [32]byte {
	k, b := a.kv.Digest(), a.bank.Digest()
	return sha256.Sum256(append(append([]byte("braid/app/mux/v1"), k[:]...), b[:]...))
}

// Snapshot is the kv snapshot then the bank snapshot, each length-prefixed.
func (a *App) Snapshot() ([]byte, error) {
	k, err := a.kv.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("mux: kv: %w", err)
	}
	b, err := a.bank.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("mux: bank: %w", err)
	}
	out := wire.AppendU64(nil, uint64(len(k)))
	out = append(out, k...)
	return append(out, b...), nil
}

// Restore installs a snapshot; on error nothing changes.
func (a *App) Restore(s []byte) error {
	k, b, err := split(s)
	if err != nil {
		return err
	}
	nk, nb := kv.New(a.kvConfig()), bank.New()
	if err := nk.Restore(k); err != nil {
		return fmt.Errorf("mux: kv: %w", err)
	}
	if err := nb.Restore(b); err != nil {
		return fmt.Errorf("mux: bank: %w", err)
	}
	a.kv, a.bank = nk, nb
	return nil
}

// DigestLanes is both digests' full state (kv's, then bank's), for a
// replica's own snapshot to keep so that restoring it need not rehash
// every record.
func (a *App) DigestLanes() []byte {
	return append(a.kv.DigestLanes(), a.bank.DigestLanes()...)
}

// RestoreWithDigest is Restore taking both digests from lanes (DigestLanes
// of the state s was taken from) instead of rehashing every record; check
// recomputes them from the restored records and must pass before the
// digest is trusted. It may run on another goroutine while the state
// executes. On error nothing changes.
func (a *App) RestoreWithDigest(s, lanes []byte) (check func() error, err error) {
	k, b, err := split(s)
	if err != nil {
		return nil, err
	}
	if len(lanes) != 2*app.LtHashBytes {
		return nil, fmt.Errorf("mux: %d bytes of digest lanes, want %d", len(lanes), 2*app.LtHashBytes)
	}
	nk, nb := kv.New(a.kvConfig()), bank.New()
	checkKV, err := nk.RestoreWithDigest(k, lanes[:app.LtHashBytes])
	if err != nil {
		return nil, fmt.Errorf("mux: kv: %w", err)
	}
	checkBank, err := nb.RestoreWithDigest(b, lanes[app.LtHashBytes:])
	if err != nil {
		return nil, fmt.Errorf("mux: bank: %w", err)
	}
	a.kv, a.bank = nk, nb
	return func() error { return errors.Join(checkKV(), checkBank()) }, nil
}

// split cuts a snapshot into its kv and bank parts.
func split(s []byte) (k, b []byte, err error) {
	r := wire.NewReader(s).Kind(nil, "mux snapshot")
	n := r.U64()
	if r.Err() == nil && n > uint64(r.Remaining()) {
		r.Fail("kv part of %d bytes exceeds the %d left", n, r.Remaining())
	}
	k = r.Take(int(n))
	if r.Err() != nil {
		return nil, nil, fmt.Errorf("mux: %w", r.Err())
	}
	return k, s[r.Off():], nil
}

// Clone returns an independent copy of the state in O(1), for a snapshot
// encoded off the loop or a staged state transfer.
func (a *App) Clone() *App {
	return &App{scope: a.scope, kv: a.kv.Clone(), bank: a.bank.Clone()}
}

func (a *App) kvConfig() kv.Config { return kv.Config{Scope: a.scope} }

// OpName names an encoded op by application and kind ("kv put", "bank
// transfer"), "" for bytes neither application knows. Like route, it
// reads only the first byte.
func OpName(op []byte) string {
	if n := kv.OpName(op); n != "" {
		return "kv " + n
	}
	if n := bank.OpName(op); n != "" {
		return "bank " + n
	}
	return ""
}
