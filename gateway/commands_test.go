package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/braid-bft/braid/app"
	"github.com/braid-bft/braid/app/bank"
	"github.com/braid-bft/braid/app/kv"
	"github.com/braid-bft/braid/app/mux"
	"github.com/braid-bft/braid/client"
)

// localExec runs operations on an in-process application, as one replica
// would, under a caller chosen like the Pool's choice of key: caller-bound
// bank ops (bank.CallerBound) as the owner, localOwner, and every other op
// as the next of the other keys in turn, so that tests see the same
// ownership rules and a handler that bypassed the owner routing would
// fail them.
type localExec struct {
	mu    sync.Mutex
	app   *mux.App
	err   error // if set, every Execute fails with it
	calls int
	block chan struct{} // if set, Execute waits for it (or ctx)
}

// localOwner is localExec's owner id; other ops rotate over localOthers
// ids after it.
const (
	localOwner  = 7
	localOthers = 3
)

func newLocalExec() *localExec { return &localExec{app: mux.New(kv.Shared)} }

func (l *localExec) Execute(ctx context.Context, op []byte) ([]byte, error) {
	if l.block != nil {
		select {
		case <-l.block:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting: %w", ctx.Err())
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	if l.err != nil {
		return nil, l.err
	}
	caller := app.CallerID(localOwner + 1 + uint64(l.calls%localOthers))
	if bank.CallerBound(op) {
		caller = app.CallerID(localOwner)
	}
	return l.app.Execute(caller, op), nil
}

// startServer serves RESP over exec on a loopback port until the test
// ends, and checks that Serve returns.
func startServer(t testing.TB, exec Executor, opts Options) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	srv := NewServer(exec, opts)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return ln.Addr().String()
}

func b(s string) []byte { return []byte(s) }

// TestCommands runs every command against a local application and checks
// the exact replies.
func TestCommands(t *testing.T) {
	rc := DialRESP(t, startServer(t, newLocalExec(), Options{}))
	for _, step := range []struct {
		args []string
		want any
	}{
		{[]string{"PING"}, Status("PONG")},
		{[]string{"ping", "hi"}, b("hi")},
		{[]string{"PING", "a", "b"}, RESPError("ERR wrong number of arguments for 'ping' command")},
		{[]string{"ECHO", "x\r\ny"}, b("x\r\ny")},
		{[]string{"GET", "k"}, nil},
		{[]string{"SET", "k", "v"}, Status("OK")},
		{[]string{"get", "k"}, b("v")},
		{[]string{"SET", "k", "v2", "NX"}, nil},
		{[]string{"SET", "k2", "w", "nx"}, Status("OK")},
		{[]string{"SET", "k", "v", "EX", "10"}, RESPError("ERR SET option 'EX' is not supported by the Braid gateway (only SET key value [NX])")},
		{[]string{"SET", "k", "v", "BOGUS"}, RESPError("ERR syntax error")},
		{[]string{"SET", "k"}, RESPError("ERR wrong number of arguments for 'set' command")},
		{[]string{"EXISTS", "k", "nope", "k"}, int64(2)},
		{[]string{"MSET", "a", "1", "b", "2", "a", "3"}, Status("OK")},
		{[]string{"MSET", "a", "1", "b"}, RESPError("ERR wrong number of arguments for 'mset' command")},
		{[]string{"MGET", "a", "b", "nope"}, []any{b("3"), b("2"), nil}},
		{[]string{"INCR", "n"}, int64(1)},
		{[]string{"INCR", "n"}, int64(2)},
		{[]string{"DECR", "n"}, int64(1)},
		{[]string{"INCRBY", "n", "10"}, int64(11)},
		{[]string{"DECRBY", "n", "20"}, int64(-9)},
		{[]string{"INCRBY", "n", "x"}, RESPError("ERR value is not an integer or out of range")},
		{[]string{"DECRBY", "n", "-9223372036854775808"}, RESPError("ERR decrement would overflow")},
		{[]string{"INCR", "k"}, RESPError("ERR value is not an integer or out of range")},
		{[]string{"SET", "big", "9223372036854775807"}, Status("OK")},
		{[]string{"INCR", "big"}, RESPError("ERR increment or decrement would overflow")},
		{[]string{"GET", "n"}, b("-9")},
		{[]string{"DEL", "a", "b", "nope"}, int64(2)},
		{[]string{"DEL", "a"}, int64(0)},
		{[]string{"SELECT", "0"}, Status("OK")},
		{[]string{"SELECT", "1"}, RESPError("ERR DB index is out of range (the Braid gateway has database 0 only)")},
		{[]string{"CONFIG", "GET", "save"}, []any{}},
		{[]string{"CONFIG", "SET", "save", ""}, RESPError("ERR CONFIG SET is not supported by the Braid gateway (CONFIG GET answers an empty list)")},
		{[]string{"COMMAND", "DOCS"}, []any{}},
		{[]string{"COMMAND"}, []any{}},
		{[]string{"COMMAND", "COUNT"}, int64(len(commandTable))},
		{[]string{"CLIENT", "SETNAME", "x"}, Status("OK")},
		{[]string{"CLIENT", "KILL"}, RESPError("ERR CLIENT KILL is not supported by the Braid gateway")},
		{[]string{"FLUSHALL"}, RESPError("ERR unknown command 'FLUSHALL'")},
		{[]string{"hget\x01'"}, RESPError(`ERR unknown command 'hget\x01\x27'`)},
		{[]string{"GET", strings.Repeat("k", kv.MaxKeyLen+1)}, RESPError("ERR key longer than 1024 bytes")},
		{[]string{"SET", "k", strings.Repeat("v", 65520)}, RESPError("ERR too large: the operation would be 65530 bytes, at most 65507 fit in a request")},
	} {
		if got := rc.Do(step.args...); !reflect.DeepEqual(got, step.want) {
			t.Errorf("%.60q: got %#v, want %#v", step.args, got, step.want)
		}
	}
	if got := rc.Do("QUIT"); got != Status("OK") {
		t.Errorf("QUIT: %#v", got)
	}
	if _, err := readReply(rc.br); err == nil {
		t.Error("connection still open after QUIT")
	}
}

func TestLargeValueFits(t *testing.T) {
	rc := DialRESP(t, startServer(t, newLocalExec(), Options{}))
	v := strings.Repeat("v", 65000)
	// What fits goes through; the test above pins the exact limit's message.
	if got := rc.Do("SET", "k", v[:60000]); got != Status("OK") {
		t.Fatalf("SET of 60000 bytes: %#v", got)
	}
	if got := rc.Do("GET", "k"); !reflect.DeepEqual(got, b(v[:60000])) {
		t.Fatal("GET of 60000 bytes differs")
	}
}

func TestScan(t *testing.T) {
	rc := DialRESP(t, startServer(t, newLocalExec(), Options{}))
	want := map[string]bool{}
	for i := range 25 {
		k := fmt.Sprintf("user:%02d", i)
		want[k] = true
		rc.Do("SET", k, "x")
	}
	rc.Do("SET", "other", "x")
	rc.Do("SET", "usex", "x")
	got := map[string]bool{}
	cursor, calls := "0", 0
	for {
		calls++
		r := rc.Do("SCAN", cursor, "MATCH", "user:*", "COUNT", "10").([]any)
		for _, k := range r[1].([]any) {
			if got[string(k.([]byte))] {
				t.Fatalf("key %s returned twice", k)
			}
			got[string(k.([]byte))] = true
		}
		cursor = string(r[0].([]byte))
		if cursor == "0" {
			break
		}
		if calls > 10 {
			t.Fatal("scan does not end")
		}
	}
	if !reflect.DeepEqual(got, want) || calls != 3 {
		t.Fatalf("scan found %d keys in %d calls, want the 25 user:* keys in 3", len(got), calls)
	}
	// Without MATCH every key, in key order.
	r := rc.Do("SCAN", "0", "COUNT", "1000").([]any)
	if keys := r[1].([]any); len(keys) != 27 || string(keys[0].([]byte)) != "other" || string(r[0].([]byte)) != "0" {
		t.Fatalf("full scan: cursor %q, %d keys", r[0], len(keys))
	}
	// A middle-of-key pattern filters the page: fewer keys than COUNT,
	// non-zero cursor, as in Redis.
	r = rc.Do("SCAN", "0", "MATCH", "*0", "COUNT", "5").([]any)
	if string(r[0].([]byte)) == "0" || len(r[1].([]any)) != 1 {
		t.Fatalf("filtered page: %#v", r)
	}
	for _, tc := range []struct {
		args []string
		want any
	}{
		{[]string{"SCAN", "12345678"}, RESPError("ERR invalid cursor")},
		{[]string{"SCAN", "x"}, RESPError("ERR invalid cursor")},
		{[]string{"SCAN", "0", "COUNT", "0"}, RESPError("ERR value is not an integer or out of range")},
		{[]string{"SCAN", "0", "MATCH"}, RESPError("ERR syntax error")},
		{[]string{"SCAN", "0", "FOO", "1"}, RESPError("ERR syntax error")},
		{[]string{"SCAN", "0", "TYPE", "hash"}, []any{b("0"), []any{}}},
	} {
		if got := rc.Do(tc.args...); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %#v, want %#v", tc.args, got, tc.want)
		}
	}
}

