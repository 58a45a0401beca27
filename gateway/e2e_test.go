package gateway_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/client"
	"github.com/braid-bft/braid/config"
	"github.com/braid-bft/braid/gateway"
	"github.com/braid-bft/braid/internal/testcluster"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/replica"
)

// startCluster runs four replicas in-process over loopback TLS with the
// shared kv scope and poolSize admitted client keys, and returns a pool of
// those keys. Everything stops when the test ends.
func startCluster(t *testing.T, poolSize int) *gateway.Pool {
	t.Helper()
	cfg, _ := testcluster.Config(t, 4, true)
	cfg.KVScope = config.KVShared
	var keys []gateway.Key
	cfg.Clients.Keys = nil
	for i := range poolSize {
		pub, priv, err := auth.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		id := uint64(i + 1)
		cfg.Clients.Keys = append(cfg.Clients.Keys, config.ClientKey{ID: id, PublicKey: auth.MarshalPublicKey(pub)})
		keys = append(keys, gateway.Key{ID: msg.ClientID(id), Private: priv})
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range cfg.N {
		r, err := replica.New(cfg, i, replica.Options{Logger: testcluster.Logger()})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.Run(ctx); err != nil {
				t.Errorf("replica %d: %v", i, err)
			}
		}()
	}
	pool, err := gateway.NewPool(cfg, keys, client.Options{Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pool.Close()
		cancel()
		wg.Wait()
	})
	return pool
}

func serveRESP(t *testing.T, exec gateway.Executor) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gateway.NewServer(exec, gateway.Options{Timeout: 15 * time.Second}).Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

type S = gateway.Status
type E = gateway.RESPError

// TestGatewayEndToEnd runs every listed command, many concurrent
// connections and the HTTP routes through a gateway over a real
// four-replica cluster.
func TestGatewayEndToEnd(t *testing.T) {
	pool := startCluster(t, 8)
	wctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if n, err := pool.Warm(wctx); n != pool.Size() {
		t.Fatalf("Warm: %d of %d clients answered: %v", n, pool.Size(), err)
	}
	addr := serveRESP(t, pool)
	rc := gateway.DialRESP(t, addr)

	t.Run("commands", func(t *testing.T) {
		for _, step := range []struct {
			args []string
			want any
		}{
			{[]string{"PING"}, S("PONG")},
			{[]string{"ECHO", "hello"}, []byte("hello")},
			{[]string{"SET", "greeting", "hello"}, S("OK")},
			{[]string{"GET", "greeting"}, []byte("hello")},
			{[]string{"GET", "missing"}, nil},
			{[]string{"SET", "greeting", "x", "NX"}, nil},
			{[]string{"EXISTS", "greeting", "missing"}, int64(1)},
			{[]string{"INCR", "counter"}, int64(1)},
			{[]string{"DECR", "counter"}, int64(0)},
			{[]string{"INCR", "greeting"}, E("ERR value is not an integer or out of range")},
			{[]string{"MSET", "a", "1", "b", "2"}, S("OK")},
			{[]string{"MGET", "a", "b", "missing"}, []any{[]byte("1"), []byte("2"), nil}},
			{[]string{"SCAN", "0", "MATCH", "[ab]", "COUNT", "100"}, []any{[]byte("0"), []any{[]byte("a"), []byte("b")}}},
			{[]string{"DEL", "a", "b", "missing"}, int64(2)},
			{[]string{"CONFIG", "GET", "save"}, []any{}},
			{[]string{"LPUSH", "l", "x"}, E("ERR unknown command 'LPUSH'")},
		} {
			if got := rc.Do(step.args...); !reflect.DeepEqual(got, step.want) {
				t.Errorf("%q: got %#v, want %#v", step.args, got, step.want)
			}
		}
	})

	// Many connections at once, more than the pool's keys: every write is
	// read back, and INCR from all of them loses no increment.
	t.Run("concurrent", func(t *testing.T) {
		const conns, ops = 32, 5
		var wg sync.WaitGroup
		start := time.Now()
		for c := range conns {
			cl := gateway.DialRESP(t, addr)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range ops {
					k, v := fmt.Sprintf("c%d-%d", c, i), fmt.Sprintf("v%d", i)
					if got := cl.Do("SET", k, v); got != S("OK") {
						t.Errorf("SET %s: %#v", k, got)
						return
					}
					if got := cl.Do("GET", k); !reflect.DeepEqual(got, []byte(v)) {
						t.Errorf("GET %s: %#v", k, got)
					}
					if _, ok := cl.Do("INCR", "shared").(int64); !ok {
						t.Errorf("INCR failed")
					}
				}
			}()
		}
		wg.Wait()
		if got := rc.Do("GET", "shared"); !reflect.DeepEqual(got, []byte(fmt.Sprint(conns*ops))) {
			t.Fatalf("shared counter = %#v after %d INCRs", got, conns*ops)
		}
		t.Logf("%d requests over %d connections and %d keys in %v", 3*conns*ops, conns, pool.Size(), time.Since(start).Round(time.Millisecond))
	})

	t.Run("http", func(t *testing.T) {
		hs := httptest.NewServer(gateway.NewHTTP(pool, gateway.Options{Timeout: 15 * time.Second}))
		defer hs.Close()
		do := func(method, path, body string) (int, string) {
			req, err := http.NewRequest(method, hs.URL+path, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := hs.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if !json.Valid(b) {
				t.Fatalf("%s %s: body %q is not JSON", method, path, b)
			}
			return resp.StatusCode, string(b)
		}
		for _, s := range []struct {
			method, path, body string
			code               int
			want               string
		}{
			{"GET", "/v1/kv/greeting", "", 200, `"value":"hello"`}, // written over RESP above
			{"PUT", "/v1/kv/h1", `{"value":"one"}`, 200, `"key":"h1"`},
			{"GET", "/v1/kv/h1", "", 200, `"value":"one"`},
			{"POST", "/v1/kv/h1/cas", `{"expected":"one","value":"two"}`, 200, `"swapped":true`},
			{"POST", "/v1/kv/h1/cas", `{"expected":"one","value":"three"}`, 409, `"swapped":false`},
			{"GET", "/v1/kv?start=h&end=i", "", 200, `"value":"two"`},
			{"DELETE", "/v1/kv/h1", "", 200, `"deleted":true`},
			{"GET", "/v1/kv/h1", "", 404, `not found`},
			{"POST", "/v1/bank/accounts", `{"name":"alice"}`, 201, `"alice"`},
			{"POST", "/v1/bank/accounts", `{"name":"bob"}`, 201, `"bob"`},
			{"POST", "/v1/bank/accounts/alice/deposit", `{"amount":100}`, 200, `"deposited":100`},
			// Opened and moved through whichever pool clients were free: the
			// owner key makes the transfer the owner's.
			{"POST", "/v1/bank/transfers", `{"from":"alice","to":"bob","n":50,"m":30}`, 200, `"executed":true`},
			{"GET", "/v1/bank/accounts/bob", "", 200, `"balance":30`},
			{"GET", "/v1/bank/accounts/carol", "", 404, `no such account`},
		} {
			code, body := do(s.method, s.path, s.body)
			if code != s.code || !strings.Contains(body, s.want) {
				t.Errorf("%s %s: %d %s, want %d with %s", s.method, s.path, code, body, s.code, s.want)
			}
		}
	})
}
