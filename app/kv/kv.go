// Package kv is a replicated, deterministic key-value store implementing
// app.Application: get, put, delete, compare-and-set and bounded range scans
// over byte-string keys.
//
// # Op format
//
// Every op is one opcode byte followed by fields. A byte-string field is a
// 4-byte big-endian length followed by that many bytes; integers are
// big-endian. Trailing bytes are an error, so each op has exactly one
// encoding.
//
//	get     0x01 key
//	put     0x02 key value
//	delete  0x03 key
//	cas     0x04 key flags(1) expected new
//	          flags bit 0 = expect absent (then expected must be empty);
//	          other bits must be zero
//	scan    0x05 start end limit(u32)
//	          keys in [start, end) ascending; empty end = no upper bound;
//	          1 ≤ limit ≤ MaxScanLimit
//	incr    0x06 key delta(i64, two's complement)
//	          add delta to the key's value read as a decimal integer (a
//	          missing key counts as 0) and store the sum in decimal
//
// Keys are at most MaxKeyLen bytes (empty keys are allowed), values at most
// MaxValueLen. Use the constructors (Get, Put, ...) rather than building ops
// by hand.
//
// # Results
//
// Results use the app result format (status byte, then payload or reason):
//
//	get     OK value | NotFound
//	put     OK (empty)
//	delete  OK (empty) | NotFound
//	cas     OK (empty) | Conflict
//	scan    OK more(1) count(u32) count×(key value)
//	          more = 1 if the scan stopped at limit or MaxScanBytes while
//	          further keys in range may remain; resume from ResumeKey of
//	          the last key returned (that key plus a zero byte, or for a
//	          key of MaxKeyLen bytes, which nothing extends, the least key
//	          above it of at most MaxKeyLen bytes; none: the scan is done)
//	incr    OK value(i64) | Rejected (ReasonNotInteger, ReasonOverflow)
//	          the value is an integer only in canonical decimal: an
//	          optional '-', then digits without leading zeros ("0" alone
//	          is zero, "-0" is not an integer), within int64 — the rule
//	          Redis's INCR applies, so the gateway can offer INCR/DECR as
//	          one atomic op instead of a get-then-CAS loop that contending
//	          writers would make retry (ParseInt is the rule)
//
// # Versions
//
// incr (0x06) is newer than the other ops, and ops carry no version: a
// replica built before it answers an incr with BadOp while an up-to-date
// one executes it, so the replicas' results (and, for a success, their
// states) diverge. Every replica of a cluster must run a binary that has
// incr before any client sends one (braid gateway's INCR, DECR, INCRBY,
// DECRBY): upgrade all replicas first, then allow INCR traffic.
//
// Any op may also return BadOp (malformed or oversized) or, in PerClient
// scope, Rejected (invalid caller). Failed ops never change state.
//
// # Scope
//
// With Shared scope all clients share one keyspace. With PerClient scope
// every key is stored under the caller's identity, so clients can neither
// read nor write each other's keys; scans see only the caller's keys, with
// the namespace stripped.
//
// # Snapshot format
//
//	"BRKV" version(1)=1 scope(1) count(u64) count×(ikey value)
//
// entries in strictly ascending order of internal key. The internal key is
// the user key (Shared) or len(caller)(1) caller key (PerClient).
package kv

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/braid-bft/braid/app"
	"github.com/braid-bft/braid/app/internal/avl"
	"github.com/braid-bft/braid/internal/enum"
	"github.com/braid-bft/braid/internal/wire"
)

// Size bounds enforced when decoding ops and snapshots. They bound both the
// state growth a single op can cause and the size of a single result.
const (
	MaxKeyLen    = 1 << 10  // 1 KiB
	MaxValueLen  = 64 << 10 // 64 KiB
	MaxScanLimit = 1000
	// MaxScanBytes caps the encoded payload of one scan result, so a scan of
	// MaxScanLimit maximal entries (~66 MiB) cannot be forced through the
	// replication layer. A scan that hits it reports more = 1.
	MaxScanBytes = 4 << 20
)

