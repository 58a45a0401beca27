// Package bank is a replicated, deterministic toy ledger implementing
// app.Application. It exists to exercise the ordering-sensitivity of
// conditional transactions described in the wait-free consensus (RCC)
// paper's Example 3.2: "if balance(A) > n then withdraw(A, m); deposit(B, m)"
// — two such transfers can have different outcomes depending on their order,
// so every replica must execute them in the same order.
//
// # Rules
//
//   - open(name): creates account name with balance 0, owned by the caller.
//     Names are 1..MaxNameLen bytes of valid UTF-8 and unique.
//   - deposit(name, amount): anyone may deposit into any account. This is
//     the ledger's only source of money (a mint); it is deliberately
//     unrestricted because the application models the paper's example, not
//     a monetary policy. A deposit that would overflow uint64 is rejected.
//   - balance(name): anyone may read any balance (read-only).
//   - transfer(A, B, n, m): only A's owner may transfer out of A. If
//     balance(A) > n (strictly), move m from A to B; otherwise the transfer
//     is a successful no-op (executed = 0) — that is the conditional
//     semantics of the paper, not an error. If the condition holds but
//     balance(A) < m, the transfer is rejected with "insufficient funds"
//     rather than overdrawing or clamping: the paper's example assumes
//     m ≤ n < balance(A), and when a client asks for m > n the only safe
//     readings are "reject" or "move less than asked"; rejecting keeps the
//     effect all-or-nothing. A credit that would overflow B is rejected.
//     A == B is allowed and, if executed, leaves the balance unchanged.
//
// # Op format
//
// One opcode byte, then fields: byte strings are a 4-byte big-endian length
// plus bytes, amounts are 8-byte big-endian. No trailing bytes.
//
//	open      0x01 name
//	deposit   0x02 name amount(u64)
//	balance   0x03 name
//	transfer  0x04 from to n(u64) m(u64)
//
// # Results (app result format)
//
//	open      OK (empty) | Rejected (exists, invalid caller)
//	deposit   OK (empty) | NotFound | Rejected (overflow)
//	balance   OK balance(u64) | NotFound
//	transfer  OK executed(1: 0 or 1) | NotFound | Rejected (not owner,
//	          insufficient funds, overflow, invalid caller)
//
// plus BadOp for malformed ops. Failed ops never change state.
//
// # Snapshot format
//
//	"BRBK" version(1)=1 count(u64) count×(name owner balance(u64))
//
// with names strictly ascending and owner a byte string of 1..app.MaxCallerLen.
package bank

import (
	"bytes"
	"fmt"
	"math"
	"sync"
	"unicode/utf8"

	"github.com/braid-bft/braid/app"
	"github.com/braid-bft/braid/app/internal/avl"
	"github.com/braid-bft/braid/internal/wire"
)

// MaxNameLen bounds account names, and with app.MaxCallerLen bounds the
// state one open op can add.
const MaxNameLen = 64

const (
	opOpen     byte = 0x11 // 0x1_: bank; kv uses 0x0_, so one replica can serve both (app/mux)
	opDeposit  byte = 0x12
	opBalance  byte = 0x13
	opTransfer byte = 0x14
)

const hashTag = "braid/app/bank/v1\x00"

type account struct {
	owner   []byte
	balance uint64
}

// Bank is the ledger application. The zero value is not usable; call New.
type Bank struct {
	mu       sync.RWMutex
	accounts *avl.Tree[*account] // name → account; ordered for snapshots
	hash     *app.LtHash         // over elements name owner balance
}

var _ app.Application = (*Bank)(nil)

// New returns an empty ledger.
func New() *Bank {
	return &Bank{accounts: new(avl.Tree[*account]), hash: app.NewLtHash(hashTag)}
}

// Open encodes an open-account op.
func Open(name string) []byte {
	return wire.AppendBytes([]byte{opOpen}, []byte(name))
}

// Deposit encodes a deposit op.
func Deposit(acct string, amt uint64) []byte {
	b := wire.AppendBytes([]byte{opDeposit}, []byte(acct))
	return wire.AppendU64(b, amt)
}

// Balance encodes a balance query.
func Balance(acct string) []byte {
	return wire.AppendBytes([]byte{opBalance}, []byte(acct))
}

// Transfer encodes "if balance(from) > n then move m from from to to".
func Transfer(from, to string, n, m uint64) []byte {
	b := make([]byte, 0, 1+8+len(from)+len(to)+16)
	b = append(b, opTransfer)
	b = wire.AppendBytes(b, []byte(from))
	b = wire.AppendBytes(b, []byte(to))
	b = wire.AppendU64(b, n)
	return wire.AppendU64(b, m)
}

type op struct {
	code     byte
	name, to []byte
	amount   uint64 // deposit amount, transfer m
	n        uint64 // transfer threshold
}

