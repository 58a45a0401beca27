package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/config"
	"github.com/braid-bft/braid/internal/testcluster"
	"github.com/braid-bft/braid/replica"
)

// withHTTPKeys gives every replica of cfg k client keys of its own in dir
// (http-I-J.key, admitted after the clients cfg has) and points its
// http_client_keys at them, as braid init --http-clients does.
func withHTTPKeys(t *testing.T, cfg *config.Config, dir string, k int) {
	t.Helper()
	next := uint64(len(cfg.Clients.Keys))
	for i := range cfg.Replicas {
		for j := range k {
			pub, priv, err := auth.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			if err := auth.WritePrivateKeyFile(filepath.Join(dir, fmt.Sprintf("http-%d-%d.key", i, j)), priv); err != nil {
				t.Fatal(err)
			}
			cfg.Clients.Keys = append(cfg.Clients.Keys, config.ClientKey{ID: next, PublicKey: auth.MarshalPublicKey(pub)})
			next++
		}
		cfg.Replicas[i].HTTPClientKeys = filepath.Join(dir, "http-{id}-*.key")
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

// call sends one request and decodes the JSON answer.
func call(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s %s: Content-Type %q, body %s", method, url, ct, data)
	}
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("%s %s: %d, not a JSON object: %s", method, url, resp.StatusCode, data)
	}
	return resp.StatusCode, out
}

// The kv and bank API on the replicas' own listeners, end to end over a
// real in-process cluster: each replica submits through its own keys to
// the whole cluster, so a value PUT through replica 2 is read back through
// replica 2 and through replica 0 (the shared keyspace), a bank account
// opened and funded through one replica has its balance everywhere, and
// failures are JSON errors. The status route is still there beside them.
func TestReplicaHTTPKVAndBank(t *testing.T) {
	cfg, _ := testcluster.Config(t, 4, true)
	testcluster.HTTP(t, cfg)
	cfg.KVScope = config.KVShared
	withHTTPKeys(t, cfg, t.TempDir(), 2)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for i := range cfg.N {
		api, err := newReplicaAPI(cfg, i, "", testcluster.Logger())
		if err != nil {
			t.Fatal(err)
		}
		if api.pool == nil || api.pool.Size() != 2 {
			t.Fatalf("replica %d: pool %v, want 2 keys", i, api.pool)
		}
		r, err := replica.New(cfg, i, replica.Options{Logger: testcluster.Logger(), HTTPRoutes: api.routes})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer api.close()
			if err := r.Run(ctx); err != nil {
				t.Errorf("replica %d: %v", i, err)
			}
		}()
		api.warm(ctx, testcluster.Logger())
	}
	url := func(id int, path string) string { return "http://" + cfg.Replicas[id].HTTPAddr + path }
	waitHTTP(t, url(2, "/v1/status"))

	if code, out := call(t, "PUT", url(2, "/v1/kv/greeting"), `{"value":"hello"}`); code != 200 || out["key"] != "greeting" {
		t.Fatalf("PUT via replica 2: %d %v", code, out)
	}
	for _, id := range []int{2, 0} {
		if code, out := call(t, "GET", url(id, "/v1/kv/greeting"), ""); code != 200 || out["value"] != "hello" {
			t.Errorf("GET via replica %d: %d %v, want hello", id, code, out)
		}
	}
	if code, out := call(t, "GET", url(2, "/v1/kv/absent"), ""); code != 404 || out["error"] == nil {
		t.Errorf("GET of a missing key: %d %v, want a 404 JSON error", code, out)
	}
	if code, out := call(t, "PUT", url(2, "/v1/kv/k"), `{"valu":"x"}`); code != 400 || out["error"] == nil {
		t.Errorf("PUT with an unknown field: %d %v, want a 400 JSON error", code, out)
	}
	if code, out := call(t, "PATCH", url(1, "/v1/kv/k"), ""); code != 405 || out["error"] == nil {
		t.Errorf("PATCH: %d %v, want a 405 JSON error", code, out)
	}

	if code, out := call(t, "POST", url(2, "/v1/bank/accounts"), `{"name":"alice"}`); code != 201 || out["name"] != "alice" {
		t.Fatalf("open via replica 2: %d %v", code, out)
	}
	if code, out := call(t, "POST", url(2, "/v1/bank/accounts"), `{"name":"alice"}`); code != 409 || out["error"] == nil {
		t.Errorf("open twice: %d %v, want a 409 JSON error", code, out)
	}
	if code, out := call(t, "POST", url(2, "/v1/bank/accounts/alice/deposit"), `{"amount":50}`); code != 200 || out["deposited"] != 50.0 {
		t.Fatalf("deposit: %d %v", code, out)
	}
	for _, id := range []int{2, 1} {
		if code, out := call(t, "GET", url(id, "/v1/bank/accounts/alice"), ""); code != 200 || out["balance"] != 50.0 {
			t.Errorf("balance via replica %d: %d %v, want 50", id, code, out)
		}
	}
	if code, out := call(t, "GET", url(3, "/v1/bank/accounts/bob"), ""); code != 404 || out["error"] == nil {
		t.Errorf("balance of a missing account: %d %v, want a 404 JSON error", code, out)
	}
	if code, out := call(t, "GET", url(2, "/v1/status"), ""); code != 200 || out["n"] != 4.0 {
		t.Errorf("status beside the API: %d %v", code, out)
	}
}