func TestCursorTableIsBounded(t *testing.T) {
	ct := newCursorTable()
	first := ct.put(b("a"))
	for range maxCursors {
		ct.put(b("b"))
	}
	if _, ok := ct.get(first); ok {
		t.Fatal("oldest cursor kept past the bound")
	}
	if len(ct.keys) != maxCursors {
		t.Fatalf("%d cursors kept, want %d", len(ct.keys), maxCursors)
	}
	if k, ok := ct.get(first + maxCursors); !ok || string(k) != "b" {
		t.Fatal("newest cursor lost")
	}
}

func TestInlineAndPipelined(t *testing.T) {
	rc := DialRESP(t, startServer(t, newLocalExec(), Options{}))
	if _, err := rc.c.Write([]byte("PING\r\nSET a 1\r\nGET a\r\n")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []any{Status("PONG"), Status("OK"), b("1")} {
		if got := rc.reply(); !reflect.DeepEqual(got, want) {
			t.Fatalf("got %#v, want %#v", got, want)
		}
	}
	// Many pipelined commands, one write: replies come back in order.
	var sb strings.Builder
	for i := range 200 {
		fmt.Fprintf(&sb, "*2\r\n$4\r\nECHO\r\n$%d\r\n%d\r\n", len(fmt.Sprint(i)), i)
	}
	if _, err := rc.c.Write([]byte(sb.String())); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if got := rc.reply(); string(got.([]byte)) != fmt.Sprint(i) {
			t.Fatalf("reply %d: %q", i, got)
		}
	}
}