// Opcodes.
const (
	opGet    byte = 0x01
	opPut    byte = 0x02
	opDelete byte = 0x03
	opCAS    byte = 0x04
	opScan   byte = 0x05
	opIncr   byte = 0x06
)

// Reasons of an incr's Rejected result, which DecodeIncr maps to
// ErrNotInteger and ErrOverflow.
const (
	ReasonNotInteger = "kv: incr: value is not an integer or out of range"
	ReasonOverflow   = "kv: incr: increment or decrement would overflow"
)

var (
	// ErrNotInteger is DecodeIncr's error when the stored value is not a
	// canonical decimal int64.
	ErrNotInteger = errors.New("value is not an integer or out of range")
	// ErrOverflow is DecodeIncr's error when the sum leaves int64.
	ErrOverflow = errors.New("increment or decrement would overflow")
)

const casExpectAbsent byte = 0x01

// Scope selects how keys are shared between clients.
type Scope uint8

const (
	// Shared: all clients read and write one keyspace. The zero value.
	Shared Scope = 0
	// PerClient: each caller has a private keyspace.
	PerClient Scope = 1
)

var scopeNames = []string{
	Shared:    "shared",
	PerClient: "per-client",
}

func (s Scope) String() string { return enum.Name(scopeNames, s, "scope") }

// Config configures a Store.
type Config struct {
	Scope Scope
}

// hashTag domain-separates kv state elements from other applications'.
const hashTag = "braid/app/kv/v1\x00"

// maxInternalKeyLen bounds namespaced keys: 1-byte caller length, caller,
// user key.
const maxInternalKeyLen = 1 + app.MaxCallerLen + MaxKeyLen

// Store is the key-value application. Create it with New.
type Store struct {
	scope Scope

	mu   sync.RWMutex
	tree *avl.Tree[[]byte] // internal key → value
	hash *app.LtHash       // over elements u32(len ikey) ikey value
}

var _ app.Application = (*Store)(nil)

// New returns an empty store. It panics if cfg.Scope is not Shared or
// PerClient: that is a programming error in the replica's setup, never
// client input, and silently picking a scope would be worse.
func New(cfg Config) *Store {
	if cfg.Scope != Shared && cfg.Scope != PerClient {
		panic(fmt.Sprintf("kv.New: invalid scope %d", cfg.Scope))
	}
	return &Store{scope: cfg.Scope, tree: new(avl.Tree[[]byte]), hash: app.NewLtHash(hashTag)}
}

// Clone returns an independent copy of the store in O(1); see
// avl.Tree.Clone. Values are never changed in place, so the copies share
// them.
func (s *Store) Clone() *Store {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &Store{scope: s.scope, tree: s.tree.Clone(), hash: s.hash.Clone()}
}

// Get encodes a get op.
func Get(key []byte) []byte {
	return wire.AppendBytes([]byte{opGet}, key)
}

// Put encodes a put op (insert or overwrite).
func Put(key, value []byte) []byte {
	b := make([]byte, 0, 1+wire.BytesLen(key)+wire.BytesLen(value))
	b = append(b, opPut)
	b = wire.AppendBytes(b, key)
	return wire.AppendBytes(b, value)
}

// Delete encodes a delete op.
func Delete(key []byte) []byte {
	return wire.AppendBytes([]byte{opDelete}, key)
}

// CAS encodes a compare-and-set: set key to newValue iff its current value
// equals expected (expectAbsent false), or iff key is absent (expectAbsent
// true; expected must then be empty). A present key with an empty value is
// not absent.
func CAS(key, expected []byte, expectAbsent bool, newValue []byte) []byte {
	b := make([]byte, 0, 2+wire.BytesLen(key)+wire.BytesLen(expected)+wire.BytesLen(newValue))
	b = append(b, opCAS)
	b = wire.AppendBytes(b, key)
	var flags byte
	if expectAbsent {
		flags = casExpectAbsent
	}
	b = append(b, flags)
	b = wire.AppendBytes(b, expected)
	return wire.AppendBytes(b, newValue)
}