// ValidName reports whether the bank accepts name as an account name (1…
// MaxNameLen bytes of valid UTF-8), so that clients can refuse a bad name
// before any I/O with the same rule the replicas apply.
func ValidName(name string) error {
	if name == "" || len(name) > MaxNameLen || !utf8.ValidString(name) {
		return fmt.Errorf("account name %q: need 1…%d bytes of UTF-8", name, MaxNameLen)
	}
	return nil
}

func validName(name []byte) error {
	if len(name) == 0 {
		return fmt.Errorf("empty account name")
	}
	if !utf8.Valid(name) {
		return fmt.Errorf("account name is not valid UTF-8")
	}
	return nil
}

func decodeOp(b []byte) (op, error) {
	var o op
	r := wire.NewReader(b)
	o.code = r.U8()
	switch o.code {
	case opOpen, opBalance:
		o.name = r.View(MaxNameLen, "account name")
	case opDeposit:
		o.name = r.View(MaxNameLen, "account name")
		o.amount = r.U64()
	case opTransfer:
		o.name = r.View(MaxNameLen, "source account")
		o.to = r.View(MaxNameLen, "destination account")
		o.n = r.U64()
		o.amount = r.U64()
	default:
		if r.Err() == nil {
			return o, fmt.Errorf("unknown opcode %#x", o.code)
		}
	}
	if err := r.Done(); err != nil {
		return o, err
	}
	if err := validName(o.name); err != nil {
		return o, err
	}
	if o.code == opTransfer {
		if err := validName(o.to); err != nil {
			return o, fmt.Errorf("destination: %w", err)
		}
	}
	return o, nil
}

// CallerBound reports whether op's effect depends on who submits it: open
// makes the caller the owner, and only the owner may transfer. A gateway
// that submits on behalf of many users through a pool of client keys sends
// these through one fixed key, so that what one request opened a later one
// can move (package gateway).
func CallerBound(op []byte) bool {
	return len(op) > 0 && (op[0] == opOpen || op[0] == opTransfer)
}

// ReadOnly reports whether op is a well-formed balance query.
func (bk *Bank) ReadOnly(b []byte) bool {
	o, err := decodeOp(b)
	return err == nil && o.code == opBalance
}

// Execute decodes and applies op for caller. See the package documentation.
func (bk *Bank) Execute(caller app.Caller, b []byte) []byte {
	o, err := decodeOp(b)
	if err != nil {
		return app.Fail(app.StatusBadOp, "bank: "+err.Error())
	}
	if o.code == opBalance {
		bk.mu.RLock()
		defer bk.mu.RUnlock()
		a, ok := bk.accounts.Get(o.name)
		if !ok {
			return app.Fail(app.StatusNotFound, "bank: no such account")
		}
		return app.OK(wire.AppendU64(nil, a.balance))
	}
	bk.mu.Lock()
	defer bk.mu.Unlock()
	switch o.code {
	case opOpen:
		return bk.open(caller, o.name)
	case opDeposit:
		return bk.deposit(o.name, o.amount)
	case opTransfer:
		return bk.transfer(caller, o)
	}
	// Unreachable: decodeOp rejects unknown opcodes.
	return app.Failf(app.StatusBadOp, "bank: unknown opcode %#x", o.code)
}

func (bk *Bank) open(caller app.Caller, name []byte) []byte {
	if !app.ValidCaller(caller) {
		return app.Failf(app.StatusRejected, "bank: open needs a caller of 1..%d bytes", app.MaxCallerLen)
	}
	if _, ok := bk.accounts.Get(name); ok {
		return app.Fail(app.StatusRejected, "bank: account already exists")
	}
	// Copy both: the op buffer and caller belong to the replication layer.
	a := &account{owner: bytes.Clone(caller)}
	k := bytes.Clone(name)
	bk.accounts.Set(k, a)
	hashAccount(bk.hash, true, k, a)
	return app.OK(nil)
}

func (bk *Bank) deposit(name []byte, amt uint64) []byte {
	a, ok := bk.accounts.Get(name)
	if !ok {
		return app.Fail(app.StatusNotFound, "bank: no such account")
	}
	if a.balance > math.MaxUint64-amt {
		return app.Fail(app.StatusRejected, "bank: balance overflow")
	}
	hashAccount(bk.hash, false, name, a)
	a = bk.update(name, a, a.balance+amt)
	hashAccount(bk.hash, true, name, a)
	return app.OK(nil)
}

var (
	resultExecuted = []byte{byte(app.StatusOK), 1}
	resultSkipped  = []byte{byte(app.StatusOK), 0}
)