func TestProtocolErrorClosesConnection(t *testing.T) {
	rc := DialRESP(t, startServer(t, newLocalExec(), Options{}))
	if _, err := rc.c.Write([]byte("*1\r\n+PING\r\n")); err != nil {
		t.Fatal(err)
	}
	if got := rc.reply(); got != RESPError("ERR Protocol error: expected '$', got '+'") {
		t.Fatalf("got %#v", got)
	}
	if _, err := readReply(rc.br); err == nil {
		t.Fatal("connection still open after a protocol error")
	}
}

func TestClusterErrors(t *testing.T) {
	ex := newLocalExec()
	rc := DialRESP(t, startServer(t, ex, Options{Timeout: 50 * time.Millisecond}))
	for _, tc := range []struct {
		err  error
		want RESPError
	}{
		{fmt.Errorf("x: %w", client.ErrNoReplicas), "ERR no replica reachable: is the cluster running?"},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), "ERR the cluster did not answer within 50ms"},
		{fmt.Errorf("%w: %w", ErrBusy, context.DeadlineExceeded), "ERR gateway busy: every cluster client was in use for 50ms"},
		{client.ErrClosed, "ERR gateway shutting down or request cancelled"},
	} {
		ex.mu.Lock()
		ex.err = tc.err
		ex.mu.Unlock()
		if got := rc.Do("GET", "k"); got != tc.want {
			t.Errorf("%v: got %#v, want %#v", tc.err, got, tc.want)
		}
	}
	// A cluster that never answers: the command times out, the connection stays.
	ex.mu.Lock()
	ex.err, ex.block = nil, make(chan struct{})
	ex.mu.Unlock()
	if got := rc.Do("SET", "k", "v"); got != RESPError("ERR the cluster did not answer within 50ms") {
		t.Errorf("blocked cluster: %#v", got)
	}
	if got := rc.Do("PING"); got != Status("PONG") {
		t.Errorf("PING after a timeout: %#v", got)
	}
}

func TestMaxConns(t *testing.T) {
	addr := startServer(t, newLocalExec(), Options{MaxConns: 2})
	a, bb := DialRESP(t, addr), DialRESP(t, addr)
	a.Do("PING")
	bb.Do("PING") // both registered before the third arrives
	c := DialRESP(t, addr)
	if got := c.reply(); got != RESPError("ERR max number of clients reached") {
		t.Fatalf("third connection: %#v", got)
	}
}