// Scan encodes a range scan over [start, end), returning at most limit
// entries in ascending key order. An empty end means no upper bound. A limit
// outside 1..MaxScanLimit produces an op that Execute rejects as BadOp.
func Scan(start, end []byte, limit int) []byte {
	b := make([]byte, 0, 5+wire.BytesLen(start)+wire.BytesLen(end))
	b = append(b, opScan)
	b = wire.AppendBytes(b, start)
	b = wire.AppendBytes(b, end)
	l := uint32(0) // invalid; rejected by Execute
	if limit > 0 && limit <= MaxScanLimit {
		l = uint32(limit)
	}
	return wire.AppendU32(b, l)
}

// Incr encodes an atomic add of delta to the decimal integer stored under
// key (DECR is a negative delta).
func Incr(key []byte, delta int64) []byte {
	b := make([]byte, 0, 9+wire.BytesLen(key))
	b = append(b, opIncr)
	b = wire.AppendBytes(b, key)
	return wire.AppendU64(b, uint64(delta))
}

// op is a decoded op. Byte slices alias the encoded op.
type op struct {
	code         byte
	key          []byte // also scan start
	value        []byte // put value, cas new value
	expected     []byte
	expectAbsent bool
	end          []byte
	limit        int
	delta        int64
}

func (o *op) readOnly() bool { return o.code == opGet || o.code == opScan }

func decodeOp(b []byte) (op, error) {
	var o op
	r := wire.NewReader(b)
	o.code = r.U8()
	switch o.code {
	case opGet, opDelete:
		o.key = r.View(MaxKeyLen, "key")
	case opPut:
		o.key = r.View(MaxKeyLen, "key")
		o.value = r.View(MaxValueLen, "value")
	case opCAS:
		o.key = r.View(MaxKeyLen, "key")
		flags := r.U8()
		o.expected = r.View(MaxValueLen, "expected value")
		o.value = r.View(MaxValueLen, "new value")
		if r.Err() == nil {
			if flags&^casExpectAbsent != 0 {
				return o, fmt.Errorf("cas: unknown flags %#x", flags)
			}
			o.expectAbsent = flags&casExpectAbsent != 0
			if o.expectAbsent && len(o.expected) != 0 {
				return o, fmt.Errorf("cas: expected value given with expect-absent")
			}
		}
	case opScan:
		o.key = r.View(MaxKeyLen, "scan start")
		o.end = r.View(MaxKeyLen, "scan end")
		limit := r.U32()
		if r.Err() == nil && (limit == 0 || limit > MaxScanLimit) {
			return o, fmt.Errorf("scan limit %d outside 1..%d", limit, MaxScanLimit)
		}
		o.limit = int(limit)
	case opIncr:
		o.key = r.View(MaxKeyLen, "key")
		o.delta = int64(r.U64())
	default:
		if r.Err() == nil {
			return o, fmt.Errorf("unknown opcode %#x", o.code)
		}
	}
	if err := r.Done(); err != nil {
		return o, err
	}
	return o, nil
}

// ReadOnly reports whether op is a well-formed get or scan. Malformed ops
// answer false (they change nothing either, but there is no benefit in
// serving them unordered).
func (s *Store) ReadOnly(b []byte) bool {
	o, err := decodeOp(b)
	return err == nil && o.readOnly()
}

