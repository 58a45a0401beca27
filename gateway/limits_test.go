package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// pipeListener is a listener of in-memory connections (net.Pipe), whose
// writes block until the other end reads: it shows what a peer that does
// not read does to the server.
type pipeListener struct {
	conns     chan net.Conn
	closeOnce sync.Once
	done      chan struct{}
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// dial returns the client end of a new connection.
func (l *pipeListener) dial(t *testing.T) net.Conn {
	t.Helper()
	srv, cli := net.Pipe()
	select {
	case l.conns <- srv:
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not accept")
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func servePipe(t *testing.T, exec Executor, opts Options) *pipeListener {
	t.Helper()
	ln := newPipeListener()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewServer(exec, opts).Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return ln
}

func pingPipe(c net.Conn, d time.Duration) error {
	_ = c.SetDeadline(time.Now().Add(d))
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		return err
	}
	buf := make([]byte, 7)
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != "+PONG\r\n" {
		return fmt.Errorf("got %q", buf)
	}
	return nil
}

// TestRefusalDoesNotStallAccept: a refused connection whose peer does not
// read its "max number of clients" line holds neither the accept loop nor
// the server's lock (it held both for a second before).
func TestRefusalDoesNotStallAccept(t *testing.T) {
	// A refusal that could stall the server stalls it for a minute, far
	// past the 5 s this test waits: no timing threshold to tune.
	ln := servePipe(t, newLocalExec(), Options{MaxConns: 1, RefusalTimeout: time.Minute})
	a := ln.dial(t)
	if err := pingPipe(a, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	ln.dial(t)                        // refused; never reads the refusal
	time.Sleep(50 * time.Millisecond) // the refusal is being written
	start := time.Now()
	a.Close()
	for {
		c := ln.dial(t)
		if err := pingPipe(c, 100*time.Millisecond); err == nil {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("no connection served within 5 s after the first closed: the refusal stalled the server")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWriteTimeout: a peer that sends a command and never reads the reply
// is closed after WriteTimeout.
func TestWriteTimeout(t *testing.T) {
	ln := servePipe(t, newLocalExec(), Options{WriteTimeout: 100 * time.Millisecond})
	c := ln.dial(t)
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 16)); err == nil {
		t.Fatalf("read %d bytes of a reply written after its write deadline: the connection was kept", n)
	}
}

// TestIdleTimeout: a connection that sends nothing is closed after
// IdleTimeout; one that keeps sending is not.
func TestIdleTimeout(t *testing.T) {
	addr := startServer(t, newLocalExec(), Options{IdleTimeout: 200 * time.Millisecond})
	busy, idle := DialRESP(t, addr), DialRESP(t, addr)
	for range 4 {
		if got := busy.Do("PING"); got != Status("PONG") {
			t.Fatalf("busy connection: %#v", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = idle.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idle.br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("idle connection: %v, want EOF (closed by the server)", err)
	}
}

// TestServeReturnsListenerError: a listener closed by someone else ends
// Serve with its error; Serve returned nil for it before.
func TestServeReturnsListenerError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- NewServer(newLocalExec(), Options{}).Serve(context.Background(), ln) }()
	time.Sleep(50 * time.Millisecond)
	ln.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Serve = %v, want the listener's net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
}

// TestBulkAllocatedAsItArrives: a header announcing a 1 MiB argument
// allocates only a first chunk until the data comes.
func TestBulkAllocatedAsItArrives(t *testing.T) {
	in := "*1\r\n$1048576\r\nabc"
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 10 {
		if _, err := NewReader(strings.NewReader(in)).ReadCommand(); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("truncated command: %v", err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / 10; per > 256<<10 {
		t.Fatalf("%d bytes allocated per 17-byte command, want at most a first chunk", per)
	}
	// A full argument still reads right, across growth steps.
	v := strings.Repeat("x", 300_000)
	args, err := NewReader(strings.NewReader(fmt.Sprintf("*2\r\n$3\r\nSET\r\n$%d\r\n%s\r\n", len(v), v))).ReadCommand()
	if err != nil || len(args) != 2 || string(args[1]) != v {
		t.Fatalf("300 kB argument: %d args, %v", len(args), err)
	}
}

// TestMemoryBudget: while one connection holds most of the shared budget
// with a large command still arriving, another's large command is refused
// (and its connection closed); once the first is gone, the same command
// gets its ordinary answer.
func TestMemoryBudget(t *testing.T) {
	addr := startServer(t, newLocalExec(), Options{MaxInflightBytes: 1 << 20})
	hog := DialRESP(t, addr)
	if _, err := fmt.Fprintf(hog.c, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1000000\r\n%s", strings.Repeat("x", 600_000)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let the server read it
	big := strings.Repeat("v", 300_000)
	if got := DialRESP(t, addr).Do("SET", "k", big); got != RESPError("ERR "+errMemory.Error()) {
		t.Fatalf("SET of 300 kB beside the hog: %.100v", got)
	}
	hog.c.Close()
	time.Sleep(100 * time.Millisecond)
	if got, _ := DialRESP(t, addr).Do("SET", "k", big).(RESPError); !strings.HasPrefix(string(got), "ERR too large") {
		t.Fatalf("SET of 300 kB alone: %.100v", got)
	}
}

func TestAccount(t *testing.T) {
	b := &budget{max: 100}
	a, c := account{b: b, free: 10}, account{b: b, free: 10}
	if a.charge(60) != nil || c.charge(60) != nil { // 50 + 50 from the budget
		t.Fatal("charges within the budget refused")
	}
	if !errors.Is(c.charge(1), errMemory) || b.used != 100 {
		t.Fatalf("charge beyond the budget: used %d", b.used)
	}
	a.reset()
	if c.charge(1) != nil || b.used != 51 {
		t.Fatalf("after a reset: used %d, want 51", b.used)
	}
	c.reset()
	if b.used != 0 {
		t.Fatalf("all reset: used %d", b.used)
	}
}

// slowExec takes d per request (or until ctx ends).
type slowExec struct {
	Executor
	d time.Duration
}

func (s slowExec) Execute(ctx context.Context, op []byte) ([]byte, error) {
	select {
	case <-time.After(s.d):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.Executor.Execute(ctx, op)
}

// TestOneDeadlinePerCommand: an MGET of more keys than run at once shares
// one Timeout; before, each request had its own, so the command could take
// Timeout × keys / maxFanOut.
func TestOneDeadlinePerCommand(t *testing.T) {
	addr := startServer(t, slowExec{newLocalExec(), 80 * time.Millisecond}, Options{Timeout: 200 * time.Millisecond})
	args := []string{"MGET"}
	for i := range 5 * maxFanOut {
		args = append(args, fmt.Sprint("k", i))
	}
	start := time.Now()
	got := DialRESP(t, addr).Do(args...)
	if got != RESPError("ERR the cluster did not answer within 200ms") {
		t.Fatalf("MGET of %d keys at 80 ms each: %.80v after %v, want the command's timeout", len(args)-1, got, time.Since(start))
	}
}

// TestIntegerArguments: Redis's integer syntax, not strconv's.
func TestIntegerArguments(t *testing.T) {
	rc := DialRESP(t, startServer(t, newLocalExec(), Options{}))
	notInt := RESPError("ERR value is not an integer or out of range")
	for _, tc := range []struct {
		args []string
		want any
	}{
		{[]string{"INCRBY", "n", "+5"}, notInt},
		{[]string{"INCRBY", "n", "007"}, notInt},
		{[]string{"INCRBY", "n", "-0"}, notInt},
		{[]string{"DECRBY", "n", " 1"}, notInt},
		{[]string{"SCAN", "0", "COUNT", "+5"}, notInt},
		{[]string{"SCAN", "0", "COUNT", "05"}, notInt},
		{[]string{"INCRBY", "n", "5"}, int64(5)},
		{[]string{"INCRBY", "n", "-10"}, int64(-5)},
		{[]string{"SCAN", "0", "COUNT", "5"}, []any{b("0"), []any{b("n")}}},
	} {
		if got := rc.Do(tc.args...); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %#v, want %#v", tc.args, got, tc.want)
		}
	}
}

// TestScanCursorsPerConnection: one connection's cursors neither resolve
// on another nor get evicted by another's scans, and cursor numbers do
// not start at 1 (an old cursor would resume a new process's scans).
func TestScanCursorsPerConnection(t *testing.T) {
	addr := startServer(t, newLocalExec(), Options{})
	a, other := DialRESP(t, addr), DialRESP(t, addr)
	for i := range 5 {
		a.Do("SET", fmt.Sprint("k", i), "v")
	}
	cursor := string(a.Do("SCAN", "0", "COUNT", "2").([]any)[0].([]byte))
	var id uint64
	if _, err := fmt.Sscan(cursor, &id); err != nil || id < 1<<32 {
		t.Fatalf("cursor %q: want a large number (random start)", cursor)
	}
	if got := other.Do("SCAN", cursor); got != RESPError("ERR invalid cursor") {
		t.Fatalf("another connection's cursor: %#v", got)
	}
	for range 2 * maxCursors {
		other.Do("SCAN", "0", "COUNT", "1")
	}
	r := a.Do("SCAN", cursor, "COUNT", "2").([]any)
	if keys := r[1].([]any); len(keys) != 2 || string(keys[0].([]byte)) != "k2" {
		t.Fatalf("resumed scan after another connection's %d scans: %#v", 2*maxCursors, r)
	}
}

func TestScanMatchBounded(t *testing.T) {
	rc := DialRESP(t, startServer(t, newLocalExec(), Options{}))
	if got := rc.Do("SCAN", "0", "MATCH", strings.Repeat("*a", maxPatternLen/2+1)); got != RESPError(fmt.Sprintf("ERR MATCH pattern longer than %d bytes", maxPatternLen)) {
		t.Fatalf("long pattern: %#v", got)
	}
}

// TestGlobWorstCase: the patterns that make a backtracking matcher
// exponential, at the longest pattern and key, over a full page, finish
// quickly.
func TestGlobWorstCase(t *testing.T) {
	key := []byte(strings.Repeat("a", 1024))
	patterns := [][]byte{
		[]byte(strings.Repeat("*a", maxPatternLen/2-1) + "*b"),
		[]byte("*" + strings.Repeat("a", 1000) + "b"),
		[]byte(strings.Repeat("a*", 30) + "b"),
		[]byte(strings.Repeat("?", maxPatternLen-1) + "*"),
	}
	start := time.Now()
	for _, p := range patterns {
		for range 1000 {
			if globMatch(p, key) {
				t.Fatalf("%.20q… matched", p)
			}
		}
	}
	t.Logf("4000 worst-case matches: %v (an exponential matcher would not finish; BenchmarkGlobWorstCase measures it)", time.Since(start))
}

func BenchmarkGlobWorstCase(b *testing.B) {
	key := []byte(strings.Repeat("a", 1024))
	p := []byte(strings.Repeat("*a", maxPatternLen/2-1) + "*b")
	for b.Loop() {
		globMatch(p, key)
	}
}

func TestLimitListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := LimitListener(inner, 2)
	defer ln.Close()
	accepted := make(chan net.Conn, 3)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	for range 3 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	first, second := <-accepted, <-accepted
	select {
	case <-accepted:
		t.Fatal("a third connection accepted while two are open")
	case <-time.After(200 * time.Millisecond):
	}
	first.Close()
	first.Close() // a second Close releases nothing more
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("the third connection not accepted after one closed")
	}
	second.Close()
	ln.Close()
	for range accepted {
	}
}

// TestHTTPKeyQuery: keys the path cannot carry (ServeMux cleans //, /./
// and /../ with a redirect) go in ?key= or ?key_base64=.
func TestHTTPKeyQuery(t *testing.T) {
	h := NewHTTP(newLocalExec(), Options{})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/kv/a//b", nil))
	if rec.Code/100 != 3 {
		t.Fatalf("path key with //: %d (the doc says it is redirected)", rec.Code)
	}
	for _, s := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"PUT", "/v1/kv?key=a//b/../c", `{"value":"1"}`, 200, `"key":"a//b/../c"`},
		{"GET", "/v1/kv?key=a%2F%2Fb%2F..%2Fc", "", 200, `"value":"1"`},
		{"GET", "/v1/kv?key_base64=YS8vYi8uLi9j", "", 200, `"key":"a//b/../c"`},
		{"POST", "/v1/kv?key=a//b/../c", `{"expected":"1","value":"2"}`, 200, `"swapped":true`},
		{"GET", "/v1/kv?key=a//b/../c", "", 200, `"value":"2"`},
		{"GET", "/v1/kv?key=x&key_base64=eA==", "", 400, `not both`},
		{"GET", "/v1/kv?key_base64=!", "", 400, `key_base64`},
		{"DELETE", "/v1/kv?key=a//b/../c", "", 200, `"deleted":true`},
		{"GET", "/v1/kv?key=a//b/../c", "", 404, `not found`},
		{"GET", "/v1/kv?key=", "", 404, `not found`},
	} {
		code, out := call(t, h, s.method, s.path, s.body)
		js, _ := json.Marshal(out)
		if code != s.code || !strings.Contains(string(js), s.want) {
			t.Errorf("%s %s %s: %d %s, want %d with %s", s.method, s.path, s.body, code, js, s.code, s.want)
		}
	}
}
