package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/braid-bft/braid/app/kv"
)

// A command handler runs one command and writes its reply. quit ends the
// connection after the reply.
type handler func(ctx context.Context, s *session, w *Writer, args [][]byte) (quit bool)

// A session is one connection's state: its server and its SCAN cursors.
type session struct {
	*Server
	cursors *cursorTable
}

func (s *Server) newSession() *session { return &session{Server: s, cursors: newCursorTable()} }

// A cmdSpec is a command's arity — n > 0: exactly n words with the name,
// n < 0: at least −n — and its handler.
type cmdSpec struct {
	arity int
	run   handler
}

// commandTable holds every command the gateway answers; anything else is
// "-ERR unknown command". Filled in init to break the cycle through
// COMMAND COUNT.
var commandTable map[string]cmdSpec

func init() {
	commandTable = map[string]cmdSpec{
		"PING":    {-1, cmdPing},
		"ECHO":    {2, cmdEcho},
		"QUIT":    {-1, cmdQuit},
		"GET":     {2, cmdGet},
		"SET":     {-3, cmdSet},
		"DEL":     {-2, cmdDel},
		"EXISTS":  {-2, cmdExists},
		"INCR":    {2, cmdIncrBy(1, false)},
		"DECR":    {2, cmdIncrBy(-1, false)},
		"INCRBY":  {3, cmdIncrBy(1, true)},
		"DECRBY":  {3, cmdIncrBy(-1, true)},
		"MGET":    {-2, cmdMGet},
		"MSET":    {-3, cmdMSet},
		"SCAN":    {-2, cmdScan},
		"SELECT":  {2, cmdSelect},
		"COMMAND": {-1, cmdCommand},
		"CONFIG":  {-2, cmdConfig},
		"CLIENT":  {-2, cmdClient},
	}
}