// Execute decodes and applies op for caller. See the package documentation
// for op and result formats.
func (s *Store) Execute(caller app.Caller, b []byte) []byte {
	o, err := decodeOp(b)
	if err != nil {
		return app.Fail(app.StatusBadOp, "kv: "+err.Error())
	}
	var prefix []byte
	if s.scope == PerClient {
		if !app.ValidCaller(caller) {
			return app.Failf(app.StatusRejected, "kv: per-client scope needs a caller of 1..%d bytes", app.MaxCallerLen)
		}
		prefix = make([]byte, 0, 1+len(caller))
		prefix = append(prefix, byte(len(caller)))
		prefix = append(prefix, caller...)
	}
	if o.readOnly() {
		s.mu.RLock()
		defer s.mu.RUnlock()
	} else {
		s.mu.Lock()
		defer s.mu.Unlock()
	}
	switch o.code {
	case opGet:
		v, ok := s.tree.Get(ikey(prefix, o.key))
		if !ok {
			return app.Fail(app.StatusNotFound, "kv: key not found")
		}
		return app.OK(v)
	case opPut:
		s.set(ikey(prefix, o.key), o.value)
		return app.OK(nil)
	case opDelete:
		k := ikey(prefix, o.key)
		old, ok := s.tree.Delete(k)
		if !ok {
			return app.Fail(app.StatusNotFound, "kv: key not found")
		}
		s.hashRecord(false, k, old)
		return app.OK(nil)
	case opCAS:
		k := ikey(prefix, o.key)
		cur, ok := s.tree.Get(k)
		switch {
		case o.expectAbsent && ok:
			return app.Fail(app.StatusConflict, "kv: cas: key is present")
		case !o.expectAbsent && !ok:
			return app.Fail(app.StatusConflict, "kv: cas: key is absent")
		case !o.expectAbsent && !bytes.Equal(cur, o.expected):
			return app.Fail(app.StatusConflict, "kv: cas: value differs")
		}
		s.set(k, o.value)
		return app.OK(nil)
	case opScan:
		return s.scan(prefix, o.key, o.end, o.limit)
	case opIncr:
		k := ikey(prefix, o.key)
		var cur int64
		if v, ok := s.tree.Get(k); ok {
			var valid bool
			if cur, valid = ParseInt(v); !valid {
				return app.Fail(app.StatusRejected, ReasonNotInteger)
			}
		}
		sum := cur + o.delta
		if (o.delta > 0 && sum < cur) || (o.delta < 0 && sum > cur) {
			return app.Fail(app.StatusRejected, ReasonOverflow)
		}
		s.set(k, strconv.AppendInt(nil, sum, 10))
		return app.OK(wire.AppendU64(nil, uint64(sum)))
	}
	// Unreachable: decodeOp rejects unknown opcodes.
	return app.Failf(app.StatusBadOp, "kv: unknown opcode %#x", o.code)
}