func (bk *Bank) transfer(caller app.Caller, o op) []byte {
	if !app.ValidCaller(caller) {
		return app.Failf(app.StatusRejected, "bank: transfer needs a caller of 1..%d bytes", app.MaxCallerLen)
	}
	from, ok := bk.accounts.Get(o.name)
	if !ok {
		return app.Fail(app.StatusNotFound, "bank: no such source account")
	}
	if !bytes.Equal(from.owner, caller) {
		return app.Fail(app.StatusRejected, "bank: caller does not own the source account")
	}
	to, ok := bk.accounts.Get(o.to)
	if !ok {
		return app.Fail(app.StatusNotFound, "bank: no such destination account")
	}
	if !(from.balance > o.n) {
		return bytes.Clone(resultSkipped)
	}
	m := o.amount
	if from.balance < m {
		return app.Fail(app.StatusRejected, "bank: insufficient funds")
	}
	if from == to {
		// Withdraw and deposit cancel; nothing to rehash.
		return bytes.Clone(resultExecuted)
	}
	if to.balance > math.MaxUint64-m {
		return app.Fail(app.StatusRejected, "bank: balance overflow")
	}
	hashAccount(bk.hash, false, o.name, from)
	hashAccount(bk.hash, false, o.to, to)
	from = bk.update(o.name, from, from.balance-m)
	to = bk.update(o.to, to, to.balance+m)
	hashAccount(bk.hash, true, o.name, from)
	hashAccount(bk.hash, true, o.to, to)
	return bytes.Clone(resultExecuted)
}

// update stores a new balance for an account. Accounts are never changed in
// place: a clone (see Clone) shares them.
func (bk *Bank) update(name []byte, a *account, balance uint64) *account {
	na := &account{owner: a.owner, balance: balance}
	bk.accounts.Set(name, na)
	return na
}

// Clone returns an independent copy of the ledger in O(1); see avl.Tree.Clone.
func (bk *Bank) Clone() *Bank {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	return &Bank{accounts: bk.accounts.Clone(), hash: bk.hash.Clone()}
}

// hashAccount adds or removes an account's digest element:
// u32(len name) name u32(len owner) owner balance(u64), the same field
// encoding as the snapshot entry, so it is unambiguous.
func hashAccount(h *app.LtHash, add bool, name []byte, a *account) {
	var nl, ol [4]byte
	var bal [8]byte
	wire.AppendU32(nl[:0], uint32(len(name)))
	wire.AppendU32(ol[:0], uint32(len(a.owner)))
	wire.AppendU64(bal[:0], a.balance)
	if add {
		h.Add(nl[:], name, ol[:], a.owner, bal[:])
	} else {
		h.Remove(nl[:], name, ol[:], a.owner, bal[:])
	}
}

// Digest returns the incrementally maintained LtHash digest of the ledger.
func (bk *Bank) Digest() [32]byte {
	bk.mu.RLock()
	defer bk.mu.RUnlock()
	return bk.hash.Sum()
}

const (
	snapMagic   = "BRBK"
	snapVersion = 1
	// minEntry is the smallest encoded account: 1-byte name, 1-byte owner.
	minEntry = 4 + 1 + 4 + 1 + 8
)

// Snapshot serializes all accounts in name order.
func (bk *Bank) Snapshot() ([]byte, error) {
	bk.mu.RLock()
	defer bk.mu.RUnlock()
	out := make([]byte, 0, 13+bk.accounts.Len()*(minEntry+32))
	out = append(out, snapMagic...)
	out = append(out, snapVersion)
	out = wire.AppendU64(out, uint64(bk.accounts.Len()))
	bk.accounts.Ascend(nil, func(name []byte, a *account) bool {
		out = wire.AppendBytes(out, name)
		out = wire.AppendBytes(out, a.owner)
		out = wire.AppendU64(out, a.balance)
		return true
	})
	return out, nil
}

// Restore replaces the ledger with snapshot after validating it completely
// (header, count, name and owner bounds, strict name order, no trailing
// bytes). The digest is recomputed from the restored accounts. On error the
// state is unchanged.
func (bk *Bank) Restore(snapshot []byte) error {
	names, accts, err := decodeSnapshot(snapshot)
	if err != nil {
		return fmt.Errorf("bank: restore: %w", err)
	}
	bk.install(names, accts, hashAccounts(names, accts))
	return nil
}

// DigestLanes is the full state of the digest (app.LtHash.Lanes), for a
// replica's own snapshot to keep beside Snapshot's bytes.
func (bk *Bank) DigestLanes() []byte {
	bk.mu.RLock()
	defer bk.mu.RUnlock()
	return bk.hash.Lanes()
}