// waitHTTP waits until url answers at all (the listener is up).
func waitHTTP(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// serve answers one request from the routes alone, no cluster behind them.
func serve(t *testing.T, api *replicaAPI, method, path, body string) (int, string) {
	t.Helper()
	mux := http.NewServeMux()
	for _, r := range api.routes {
		mux.Handle(r.Pattern, r.Handler)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	mux.ServeHTTP(rec, req)
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	return rec.Code, rec.Body.String()
}

// What a replica does without a usable set of keys: per-client scope
// refuses the kv routes with a 501 that says how to enable them and still
// serves bank; no keys configured refuses everything with a 501 naming
// the field and flag; a glob matching nothing, a key the configuration
// does not admit, and --http-keys without http_addr stop it at start.
func TestReplicaHTTPWithoutKeys(t *testing.T) {
	cfg, _ := testcluster.Config(t, 4, false)
	testcluster.HTTP(t, cfg)
	dir := t.TempDir()
	withHTTPKeys(t, cfg, dir, 1) // per-client scope, the default

	api, err := newReplicaAPI(cfg, 1, "", testcluster.Logger())
	if err != nil {
		t.Fatal(err)
	}
	defer api.close()
	for _, path := range []string{"/v1/kv/x", "/v1/kv?start=a"} {
		if code, body := serve(t, api, "GET", path, ""); code != 501 || !strings.Contains(body, "--kv-scope shared") {
			t.Errorf("GET %s under per-client scope: %d %s", path, code, body)
		}
	}
	// Bank is served: a malformed body reaches the API's own checks.
	if code, body := serve(t, api, "POST", "/v1/bank/accounts", `{"nome":"a"}`); code != 400 {
		t.Errorf("bank under per-client scope: %d %s, want the API's 400", code, body)
	}

	cfg.Replicas[1].HTTPClientKeys = ""
	none, err := newReplicaAPI(cfg, 1, "", testcluster.Logger())
	if err != nil {
		t.Fatal(err)
	}
	if none.pool != nil {
		t.Error("a pool without keys")
	}
	for _, path := range []string{"/v1/kv/x", "/v1/bank/accounts/a"} {
		if code, body := serve(t, none, "GET", path, ""); code != 501 || !strings.Contains(body, "replicas[1].http_client_keys") || !strings.Contains(body, "--http-keys") {
			t.Errorf("GET %s without keys: %d %s", path, code, body)
		}
	}

	if _, err := newReplicaAPI(cfg, 1, filepath.Join(dir, "nothing-*.key"), testcluster.Logger()); err == nil || !strings.Contains(err.Error(), "matches no file") {
		t.Errorf("a glob matching nothing: %v", err)
	}
	stranger := filepath.Join(dir, "stranger.key")
	_, priv, _ := auth.GenerateKey(rand.Reader)
	if err := auth.WritePrivateKeyFile(stranger, priv); err != nil {
		t.Fatal(err)
	}
	if _, err := newReplicaAPI(cfg, 1, stranger, testcluster.Logger()); err == nil || !strings.Contains(err.Error(), stranger) {
		t.Errorf("a key the configuration does not admit: %v", err)
	}
	if _, err := newReplicaAPI(cfg, 1, "[", testcluster.Logger()); err == nil || !strings.Contains(err.Error(), "--http-keys") {
		t.Errorf("a malformed glob: %v", err)
	}
	cfg.Replicas[1].HTTPAddr = ""
	if _, err := newReplicaAPI(cfg, 1, filepath.Join(dir, "http-1-*.key"), testcluster.Logger()); err == nil || !strings.Contains(err.Error(), "no http_addr") {
		t.Errorf("--http-keys without http_addr: %v", err)
	}
	if quiet, err := newReplicaAPI(cfg, 1, "", testcluster.Logger()); err != nil || len(quiet.routes) != 0 {
		t.Errorf("no http_addr, no flag: %v, %d routes", err, len(quiet.routes))
	}
}