// ParseInt reads v as an int64 in canonical decimal (see the package doc):
// an optional '-', then digits without leading zeros, "0" alone for zero;
// "+5", "007", "-0", " 1" and out-of-range values are not integers. Every
// value has at most one reading, so replicas cannot disagree on what
// counts as an integer. It is also Redis's rule for integer arguments.
func ParseInt(v []byte) (int64, bool) {
	digits := v
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 || len(digits) > 19 || (digits[0] == '0' && len(v) > 1) {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// ResumeKey is where a scan resumes after last, the last key of a page
// with more = 1: the least key above last, that is last plus a zero byte,
// or for a key of MaxKeyLen bytes (which no key extends) the least key of
// at most MaxKeyLen bytes that is greater than every extension of last,
// i.e. PrefixEnd(last). It returns nil if no key is above last: the scan
// is complete.
func ResumeKey(last []byte) []byte {
	if len(last) < MaxKeyLen {
		return append(append(make([]byte, 0, len(last)+1), last...), 0)
	}
	return PrefixEnd(last)
}

// PrefixEnd is the least key above every key that starts with prefix, or
// nil if there is none (prefix empty or all 0xff): the exclusive end of a
// scan over the keys with that prefix.
func PrefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// ikey builds the internal key. It always returns a fresh slice, so the
// tree never retains memory owned by the op buffer.
func ikey(prefix, key []byte) []byte {
	k := make([]byte, 0, len(prefix)+len(key))
	k = append(k, prefix...)
	return append(k, key...)
}

// set stores value (copied) under internal key k, updating the digest.
func (s *Store) set(k, value []byte) {
	v := bytes.Clone(value)
	if v == nil {
		v = []byte{}
	}
	old, replaced := s.tree.Set(k, v)
	if replaced {
		s.hashRecord(false, k, old)
	}
	s.hashRecord(true, k, v)
}

// hashRecord adds or removes the digest element for one record. The key is
// length-prefixed so (key, value) pairs map to distinct elements.
func (s *Store) hashRecord(add bool, k, v []byte) {
	var l [4]byte
	wire.AppendU32(l[:0], uint32(len(k)))
	if add {
		s.hash.Add(l[:], k, v)
	} else {
		s.hash.Remove(l[:], k, v)
	}
}

func (s *Store) scan(prefix, start, end []byte, limit int) []byte {
	lo := ikey(prefix, start)
	var hi []byte
	if len(end) > 0 {
		hi = ikey(prefix, end)
	}
	out := []byte{byte(app.StatusOK), 0, 0, 0, 0, 0}
	count, more := 0, false
	s.tree.Ascend(lo, func(k, v []byte) bool {
		if hi != nil && bytes.Compare(k, hi) >= 0 {
			return false
		}
		if !bytes.HasPrefix(k, prefix) {
			return false // left the caller's namespace
		}
		uk := k[len(prefix):]
		if count == limit || len(out)-1+wire.BytesLen(uk)+wire.BytesLen(v) > MaxScanBytes {
			more = true
			return false
		}
		out = wire.AppendBytes(out, uk)
		out = wire.AppendBytes(out, v)
		count++
		return true
	})
	if more {
		out[1] = 1
	}
	wire.AppendU32(out[2:2], uint32(count))
	return out
}

// Digest returns the incrementally maintained LtHash digest of the state.
func (s *Store) Digest() [32]byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.hash.Sum()
}

const (
	snapMagic   = "BRKV"
	snapVersion = 1
)

// Snapshot serializes the state in key order (see package documentation).
func (s *Store) Snapshot() ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]byte, 0, 64)
	out = append(out, snapMagic...)
	out = append(out, snapVersion, byte(s.scope))
	out = wire.AppendU64(out, uint64(s.tree.Len()))
	s.tree.Ascend(nil, func(k, v []byte) bool {
		out = wire.AppendBytes(out, k)
		out = wire.AppendBytes(out, v)
		return true
	})
	return out, nil
}

// Restore replaces the state with snapshot after validating it completely:
// header, scope, count, every length bound, namespace structure, strict key
// order and absence of trailing bytes. The digest is recomputed from the
// restored records. On error the state is unchanged.
func (s *Store) Restore(snapshot []byte) error {
	keys, vals, err := s.decodeSnapshot(snapshot)
	if err != nil {
		return fmt.Errorf("kv: restore: %w", err)
	}
	s.install(keys, vals, hashRecords(keys, vals))
	return nil
}

// DigestLanes is the full state of the digest (app.LtHash.Lanes), for a
// replica's own snapshot to keep beside Snapshot's bytes.
func (s *Store) DigestLanes() []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.hash.Lanes()
}

// RestoreWithDigest is Restore taking the digest from lanes (DigestLanes of
// the state snapshot was taken from) instead of rehashing every record,
// which is most of a large state's restore. The records are validated as
// in Restore; check recomputes the digest from them and reports whether
// lanes lied. It reads only what the restore captured, so it may run on
// another goroutine while the store executes; until it returns nil the
// digest is the snapshot's word, not a fact.
func (s *Store) RestoreWithDigest(snapshot, lanes []byte) (check func() error, err error) {
	keys, vals, err := s.decodeSnapshot(snapshot)
	if err != nil {
		return nil, fmt.Errorf("kv: restore: %w", err)
	}
	hash, verify, err := app.AdoptLanes(hashTag, lanes, func() *app.LtHash { return hashRecords(keys, vals) })
	if err != nil {
		return nil, fmt.Errorf("kv: restore: %w", err)
	}
	s.install(keys, vals, hash)
	return func() error {
		if err := verify(); err != nil {
			return fmt.Errorf("kv: %d records: %w", len(keys), err)
		}
		return nil
	}, nil
}