// RestoreWithDigest is Restore taking the digest from lanes instead of
// rehashing every account; check recomputes it and reports whether lanes
// lied (see kv.Store.RestoreWithDigest: the same contract).
func (bk *Bank) RestoreWithDigest(snapshot, lanes []byte) (check func() error, err error) {
	names, accts, err := decodeSnapshot(snapshot)
	if err != nil {
		return nil, fmt.Errorf("bank: restore: %w", err)
	}
	hash, verify, err := app.AdoptLanes(hashTag, lanes, func() *app.LtHash { return hashAccounts(names, accts) })
	if err != nil {
		return nil, fmt.Errorf("bank: restore: %w", err)
	}
	bk.install(names, accts, hash)
	return func() error {
		if err := verify(); err != nil {
			return fmt.Errorf("bank: %d accounts: %w", len(names), err)
		}
		return nil
	}, nil
}

func (bk *Bank) install(names [][]byte, accts []*account, hash *app.LtHash) {
	tree := avl.BuildSorted(names, accts)
	bk.mu.Lock()
	defer bk.mu.Unlock()
	bk.accounts, bk.hash = tree, hash
}

// hashAccounts is the digest of the accounts, on every core. Accounts are
// never changed in place, so it may run while the ledger executes.
func hashAccounts(names [][]byte, accts []*account) *app.LtHash {
	return app.LtHashOf(hashTag, len(names), func(h *app.LtHash, i int) {
		hashAccount(h, true, names[i], accts[i])
	})
}

func decodeSnapshot(b []byte) (names [][]byte, accts []*account, err error) {
	if len(b) < len(snapMagic)+1 || string(b[:len(snapMagic)]) != snapMagic {
		return nil, nil, fmt.Errorf("bad magic")
	}
	if v := b[len(snapMagic)]; v != snapVersion {
		return nil, nil, fmt.Errorf("unsupported version %d", v)
	}
	r := wire.NewReader(b[len(snapMagic)+1:])
	n := r.U64()
	if r.Err() == nil && n > uint64(r.Remaining()/minEntry) {
		return nil, nil, fmt.Errorf("account count %d exceeds what %d bytes can hold", n, r.Remaining())
	}
	names = make([][]byte, 0, n)
	accts = make([]*account, 0, n)
	for i := uint64(0); i < n && r.Err() == nil; i++ {
		name := r.View(MaxNameLen, "account name")
		owner := r.View(app.MaxCallerLen, "owner")
		bal := r.U64()
		if r.Err() != nil {
			break
		}
		if err := validName(name); err != nil {
			return nil, nil, fmt.Errorf("account %d: %w", i, err)
		}
		if len(owner) == 0 {
			return nil, nil, fmt.Errorf("account %d: empty owner", i)
		}
		if i > 0 && bytes.Compare(names[i-1], name) >= 0 {
			return nil, nil, fmt.Errorf("account %d: names not strictly ascending", i)
		}
		names = append(names, bytes.Clone(name))
		accts = append(accts, &account{owner: bytes.Clone(owner), balance: bal})
	}
	if err := r.Done(); err != nil {
		return nil, nil, err
	}
	return names, accts, nil
}

// DecodeOpen decodes an open result.
func DecodeOpen(res []byte) error {
	if _, err := app.Payload(res); err != nil {
		return fmt.Errorf("bank: open: %w", err)
	}
	return nil
}

// DecodeDeposit decodes a deposit result.
func DecodeDeposit(res []byte) error {
	if _, err := app.Payload(res); err != nil {
		return fmt.Errorf("bank: deposit: %w", err)
	}
	return nil
}

// DecodeBalance decodes a balance result.
func DecodeBalance(res []byte) (uint64, error) {
	body, err := app.Payload(res)
	if err != nil {
		return 0, fmt.Errorf("bank: balance: %w", err)
	}
	r := wire.NewReader(body)
	v := r.U64()
	if err := r.Done(); err != nil {
		return 0, fmt.Errorf("bank: decode balance: %w", err)
	}
	return v, nil
}

// DecodeTransfer decodes a transfer result: executed reports whether the
// condition balance(from) > n held and m was moved. Rejections (not owner,
// insufficient funds, overflow) and missing accounts are errors wrapping
// *app.ResultError.
func DecodeTransfer(res []byte) (executed bool, err error) {
	body, err := app.Payload(res)
	if err != nil {
		return false, fmt.Errorf("bank: transfer: %w", err)
	}
	if len(body) != 1 || body[0] > 1 {
		return false, fmt.Errorf("bank: decode transfer: malformed payload of %d bytes", len(body))
	}
	return body[0] == 1, nil
}

// OpName names the kind of an encoded op ("open", "deposit", ...), or "" if
// its first byte is no bank op (see kv.OpName).
func OpName(op []byte) string {
	if len(op) == 0 {
		return ""
	}
	switch op[0] {
	case opOpen:
		return "open"
	case opDeposit:
		return "deposit"
	case opBalance:
		return "balance"
	case opTransfer:
		return "transfer"
	}
	return ""
}
