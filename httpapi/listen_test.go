package httpapi

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/braid-bft/braid/ledger"
	"github.com/braid-bft/braid/ledger/ledgertest"
)

// TestListenConnLimit: with MaxConns 2, two idle connections hold the
// listener; a third is not served until one of them closes.
func TestListenConnLimit(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	srv, err := Listen("127.0.0.1:0", h, Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(context.Background())
	addr := srv.Addr().String()
	var idle []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	get := func() error {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")); err != nil {
			return err
		}
		_, err = http.ReadResponse(bufio.NewReader(c), nil)
		return err
	}
	if err := get(); err == nil {
		t.Fatal("a third connection was served while two were open (MaxConns 2)")
	}
	idle[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := get()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not served after a connection closed: %v", err)
		}
	}
}

// TestAllowedHosts: with AllowedHosts set (as a replica sets it from its
// http_addr), a request whose Host is another name — a DNS-rebinding
// page's — gets 421; the listener's own address and loopback names pass.
func TestAllowedHosts(t *testing.T) {
	h := New(&fakeSource{snap: testSnapshot()}, Options{AllowedHosts: AllowedHostsFor("10.1.2.3:7008")})
	for host, want := range map[string]int{
		"10.1.2.3:7008": 200, "localhost:7008": 200, "LOCALHOST:7008": 200, "127.0.0.1:7008": 200, "[::1]:7008": 200,
		"evil.example:7008": 421, "10.1.2.3:7009": 421, "localhost": 421, "10.1.2.4:7008": 421, "": 421,
	} {
		req := httptest.NewRequest("GET", PathStatus, nil)
		req.Host = host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("Host %q: %d %s, want %d", host, rec.Code, rec.Body.String(), want)
		}
	}
	h = New(&fakeSource{snap: testSnapshot()}, Options{AllowedHosts: AllowedHostsFor("0.0.0.0:7008", "alpha.example.org:7006")})
	for host, want := range map[string]int{"alpha.example.org:7008": 200, "alpha.example.org:7006": 421, "192.168.1.9:7008": 200, "[fe80::1]:7008": 200, "localhost:7008": 200, "evil.example:7008": 421, "192.168.1.9:80": 421} {
		req := httptest.NewRequest("GET", PathStatus, nil)
		req.Host = host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("wildcard bind, Host %q: %d %s, want %d", host, rec.Code, rec.Body.String(), want)
		}
	}
}

// gatedChain is a chain whose block reads wait for gate, announcing each
// on entered: block reads that hold the store's lock.
type gatedChain struct {
	ledger.Source
	gate    chan struct{}
	entered chan struct{}
}

func (g *gatedChain) Block(h uint64) (*ledger.Block, error) {
	g.entered <- struct{}{}
	<-g.gate
	return g.Source.Block(h)
}

// TestBlockRequestsBounded: with BlockRequests 2, two block requests in
// the store keep a third out; it waits up to Timeout and gets 503 with
// Retry-After, and is served once the others are done.
func TestBlockRequestsBounded(t *testing.T) {
	chain := &gatedChain{Source: ledgertest.NewChain(10, 4, 5), gate: make(chan struct{}), entered: make(chan struct{}, 16)}
	addr := serve(t, &fakeSource{snap: testSnapshot(), chain: chain}, Options{BlockRequests: 2, Timeout: 200 * time.Millisecond})
	done := make(chan int, 2)
	for _, path := range []string{"/v1/blocks/1", "/v1/blocks?from=1&to=3"} {
		go func() {
			resp, err := http.Get("http://" + addr + path)
			if err != nil {
				done <- 0
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
	}
	for range 2 {
		<-chain.entered
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get("http://" + addr + "/v1/blocks/2")
	if err != nil {
		close(chain.gate)
		t.Fatalf("a third block request while two are in the store: %v (want 503)", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("third block request: %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	close(chain.gate)
	for range 2 {
		if code := <-done; code != 200 {
			t.Errorf("a held block request answered %d", code)
		}
	}
	if code, _, body := fetch(t, "GET", "http://"+addr+"/v1/blocks/2"); code != 200 {
		t.Errorf("after the others: %d %s", code, body)
	}
}

// countingSource counts Snapshot calls; each takes delay, as a loop
// building a Status does.
type countingSource struct {
	calls atomic.Int64
	delay time.Duration
}

func (c *countingSource) Snapshot(ctx context.Context) (*Snapshot, error) {
	c.calls.Add(1)
	select {
	case <-time.After(c.delay):
		return testSnapshot(), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *countingSource) Ledger() ledger.Source { return nil }

// TestSnapshotShared: concurrent /metrics and /v1/status requests share
// one snapshot of the loop, and a snapshot answers for SnapshotMaxAge;
// after that a new one is taken.
func TestSnapshotShared(t *testing.T) {
	src := &countingSource{delay: 50 * time.Millisecond}
	addr := serve(t, src, Options{Metrics: NewMetrics()})
	start := time.Now() // every snapshot is taken after it, so younger than time.Since(start)
	var wg sync.WaitGroup
	for i := range 20 {
		path := PathStatus
		if i%2 == 1 {
			path = PathMetrics
		}
		wg.Go(func() {
			if code, _, body := fetch(t, "GET", "http://"+addr+path); code != 200 {
				t.Errorf("%s: %d %.200s", path, code, body)
			}
		})
	}
	wg.Wait()
	fast := time.Since(start) < SnapshotMaxAge // else a busy machine may legitimately need a second
	if n := src.calls.Load(); n != 1 && (fast || n > 3) {
		t.Errorf("20 concurrent requests took %d snapshots, want 1", n)
	}
	before := src.calls.Load()
	fetch(t, "GET", "http://"+addr+PathStatus)
	if n := src.calls.Load(); n != before && time.Since(start) < SnapshotMaxAge {
		t.Errorf("a request right after took a new snapshot (%d in all), want the shared one", n)
	}
	time.Sleep(SnapshotMaxAge + 20*time.Millisecond)
	before = src.calls.Load()
	fetch(t, "GET", "http://"+addr+PathStatus)
	if n := src.calls.Load(); n != before+1 {
		t.Errorf("after SnapshotMaxAge: %d snapshots, want %d", n, before+1)
	}
}