func (s *Store) install(keys, vals [][]byte, hash *app.LtHash) {
	tree := avl.BuildSorted(keys, vals)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tree, s.hash = tree, hash
}

// hashRecords is the digest of sorted records, on every core.
func hashRecords(keys, vals [][]byte) *app.LtHash {
	return app.LtHashOf(hashTag, len(keys), func(h *app.LtHash, i int) {
		var l [4]byte
		wire.AppendU32(l[:0], uint32(len(keys[i])))
		h.Add(l[:], keys[i], vals[i])
	})
}

func (s *Store) decodeSnapshot(b []byte) (keys, vals [][]byte, err error) {
	if len(b) < len(snapMagic)+2 || string(b[:len(snapMagic)]) != snapMagic {
		return nil, nil, fmt.Errorf("bad magic")
	}
	if v := b[len(snapMagic)]; v != snapVersion {
		return nil, nil, fmt.Errorf("unsupported version %d", v)
	}
	if sc := Scope(b[len(snapMagic)+1]); sc != s.scope {
		return nil, nil, fmt.Errorf("snapshot scope %v does not match store scope %v", sc, s.scope)
	}
	r := wire.NewReader(b[len(snapMagic)+2:])
	n := r.U64()
	// Each entry takes at least 8 bytes, so the count is bounded by the
	// input before anything is allocated from it.
	if r.Err() == nil && n > uint64(r.Remaining()/8) {
		return nil, nil, fmt.Errorf("entry count %d exceeds what %d bytes can hold", n, r.Remaining())
	}
	keys = make([][]byte, 0, n)
	vals = make([][]byte, 0, n)
	for i := uint64(0); i < n && r.Err() == nil; i++ {
		k := r.View(maxInternalKeyLen, "key")
		v := r.View(MaxValueLen, "value")
		if r.Err() != nil {
			break
		}
		if err := s.validKey(k); err != nil {
			return nil, nil, fmt.Errorf("entry %d: %w", i, err)
		}
		if i > 0 && bytes.Compare(keys[i-1], k) >= 0 {
			return nil, nil, fmt.Errorf("entry %d: keys not strictly ascending", i)
		}
		// One allocation per record, detached from the snapshot buffer.
		buf := make([]byte, len(k)+len(v))
		copy(buf, k)
		copy(buf[len(k):], v)
		k, v = buf[:len(k):len(k)], buf[len(k):]
		keys = append(keys, k)
		vals = append(vals, v)
	}
	if err := r.Done(); err != nil {
		return nil, nil, err
	}
	return keys, vals, nil
}

// validKey checks an internal key from a snapshot against the bounds Execute
// would have enforced, so a restored state is one Execute could produce.
func (s *Store) validKey(k []byte) error {
	if s.scope == Shared {
		if len(k) > MaxKeyLen {
			return fmt.Errorf("key length %d exceeds max %d", len(k), MaxKeyLen)
		}
		return nil
	}
	if len(k) < 1 {
		return fmt.Errorf("per-client key missing namespace")
	}
	cl := int(k[0])
	if cl < 1 || cl > app.MaxCallerLen || len(k) < 1+cl {
		return fmt.Errorf("per-client key has invalid namespace")
	}
	if uk := len(k) - 1 - cl; uk > MaxKeyLen {
		return fmt.Errorf("key length %d exceeds max %d", uk, MaxKeyLen)
	}
	return nil
}

// KV is one entry of a scan result.
type KV struct {
	Key, Value []byte
}

// DecodeGet decodes a get result. A NotFound result is (nil, false, nil);
// other failures are returned as errors wrapping *app.ResultError.
func DecodeGet(res []byte) (value []byte, found bool, err error) {
	st, body, err := app.DecodeResult(res)
	if err != nil {
		return nil, false, fmt.Errorf("kv: decode get: %w", err)
	}
	switch st {
	case app.StatusOK:
		return body, true, nil
	case app.StatusNotFound:
		return nil, false, nil
	}
	return nil, false, fmt.Errorf("kv: get: %w", &app.ResultError{Status: st, Reason: string(body)})
}

