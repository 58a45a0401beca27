package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/braid-bft/braid/client"
)

// call sends one request and returns the status and decoded JSON body
// (every response, errors included, must be a JSON object).
func call(t *testing.T, h http.Handler, method, path, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s %s: Content-Type %q", method, path, ct)
	}
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("%s %s: body %q is not a JSON object: %v", method, path, rec.Body.String(), err)
	}
	return rec.Code, out
}

func TestHTTPKV(t *testing.T) {
	h := NewHTTP(newLocalExec(), Options{})
	for _, s := range []struct {
		method, path, body string
		code               int
		want               string // a substring of the JSON reply
	}{
		{"GET", "/v1/kv/greeting", "", 404, `"error":"key \"greeting\" not found"`},
		{"PUT", "/v1/kv/greeting", `{"value":"hello"}`, 200, `"key":"greeting"`},
		{"GET", "/v1/kv/greeting", "", 200, `"value":"hello"`},
		{"PUT", "/v1/kv/a%2Fb", `{"value_base64":"/w=="}`, 200, `"key":"a/b"`},
		{"GET", "/v1/kv/a/b", "", 200, `"value_base64":"/w=="`},
		{"PUT", "/v1/kv/k", `{"value":"x","value_base64":"eA=="}`, 400, `not both`},
		{"PUT", "/v1/kv/k", `{}`, 400, `missing \"value\"`},
		{"PUT", "/v1/kv/k", `{"value":"x","extra":1}`, 400, `unknown field`},
		{"PUT", "/v1/kv/k", `{"value":"x"} {}`, 400, `data after the JSON object`},
		{"PUT", "/v1/kv/k", ``, 400, `empty request body`},
		{"PUT", "/v1/kv/k", `{"value":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, 413, `larger than`},
		{"PUT", "/v1/kv/k", `{"value":"` + strings.Repeat("x", 70000) + `"}`, 413, `at most 65507 fit`},
		{"GET", "/v1/kv/" + strings.Repeat("k", 1025), "", 400, `key longer than 1024 bytes`},
		{"POST", "/v1/kv/greeting/cas", `{"expected":"nope","value":"x"}`, 409, `"swapped":false`},
		{"POST", "/v1/kv/greeting/cas", `{"expected":"hello","value":"hi"}`, 200, `"swapped":true`},
		{"POST", "/v1/kv/fresh/cas", `{"expect_absent":true,"value":"1"}`, 200, `"swapped":true`},
		{"POST", "/v1/kv/fresh/cas", `{"expect_absent":true,"value":"1"}`, 409, `"swapped":false`},
		{"POST", "/v1/kv/fresh/cas", `{"expect_absent":true,"expected":"","value":"1"}`, 400, `takes no`},
		{"POST", "/v1/kv/fresh/cas", `{"value":"1"}`, 400, `missing \"expected\"`},
		{"POST", "/v1/kv/greeting", `{}`, 405, `not allowed`},
		{"PATCH", "/v1/kv/greeting", `{}`, 405, `allowed: GET, HEAD, PUT, DELETE`},
		{"GET", "/v1/kv?start=a&end=h&limit=2", "", 200, `"more":true`},
		{"GET", "/v1/kv?limit=1000", "", 200, `"more":false`},
		{"GET", "/v1/kv?limit=0", "", 400, `limit \"0\"`},
		{"POST", "/v1/kv", "", 405, `allowed: GET, HEAD`},
		{"DELETE", "/v1/kv/greeting", "", 200, `"deleted":true`},
		{"DELETE", "/v1/kv/greeting", "", 404, `not found`},
		{"GET", "/v2/nothing", "", 404, `no route GET /v2/nothing`},
	} {
		code, out := call(t, h, s.method, s.path, s.body)
		js, _ := json.Marshal(out)
		if code != s.code || !strings.Contains(string(js), s.want) {
			t.Errorf("%s %.60s: %d %.200s, want %d with %s", s.method, s.path, code, js, s.code, s.want)
		}
	}
}

func TestHTTPScanPages(t *testing.T) {
	h := NewHTTP(newLocalExec(), Options{})
	for i := range 5 {
		call(t, h, "PUT", fmt.Sprintf("/v1/kv/k%d", i), `{"value":"v"}`)
	}
	var keys []string
	path := "/v1/kv?limit=2"
	for range 5 {
		code, out := call(t, h, "GET", path, "")
		if code != 200 {
			t.Fatalf("scan: %d %v", code, out)
		}
		for _, e := range out["entries"].([]any) {
			keys = append(keys, e.(map[string]any)["key"].(string))
		}
		if out["more"] != true {
			break
		}
		path = "/v1/kv?limit=2&start=" + strings.ReplaceAll(out["next"].(string), "\x00", "%00")
	}
	if strings.Join(keys, ",") != "k0,k1,k2,k3,k4" {
		t.Fatalf("pages gave %v", keys)
	}
}

func TestHTTPBank(t *testing.T) {
	h := NewHTTP(newLocalExec(), Options{})
	for _, s := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"POST", "/v1/bank/accounts", `{"name":"alice"}`, 201, `"name":"alice"`},
		{"POST", "/v1/bank/accounts", `{"name":"alice"}`, 409, `exists`},
		{"POST", "/v1/bank/accounts", `{"name":""}`, 400, `need 1…64 bytes`},
		{"POST", "/v1/bank/accounts", `{"name":"bob"}`, 201, `"balance":0`},
		{"POST", "/v1/bank/accounts/alice/deposit", `{"amount":100}`, 200, `"deposited":100`},
		{"POST", "/v1/bank/accounts/alice/deposit", `{"amount":-1}`, 400, `bad JSON`},
		{"POST", "/v1/bank/accounts/alice/deposit", `{}`, 400, `missing \"amount\"`},
		{"POST", "/v1/bank/accounts/nobody/deposit", `{"amount":1}`, 404, `no such account`},
		{"POST", "/v1/bank/accounts/alice/deposit", `{"amount":18446744073709551615}`, 409, `overflow`},
		{"GET", "/v1/bank/accounts/alice", "", 200, `"balance":100`},
		{"GET", "/v1/bank/accounts/nobody", "", 404, `no such account`},
		{"POST", "/v1/bank/transfers", `{"from":"alice","to":"bob","n":50,"m":30}`, 200, `"executed":true`},
		{"POST", "/v1/bank/transfers", `{"from":"alice","to":"bob","n":500,"m":30}`, 200, `"executed":false`},
		{"POST", "/v1/bank/transfers", `{"from":"alice","to":"bob","n":1,"m":3000}`, 409, `insufficient`},
		{"POST", "/v1/bank/transfers", `{"from":"alice","to":"bob"}`, 400, `need \"n\"`},
		{"GET", "/v1/bank/accounts/bob", "", 200, `"balance":30`},
		{"GET", "/v1/bank/transfers", "", 405, `allowed: POST`},
		{"DELETE", "/v1/bank/accounts/bob", "", 405, `allowed: GET, HEAD`},
	} {
		code, out := call(t, h, s.method, s.path, s.body)
		js, _ := json.Marshal(out)
		if code != s.code || !strings.Contains(string(js), s.want) {
			t.Errorf("%s %s %s: %d %s, want %d with %s", s.method, s.path, s.body, code, js, s.code, s.want)
		}
	}
}