// dispatch runs one command, under one deadline (Options.Timeout) for all
// of its cluster requests.
func (s *session) dispatch(ctx context.Context, w *Writer, args [][]byte) (quit bool) {
	name := strings.ToUpper(string(args[0]))
	spec, ok := commandTable[name]
	if !ok {
		w.Error(fmt.Sprintf("ERR unknown command '%s'", quoteForError(args[0])))
		return false
	}
	if (spec.arity > 0 && len(args) != spec.arity) || (spec.arity < 0 && len(args) < -spec.arity) {
		w.Error(fmt.Sprintf("ERR wrong number of arguments for '%s' command", strings.ToLower(name)))
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return spec.run(ctx, s, w, args)
}

// quoteForError keeps a client-supplied word printable and short inside an
// error line.
func quoteForError(b []byte) string {
	const max = 128
	var sb strings.Builder
	for i, c := range b {
		if i == max {
			sb.WriteString("...")
			break
		}
		if c < 0x20 || c >= 0x7f || c == '\'' {
			fmt.Fprintf(&sb, "\\x%02x", c)
		} else {
			sb.WriteByte(c)
		}
	}
	return sb.String()
}

// clusterError is the one-line -ERR text for a failed command (see
// requester.failure).
func (s *Server) clusterError(err error) string {
	_, m := s.failure(err)
	return "ERR " + m
}

func checkKey(k []byte) error {
	if len(k) > kv.MaxKeyLen {
		return errKeyLen
	}
	return nil
}

func cmdPing(_ context.Context, _ *session, w *Writer, args [][]byte) bool {
	switch len(args) {
	case 1:
		w.Simple("PONG")
	case 2:
		w.Bulk(args[1])
	default:
		w.Error("ERR wrong number of arguments for 'ping' command")
	}
	return false
}

func cmdEcho(_ context.Context, _ *session, w *Writer, args [][]byte) bool {
	w.Bulk(args[1])
	return false
}

func cmdQuit(_ context.Context, _ *session, w *Writer, _ [][]byte) bool {
	w.Simple("OK")
	return true
}

func cmdGet(ctx context.Context, s *session, w *Writer, args [][]byte) bool {
	v, found, err := s.get(ctx, args[1])
	switch {
	case err != nil:
		w.Error(s.clusterError(err))
	case !found:
		w.Null()
	default:
		w.Bulk(v)
	}
	return false
}

func (s *session) get(ctx context.Context, key []byte) ([]byte, bool, error) {
	if err := checkKey(key); err != nil {
		return nil, false, err
	}
	res, err := s.submit(ctx, kv.Get(key))
	if err != nil {
		return nil, false, err
	}
	return kv.DecodeGet(res)
}

// cmdSet is SET key value [NX]. NX maps onto a compare-and-set that
// expects the key absent, so it is atomic. Expiry (EX, PX, …) has no
// meaning in a replicated ledger without clocks in its state machine; XX,
// GET and KEEPTTL would need a read and a write to be atomic together,
// which the kv application does not offer: all are refused rather than
// half-implemented.
func cmdSet(ctx context.Context, s *session, w *Writer, args [][]byte) bool {
	nx := false
	for _, o := range args[3:] {
		switch opt := strings.ToUpper(string(o)); opt {
		case "NX":
			nx = true
		case "EX", "PX", "EXAT", "PXAT", "XX", "GET", "KEEPTTL":
			w.Error(fmt.Sprintf("ERR SET option '%s' is not supported by the Braid gateway (only SET key value [NX])", opt))
			return false
		default:
			w.Error("ERR syntax error")
			return false
		}
	}
	key, value := args[1], args[2]
	if err := checkKey(key); err != nil {
		w.Error("ERR " + err.Error())
		return false
	}
	if !nx {
		res, err := s.submit(ctx, kv.Put(key, value))
		if err == nil {
			err = kv.DecodePut(res)
		}
		if err != nil {
			w.Error(s.clusterError(err))
			return false
		}
		w.Simple("OK")
		return false
	}
	res, err := s.submit(ctx, kv.CAS(key, nil, true, value))
	var swapped bool
	if err == nil {
		swapped, err = kv.DecodeCAS(res)
	}
	switch {
	case err != nil:
		w.Error(s.clusterError(err))
	case swapped:
		w.Simple("OK")
	default:
		w.Null()
	}
	return false
}

// cmdDel deletes the keys and counts those that existed. Several keys are
// several requests, run side by side (fanOut): each delete is atomic, the
// set is not.
func cmdDel(ctx context.Context, s *session, w *Writer, args [][]byte) bool {
	keys := args[1:]
	for _, k := range keys {
		if err := checkKey(k); err != nil {
			w.Error("ERR " + err.Error())
			return false
		}
	}
	countKeys(ctx, s, w, keys, func(ctx context.Context, key []byte) (bool, error) {
		res, err := s.submit(ctx, kv.Delete(key))
		if err != nil {
			return false, err
		}
		return kv.DecodeDelete(res)
	})
	return false
}

// countKeys runs one request per key side by side (fanOut) and answers how
// many of them said yes: DEL's deleted keys, EXISTS's present ones.
func countKeys(ctx context.Context, s *session, w *Writer, keys [][]byte, yes func(context.Context, []byte) (bool, error)) {
	var n atomic.Int64
	err := fanOut(ctx, len(keys), func(ctx context.Context, i int) error {
		ok, err := yes(ctx, keys[i])
		if ok {
			n.Add(1)
		}
		return err
	})
	if err != nil {
		w.Error(s.clusterError(err))
		return
	}
	w.Int(n.Load())
}

// cmdExists counts the keys given that exist (a key named twice counts
// twice, as in Redis).
func cmdExists(ctx context.Context, s *session, w *Writer, args [][]byte) bool {
	countKeys(ctx, s, w, args[1:], func(ctx context.Context, key []byte) (bool, error) {
		_, found, err := s.get(ctx, key)
		return found, err
	})
	return false
}

// cmdIncrBy is INCR/DECR (sign ±1, no argument) and INCRBY/DECRBY (sign
// times the argument). Each is one kv incr op: atomic on the replicas, with
// no read-modify-write race between gateway users.
func cmdIncrBy(sign int64, withArg bool) handler {
	return func(ctx context.Context, s *session, w *Writer, args [][]byte) bool {
		delta := sign
		if withArg {
			d, ok := kv.ParseInt(args[2])
			if !ok {
				w.Error("ERR value is not an integer or out of range")
				return false
			}
			if sign < 0 {
				if d == math.MinInt64 {
					w.Error("ERR decrement would overflow")
					return false
				}
				d = -d
			}
			delta = d
		}
		if err := checkKey(args[1]); err != nil {
			w.Error("ERR " + err.Error())
			return false
		}
		res, err := s.submit(ctx, kv.Incr(args[1], delta))
		var v int64
		if err == nil {
			v, err = kv.DecodeIncr(res)
		}
		if err != nil {
			w.Error(s.clusterError(err))
		} else {
			w.Int(v)
		}
		return false
	}
}

// maxMGetBytes bounds the values one MGET collects before it replies (the
// reply is all or nothing, so they are held): without it 8192 keys of
// 64 KiB would hold half a GiB for one connection.
const maxMGetBytes = 16 << 20

// cmdMGet reads the keys side by side; a cluster failure fails the
// command.
func cmdMGet(ctx context.Context, s *session, w *Writer, args [][]byte) bool {
	keys := args[1:]
	vals := make([][]byte, len(keys))
	found := make([]bool, len(keys))
	var (
		total atomic.Int64
		mu    sync.Mutex
		mem   = account{b: s.mem, free: connAllowance}
	)
	defer mem.reset()
	err := fanOut(ctx, len(keys), func(ctx context.Context, i int) error {
		v, ok, err := s.get(ctx, keys[i])
		if err != nil {
			return err
		}
		if total.Add(int64(len(v))) > maxMGetBytes {
			return errMGetTooLarge
		}
		mu.Lock()
		err = mem.charge(len(v))
		mu.Unlock()
		if err != nil {
			return err
		}
		vals[i], found[i] = v, ok
		return nil
	})
	if err != nil {
		w.Error(s.clusterError(err))
		return false
	}
	w.Array(len(vals))
	for i, v := range vals {
		if found[i] {
			w.Bulk(v)
		} else {
			w.Null()
		}
	}
	return false
}

var errMGetTooLarge = fmt.Errorf("%w: MGET reply larger than %d MiB: ask for fewer keys", errTooLarge, maxMGetBytes>>20)

// cmdMSet writes the pairs side by side, one put each: not atomic across
// keys (a failure part-way may leave some of them set, and says so). A key
// given twice ends with its last value, as in Redis: only its last pair is
// sent.
func cmdMSet(ctx context.Context, s *session, w *Writer, args [][]byte) bool {
	pairs := args[1:]
	if len(pairs)%2 != 0 {
		w.Error("ERR wrong number of arguments for 'mset' command")
		return false
	}
	last := make(map[string]int, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		if err := checkKey(pairs[i]); err != nil {
			w.Error("ERR " + err.Error())
			return false
		}
		last[string(pairs[i])] = i
	}
	var puts []int // indices of the key of each pair to send, in order
	for i := 0; i < len(pairs); i += 2 {
		if last[string(pairs[i])] == i {
			puts = append(puts, i)
		}
	}
	err := fanOut(ctx, len(puts), func(ctx context.Context, j int) error {
		res, err := s.submit(ctx, kv.Put(pairs[puts[j]], pairs[puts[j]+1]))
		if err == nil {
			err = kv.DecodePut(res)
		}
		return err
	})
	if err != nil {
		w.Error(s.clusterError(err) + " (MSET is not atomic: some of its keys may have been set)")
		return false
	}
	w.Simple("OK")
	return false
}

// maxFanOut bounds the requests one multi-key command has in flight, so
// that one MGET of many keys cannot take every client of the pool from
// the other connections.
const maxFanOut = 8

// fanOut runs fn for 0..n−1 with up to maxFanOut at once and returns the
// first error to happen (the others are then cancelled).
func fanOut(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	if n == 1 {
		return fn(ctx, 0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	sem := make(chan struct{}, maxFanOut)
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
				cancel()
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		// The caller's context ended before every request started.
		return context.Cause(ctx)
	}
	return first
}

// maxPatternLen bounds a SCAN MATCH pattern. The matcher takes time
// linear in the pattern times the key, and no key is longer than
// kv.MaxKeyLen; the bound keeps a page's matching cheap.
const maxPatternLen = 4 << 10

// Default and largest SCAN COUNT: one kv scan page.
const (
	defaultScanCount = 10
	maxScanCount     = kv.MaxScanLimit
)

// cmdScan is SCAN cursor [MATCH pattern] [COUNT n] [TYPE string]: one kv
// scan page per call. Cursor 0 starts at the first key; any other cursor
// names the key to resume from (see cursorTable). As in Redis, a call may
// return fewer than COUNT keys, or none, with a non-zero cursor; cursor 0
// in the reply means the scan is complete. Keys written during a scan are
// seen if they sort after the cursor.
func cmdScan(ctx context.Context, s *session, w *Writer, args [][]byte) bool {
	var start []byte
	if c := string(args[1]); c != "0" {
		id, err := strconv.ParseUint(c, 10, 64)
		var ok bool
		if err == nil {
			start, ok = s.cursors.get(id)
		}
		if !ok {
			w.Error("ERR invalid cursor")
			return false
		}
	}
	var pattern []byte
	count := defaultScanCount
	for i := 2; i < len(args); i += 2 {
		if i+1 == len(args) {
			w.Error("ERR syntax error")
			return false
		}
		switch strings.ToUpper(string(args[i])) {
		case "MATCH":
			if len(args[i+1]) > maxPatternLen {
				w.Error(fmt.Sprintf("ERR MATCH pattern longer than %d bytes", maxPatternLen))
				return false
			}
			pattern = args[i+1]
		case "COUNT":
			n, ok := kv.ParseInt(args[i+1])
			if !ok || n < 1 {
				w.Error("ERR value is not an integer or out of range")
				return false
			}
			count = int(min(n, maxScanCount))
		case "TYPE":
			if !strings.EqualFold(string(args[i+1]), "string") {
				// Every Braid key holds a string: no key has another type.
				w.Array(2)
				w.Bulk([]byte("0"))
				w.Array(0)
				return false
			}
		default:
			w.Error("ERR syntax error")
			return false
		}
	}
	// A pattern's literal prefix bounds the range read.
	var end []byte
	if prefix := literalPrefix(pattern); len(prefix) > 0 {
		if len(prefix) > kv.MaxKeyLen {
			w.Array(2)
			w.Bulk([]byte("0"))
			w.Array(0)
			return false
		}
		if bytes.Compare(start, prefix) < 0 {
			start = prefix
		}
		end = kv.PrefixEnd(prefix)
	}
	res, err := s.submit(ctx, kv.Scan(start, end, count))
	var page []kv.KV
	var more bool
	if err == nil {
		page, more, err = kv.DecodeScanPage(res)
	}
	if err != nil {
		w.Error(s.clusterError(err))
		return false
	}
	next := "0"
	if more && len(page) > 0 {
		if resume := kv.ResumeKey(page[len(page)-1].Key); resume != nil {
			next = strconv.FormatUint(s.cursors.put(resume), 10)
		}
	}
	w.Array(2)
	w.Bulk([]byte(next))
	var keys [][]byte
	for _, e := range page {
		if pattern == nil || globMatch(pattern, e.Key) {
			keys = append(keys, e.Key)
		}
	}
	w.Array(len(keys))
	for _, k := range keys {
		w.Bulk(k)
	}
	return false
}

// cmdSelect accepts database 0, the only one.
func cmdSelect(_ context.Context, _ *session, w *Writer, args [][]byte) bool {
	if string(args[1]) == "0" {
		w.Simple("OK")
	} else {
		w.Error("ERR DB index is out of range (the Braid gateway has database 0 only)")
	}
	return false
}

// cmdCommand answers the introspection redis-cli sends at connect
// (COMMAND DOCS, for its hints) with an empty list, which clients take as
// "no documentation"; COMMAND COUNT gives the number of commands.
func cmdCommand(_ context.Context, _ *session, w *Writer, args [][]byte) bool {
	if len(args) == 2 && strings.EqualFold(string(args[1]), "COUNT") {
		w.Int(int64(len(commandTable)))
		return false
	}
	w.Array(0)
	return false
}

// cmdConfig answers CONFIG GET with an empty list (no parameter is
// exposed): redis-benchmark asks for "save" and "appendonly" at start and
// carries on with an empty answer, where an error would abort it. CONFIG
// SET and the rest are refused.
func cmdConfig(_ context.Context, _ *session, w *Writer, args [][]byte) bool {
	if strings.EqualFold(string(args[1]), "GET") && len(args) >= 3 {
		w.Array(0)
		return false
	}
	w.Error(fmt.Sprintf("ERR CONFIG %s is not supported by the Braid gateway (CONFIG GET answers an empty list)", quoteForError(args[1])))
	return false
}

// cmdClient accepts the connection-naming calls client libraries make at
// connect (SETNAME, SETINFO) and answers nothing else.
func cmdClient(_ context.Context, _ *session, w *Writer, args [][]byte) bool {
	switch strings.ToUpper(string(args[1])) {
	case "SETNAME", "SETINFO":
		w.Simple("OK")
	case "GETNAME":
		w.Null()
	default:
		w.Error(fmt.Sprintf("ERR CLIENT %s is not supported by the Braid gateway", quoteForError(args[1])))
	}
	return false
}

// cursorTable maps one connection's SCAN cursors to the key each scan
// resumes from. Cursors are decimal numbers because clients parse them as
// unsigned 64-bit integers (redis-cli --scan does), which a stateless
// encoding of a key of up to 1 KiB cannot be. Each connection keeps its
// last maxCursors cursors, so no client can evict another's; a cursor from
// another connection, an evicted one, or one from before a gateway restart
// is refused with "invalid cursor" (numbering starts at a random 62-bit
// value in each process, so an old cursor does not silently resume another
// scan) and the scan must start again.
type cursorTable struct {
	keys  map[uint64][]byte
	order []uint64 // ring of the ids in keys, oldest at head
	head  int
}

const maxCursors = 64

// cursorSeq numbers cursors across the process's connections.
var cursorSeq atomic.Uint64

func init() {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	cursorSeq.Store(binary.BigEndian.Uint64(b[:])>>2 + 1)
}

func newCursorTable() *cursorTable {
	return &cursorTable{keys: make(map[uint64][]byte)}
}

// put stores key under a new cursor. A connection runs one command at a
// time, so its table needs no lock.
func (t *cursorTable) put(key []byte) uint64 {
	id := cursorSeq.Add(1)
	if len(t.order) < maxCursors {
		t.order = append(t.order, id)
	} else {
		delete(t.keys, t.order[t.head])
		t.order[t.head] = id
		t.head = (t.head + 1) % maxCursors
	}
	t.keys[id] = key
	return id
}

func (t *cursorTable) get(id uint64) ([]byte, bool) {
	k, ok := t.keys[id]
	return k, ok
}