// DecodePut decodes a put result.
func DecodePut(res []byte) error {
	if _, err := app.Payload(res); err != nil {
		return fmt.Errorf("kv: put: %w", err)
	}
	return nil
}

// DecodeDelete decodes a delete result: deleted is false if the key was
// absent.
func DecodeDelete(res []byte) (deleted bool, err error) {
	return decodeConditional(res, app.StatusNotFound, "delete")
}

// DecodeCAS decodes a compare-and-set result: swapped is false if the
// precondition did not hold.
func DecodeCAS(res []byte) (swapped bool, err error) {
	return decodeConditional(res, app.StatusConflict, "cas")
}

func decodeConditional(res []byte, miss app.Status, what string) (bool, error) {
	st, body, err := app.DecodeResult(res)
	if err != nil {
		return false, fmt.Errorf("kv: decode %s: %w", what, err)
	}
	switch st {
	case app.StatusOK:
		return true, nil
	case miss:
		return false, nil
	}
	return false, fmt.Errorf("kv: %s: %w", what, &app.ResultError{Status: st, Reason: string(body)})
}

// DecodeIncr decodes an incr result into the stored sum. A value that is
// not an integer, or a sum out of range, is an error wrapping ErrNotInteger
// or ErrOverflow.
func DecodeIncr(res []byte) (int64, error) {
	st, body, err := app.DecodeResult(res)
	if err != nil {
		return 0, fmt.Errorf("kv: decode incr: %w", err)
	}
	switch {
	case st == app.StatusOK && len(body) == 8:
		return int64(wire.NewReader(body).U64()), nil
	case st == app.StatusOK:
		return 0, fmt.Errorf("kv: decode incr: %d-byte value, want 8", len(body))
	case st == app.StatusRejected && string(body) == ReasonNotInteger:
		return 0, fmt.Errorf("kv: incr: %w", ErrNotInteger)
	case st == app.StatusRejected && string(body) == ReasonOverflow:
		return 0, fmt.Errorf("kv: incr: %w", ErrOverflow)
	}
	return 0, fmt.Errorf("kv: incr: %w", &app.ResultError{Status: st, Reason: string(body)})
}

// DecodeScan decodes a scan result into its entries (aliasing res).
func DecodeScan(res []byte) ([]KV, error) {
	kvs, _, err := DecodeScanPage(res)
	return kvs, err
}

// DecodeScanPage decodes a scan result and also reports whether more keys
// may remain in the range (the scan stopped at its limit or at
// MaxScanBytes).
func DecodeScanPage(res []byte) (kvs []KV, more bool, err error) {
	body, err := app.Payload(res)
	if err != nil {
		return nil, false, fmt.Errorf("kv: scan: %w", err)
	}
	r := wire.NewReader(body)
	m := r.U8()
	n := r.U32()
	if r.Err() == nil && (m > 1 || n > MaxScanLimit) {
		return nil, false, fmt.Errorf("kv: decode scan: bad header (more=%d, count=%d)", m, n)
	}
	kvs = make([]KV, 0, n)
	for i := uint32(0); i < n && r.Err() == nil; i++ {
		k := r.View(MaxKeyLen, "key")
		v := r.View(MaxValueLen, "value")
		kvs = append(kvs, KV{Key: k, Value: v})
	}
	if err := r.Done(); err != nil {
		return nil, false, fmt.Errorf("kv: decode scan: %w", err)
	}
	return kvs, m == 1, nil
}

// OpName names the kind of an encoded op ("get", "put", ...), or "" if its
// first byte is no kv op: for ledger listings, which show what a request
// did without decoding (or trusting) its arguments.
func OpName(op []byte) string {
	if len(op) == 0 {
		return ""
	}
	switch op[0] {
	case opGet:
		return "get"
	case opPut:
		return "put"
	case opDelete:
		return "delete"
	case opCAS:
		return "cas"
	case opScan:
		return "scan"
	}
	return ""
}