// TestShutdownClosesConnections: cancelling Serve ends idle connections
// and commands waiting on the cluster, and Serve returns (startServer's
// cleanup checks that, and the race detector that nothing leaks).
func TestShutdownClosesConnections(t *testing.T) {
	ex := newLocalExec()
	ex.block = make(chan struct{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewServer(ex, Options{Timeout: time.Hour}).Serve(ctx, ln) }()
	idle, busy := DialRESP(t, ln.Addr().String()), DialRESP(t, ln.Addr().String())
	idle.Do("PING")
	busy.send("GET", "k") // waits on the blocked cluster
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	for _, rc := range []*RESPClient{idle, busy} {
		_ = rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if v, err := readReply(rc.br); err == nil && v != RESPError("ERR gateway shutting down or request cancelled") {
			t.Fatalf("connection still served after shutdown: %#v", v)
		}
	}
}

// FuzzDispatch runs whatever commands arbitrary bytes parse into against a
// local application: no handler may panic on any arguments, and every
// command gets exactly one well-formed reply.
func FuzzDispatch(f *testing.F) {
	for _, seed := range []string{
		"SET k v\r\nGET k\r\nINCR k\r\n",
		"SCAN 0 MATCH [a-\\\r\nSCAN 1 COUNT\r\n",
		"MSET a 1 b\r\nMGET a b c\r\nDEL a\r\nEXISTS a a\r\n",
		"INCRBY n -9223372036854775808\r\nDECRBY n -9223372036854775808\r\n",
		"CONFIG GET\r\nCLIENT\r\nCOMMAND COUNT x\r\nSELECT 0\r\nPING a b\r\nQUIT\r\n",
		"SET k v NX EX 1\r\nSET k v nx nx\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := NewServer(newLocalExec(), Options{}).newSession()
		r := NewReader(bytes.NewReader(data))
		for range 32 {
			args, err := r.ReadCommand()
			if err != nil {
				return
			}
			var out bytes.Buffer
			w := NewWriter(&out)
			quit := s.dispatch(context.Background(), w, args)
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(bytes.NewReader(out.Bytes()))
			if _, err := readReply(br); err != nil {
				t.Fatalf("%q: malformed reply %q: %v", args, out.Bytes(), err)
			}
			if _, err := br.Peek(1); err != io.EOF {
				t.Fatalf("%q: more than one reply in %q", args, out.Bytes())
			}
			if quit {
				return
			}
		}
	})
}

func TestMGetBounded(t *testing.T) {
	rc := DialRESP(t, startServer(t, newLocalExec(), Options{}))
	v := strings.Repeat("v", 60000)
	args := []string{"MGET"}
	for i := range maxMGetBytes/len(v) + 1 {
		k := fmt.Sprint("big", i)
		if got := rc.Do("SET", k, v); got != Status("OK") {
			t.Fatalf("SET: %#v", got)
		}
		args = append(args, k)
	}
	if got := rc.Do(args...); got != RESPError("ERR too large: MGET reply larger than 16 MiB: ask for fewer keys") {
		t.Fatalf("MGET of %d values of %d bytes: %.100v", len(args)-1, len(v), got)
	}
	if got := rc.Do("MGET", "big0", "nope", "big1"); !reflect.DeepEqual(got, []any{b(v), nil, b(v)}) {
		t.Fatal("MGET of three keys differs")
	}
}

func TestFanOut(t *testing.T) {
	var mu sync.Mutex
	ran, running, most := 0, 0, 0
	boom := errors.New("boom")
	err := fanOut(context.Background(), 100, func(ctx context.Context, i int) error {
		mu.Lock()
		ran++
		running++
		most = max(most, running)
		mu.Unlock()
		defer func() { mu.Lock(); running--; mu.Unlock() }()
		switch {
		case i == 20:
			return boom
		case i > 20: // in flight until the failure cancels it
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	})
	if !errors.Is(err, boom) || ran > 21+maxFanOut || most > maxFanOut {
		t.Fatalf("err %v after %d of 100 (at most %d at once): want boom, the rest not started, ≤ %d at once", err, ran, most, maxFanOut)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := fanOut(ctx, 3, func(context.Context, int) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
}