func TestHTTPClusterErrors(t *testing.T) {
	ex := newLocalExec()
	h := NewHTTP(ex, Options{Timeout: 20 * time.Millisecond})
	for _, tc := range []struct {
		err  error
		code int
	}{
		{fmt.Errorf("x: %w", client.ErrNoReplicas), 503},
		{fmt.Errorf("%w: %w", ErrBusy, context.DeadlineExceeded), 503},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), 504},
		{client.ErrClosed, 503},
	} {
		ex.mu.Lock()
		ex.err = tc.err
		ex.mu.Unlock()
		if code, out := call(t, h, "GET", "/v1/kv/k", ""); code != tc.code || !nonEmptyString(out["error"]) {
			t.Errorf("%v: %d %v, want %d", tc.err, code, out, tc.code)
		}
	}
}

// TestHTTPRegister mounts the routes on another mux, as a replica's HTTP
// listener would, next to routes of its own.
func TestHTTPRegister(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/status", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, map[string]any{"ok": true}) })
	NewHTTP(newLocalExec(), Options{}).Register(mux)
	if code, _ := call(t, mux, "PUT", "/v1/kv/x", `{"value":"1"}`); code != 200 {
		t.Fatalf("mounted kv route: %d", code)
	}
	if code, out := call(t, mux, "GET", "/v1/status", ""); code != 200 || out["ok"] != true {
		t.Fatalf("the host's own route: %d %v", code, out)
	}
}

func nonEmptyString(v any) bool {
	s, ok := v.(string)
	return ok && s != ""
}

// TestHTTPCrossSiteWrites: a write must come as application/json (a
// browser's no-cors "simple" request cannot), and one a browser marks as
// from another site is refused; reads and same-origin writes still work.
func TestHTTPCrossSiteWrites(t *testing.T) {
	h := NewHTTP(newLocalExec(), Options{})
	for _, s := range []struct {
		method, path, body string
		header             map[string]string
		code               int
		want               string
	}{
		{"PUT", "/v1/kv/k", `{"value":"x"}`, map[string]string{"Content-Type": "text/plain"}, 415, `application/json`},
		{"PUT", "/v1/kv/k", `{"value":"x"}`, map[string]string{"Content-Type": ""}, 415, `application/json`},
		{"POST", "/v1/bank/accounts", `{"name":"alice"}`, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, `application/json`},
		{"POST", "/v1/kv/k/cas", `{"expect_absent":true,"value":"1"}`, map[string]string{"Content-Type": "multipart/form-data"}, 415, `application/json`},
		{"PUT", "/v1/kv/k", `{"value":"x"}`, map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, `cross-site`},
		{"PUT", "/v1/kv/k", `{"value":"x"}`, map[string]string{"Origin": "http://evil.example"}, 403, `cross-origin`},
		{"PUT", "/v1/kv/k", `{"value":"x"}`, map[string]string{"Origin": "null"}, 403, `cross-origin`},
		{"DELETE", "/v1/kv/k", ``, map[string]string{"Origin": "http://evil.example"}, 403, `cross-origin`},
		{"POST", "/v1/bank/transfers", `{"from":"a","to":"b","n":0,"m":1}`, map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, `cross-site`},
		{"PUT", "/v1/kv/k", `{"value":"x"}`, map[string]string{"Content-Type": "application/json; charset=utf-8", "Origin": "http://example.com", "Sec-Fetch-Site": "same-origin"}, 200, `"key":"k"`},
		{"GET", "/v1/kv/k", ``, map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, 200, `"value":"x"`},
	} {
		req := httptest.NewRequest(s.method, s.path, strings.NewReader(s.body)) // Host example.com
		req.Header.Set("Content-Type", "application/json")
		for k, v := range s.header {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != s.code || !strings.Contains(rec.Body.String(), s.want) {
			t.Errorf("%s %s %v: %d %.200s, want %d with %s", s.method, s.path, s.header, rec.Code, rec.Body.String(), s.code, s.want)
		}
	}
}
