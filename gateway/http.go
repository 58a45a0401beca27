package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/braid-bft/braid/app/bank"
	"github.com/braid-bft/braid/app/kv"
)

// MaxBodyBytes bounds an HTTP request body: room for a CAS with two
// values of the largest size an operation can carry, base64-encoded.
const MaxBodyBytes = 256 << 10

// HTTP is the kv and bank JSON API (docs/gateway.md lists the routes).
// Every call is one cluster request through an Executor, answered once
// f+1 replicas agree. It serves on its own (ServeHTTP, with JSON 404s for
// other paths) or mounts its routes on another mux (Register), as a
// replica's HTTP listener may.
type HTTP struct {
	requester
	mux *http.ServeMux
}

// NewHTTP returns the API over exec; opts.Timeout bounds each call (the
// other Options are the RESP server's, or the http.Server's to set).
func NewHTTP(exec Executor, opts Options) *HTTP {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	h := &HTTP{requester: requester{exec: exec, timeout: opts.Timeout}, mux: http.NewServeMux()}
	h.Register(h.mux)
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no route %s %s (see docs/gateway.md)", r.Method, r.URL.Path))
	})
	return h
}

// Register adds the API's routes (/v1/kv, /v1/kv/…, /v1/bank/…) to mux.
// Methods are checked by the handlers, not the patterns, so that a wrong
// method gets a JSON 405 with an Allow header like every other error.
func (h *HTTP) Register(mux *http.ServeMux) {
	mux.HandleFunc(kvPatterns[0], h.withTimeout(h.kvRoot))
	mux.HandleFunc(kvPatterns[1], h.withTimeout(h.kvKey))
	mux.HandleFunc(bankPatterns[0], h.withTimeout(h.bankOpen))
	mux.HandleFunc(bankPatterns[1], h.withTimeout(h.bankBalance))
	mux.HandleFunc(bankPatterns[2], h.withTimeout(h.bankDeposit))
	mux.HandleFunc(bankPatterns[3], h.withTimeout(h.bankTransfer))
}

var (
	kvPatterns   = []string{"/v1/kv", "/v1/kv/{key...}"}
	bankPatterns = []string{"/v1/bank/accounts", "/v1/bank/accounts/{name}", "/v1/bank/accounts/{name}/deposit", "/v1/bank/transfers"}
)

// KVPatterns are the http.ServeMux patterns of the kv routes Register
// adds, and BankPatterns those of the bank routes: for a mux that takes
// routes as (pattern, handler) pairs, such as a replica's (each pattern
// with the HTTP as its handler, whose own mux matches it again), and that
// may serve one group and refuse the other (kv needs the shared keyspace,
// bank does not).
func KVPatterns() []string { return slices.Clone(kvPatterns) }

// BankPatterns: see KVPatterns.
func BankPatterns() []string { return slices.Clone(bankPatterns) }

// ErrorHandler answers every request with status and the API's JSON error
// {"error": message}: what a mux mounts on these patterns when it cannot
// serve them, so that a client is told why rather than getting a 404.
func ErrorHandler(status int, message string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { writeError(w, status, message) })
}

// withTimeout gives each call one deadline, Options.Timeout, for its
// cluster request; the request's context also ends if the client goes.
// A write (any method but GET, HEAD and OPTIONS) from another site is
// refused first (see crossSite).
func (h *HTTP) withTimeout(f http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodOptions {
			if msg := crossSite(r); msg != "" {
				writeError(w, http.StatusForbidden, msg)
				return
			}
		}
		ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
		defer cancel()
		f(w, r.WithContext(ctx))
	}
}

// ServeHTTP serves the API's routes and a JSON 404 for any other path.
func (h *HTTP) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// bytesJSON is a byte string in JSON: the plain string when it is UTF-8
// text, else base64 under the same field name with "_base64" appended.
// encodeBytes and decodeBytes do the field pair.
func encodeBytes(out map[string]any, field string, b []byte) {
	if utf8.Valid(b) {
		out[field] = string(b)
	} else {
		out[field+"_base64"] = base64.StdEncoding.EncodeToString(b)
	}
}

// valueField is a request's byte string given as text or as base64.
type valueField struct {
	Text, Base64 *string
}

func (v valueField) bytes(name string, required bool) ([]byte, error) {
	switch {
	case v.Text != nil && v.Base64 != nil:
		return nil, fmt.Errorf("give %q or %q, not both", name, name+"_base64")
	case v.Text != nil:
		return []byte(*v.Text), nil
	case v.Base64 != nil:
		b, err := base64.StdEncoding.DecodeString(*v.Base64)
		if err != nil {
			return nil, fmt.Errorf("%s_base64: %v", name, err)
		}
		return b, nil
	case required:
		return nil, fmt.Errorf("missing %q (or %q)", name, name+"_base64")
	}
	return nil, nil
}

type putBody struct {
	Value       *string `json:"value"`
	ValueBase64 *string `json:"value_base64"`
}

type casBody struct {
	Expected       *string `json:"expected"`
	ExpectedBase64 *string `json:"expected_base64"`
	ExpectAbsent   bool    `json:"expect_absent"`
	Value          *string `json:"value"`
	ValueBase64    *string `json:"value_base64"`
}

// kvRoot is /v1/kv: a scan, or with ?key= (or ?key_base64=) the
// operations on one key, for keys the path cannot carry.
func (h *HTTP) kvRoot(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !q.Has("key") && !q.Has("key_base64") {
		h.kvScan(w, r)
		return
	}
	var text, b64 *string
	if q.Has("key") {
		v := q.Get("key")
		text = &v
	}
	if q.Has("key_base64") {
		v := q.Get("key_base64")
		b64 = &v
	}
	key, err := valueField{text, b64}.bytes("key", true)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if r.Method == http.MethodPost {
		h.kvCAS(w, r, key)
		return
	}
	h.kvOne(w, r, key)
}

func (h *HTTP) kvKey(w http.ResponseWriter, r *http.Request) {
	key := []byte(r.PathValue("key"))
	if r.Method == http.MethodPost {
		k, ok := strings.CutSuffix(string(key), "/cas")
		if !ok && string(key) == "cas" {
			k, ok = "", true
		}
		if !ok { // compare-and-set is POST /v1/kv/{key}/cas; the key itself takes no POST
			methodNotAllowed(w, r, "GET", "HEAD", "PUT", "DELETE")
			return
		}
		h.kvCAS(w, r, []byte(k))
		return
	}
	h.kvOne(w, r, key)
}

// kvOne is GET, HEAD, PUT and DELETE of one key.
func (h *HTTP) kvOne(w http.ResponseWriter, r *http.Request, key []byte) {
	if len(key) > kv.MaxKeyLen {
		writeError(w, http.StatusBadRequest, errKeyLen.Error())
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		res, err := h.submit(r.Context(), kv.Get(key))
		if err != nil {
			h.clusterError(w, err)
			return
		}
		v, found, err := kv.DecodeGet(res)
		switch {
		case err != nil:
			h.clusterError(w, err)
		case !found:
			writeError(w, http.StatusNotFound, fmt.Sprintf("key %q not found", key))
		default:
			out := map[string]any{}
			encodeBytes(out, "key", key)
			encodeBytes(out, "value", v)
			writeJSON(w, http.StatusOK, out)
		}
	case http.MethodPut:
		var body putBody
		if !readBody(w, r, &body) {
			return
		}
		v, err := valueField{body.Value, body.ValueBase64}.bytes("value", true)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		res, err := h.submit(r.Context(), kv.Put(key, v))
		if err == nil {
			err = kv.DecodePut(res)
		}
		if err != nil {
			h.clusterError(w, err)
			return
		}
		out := map[string]any{}
		encodeBytes(out, "key", key)
		writeJSON(w, http.StatusOK, out)
	case http.MethodDelete:
		res, err := h.submit(r.Context(), kv.Delete(key))
		var deleted bool
		if err == nil {
			deleted, err = kv.DecodeDelete(res)
		}
		switch {
		case err != nil:
			h.clusterError(w, err)
		case !deleted:
			writeError(w, http.StatusNotFound, fmt.Sprintf("key %q not found", key))
		default:
			writeJSON(w, http.StatusOK, map[string]any{"deleted": true})
		}
	default:
		methodNotAllowed(w, r, "GET", "HEAD", "PUT", "DELETE")
	}
}

func (h *HTTP) kvCAS(w http.ResponseWriter, r *http.Request, key []byte) {
	if len(key) > kv.MaxKeyLen {
		writeError(w, http.StatusBadRequest, errKeyLen.Error())
		return
	}
	var body casBody
	if !readBody(w, r, &body) {
		return
	}
	expected, err := valueField{body.Expected, body.ExpectedBase64}.bytes("expected", !body.ExpectAbsent)
	if err == nil && body.ExpectAbsent && expected != nil {
		err = errors.New(`"expect_absent": true takes no "expected" value`)
	}
	var value []byte
	if err == nil {
		value, err = valueField{body.Value, body.ValueBase64}.bytes("value", true)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	res, err := h.submit(r.Context(), kv.CAS(key, expected, body.ExpectAbsent, value))
	var swapped bool
	if err == nil {
		swapped, err = kv.DecodeCAS(res)
	}
	switch {
	case err != nil:
		h.clusterError(w, err)
	case !swapped:
		writeJSON(w, http.StatusConflict, map[string]any{"error": "compare-and-set failed: the key's current value is not the expected one", "swapped": false})
	default:
		writeJSON(w, http.StatusOK, map[string]any{"swapped": true})
	}
}

func (h *HTTP) kvScan(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, r, "GET", "HEAD") // with ?key=: also PUT, DELETE, POST
		return
	}
	q := r.URL.Query()
	start, end := []byte(q.Get("start")), []byte(q.Get("end"))
	limit := 100
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > kv.MaxScanLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: need a whole number in 1…%d", l, kv.MaxScanLimit))
			return
		}
		limit = n
	}
	if len(start) > kv.MaxKeyLen || len(end) > kv.MaxKeyLen {
		writeError(w, http.StatusBadRequest, "start and end: "+errKeyLen.Error())
		return
	}
	res, err := h.submit(r.Context(), kv.Scan(start, end, limit))
	var page []kv.KV
	var more bool
	if err == nil {
		page, more, err = kv.DecodeScanPage(res)
	}
	if err != nil {
		h.clusterError(w, err)
		return
	}
	entries := make([]map[string]any, 0, len(page))
	for _, e := range page {
		m := map[string]any{}
		encodeBytes(m, "key", e.Key)
		encodeBytes(m, "value", e.Value)
		entries = append(entries, m)
	}
	out := map[string]any{"entries": entries, "more": false}
	if more && len(page) > 0 {
		if next := kv.ResumeKey(page[len(page)-1].Key); next != nil {
			out["more"] = true
			encodeBytes(out, "next", next)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

type openBody struct {
	Name string `json:"name"`
}

type depositBody struct {
	Amount *uint64 `json:"amount"`
}

type transferBody struct {
	From string  `json:"from"`
	To   string  `json:"to"`
	N    *uint64 `json:"n"`
	M    *uint64 `json:"m"`
}

func checkAccount(field, name string) error {
	if err := bank.ValidName(name); err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	return nil
}

func (h *HTTP) bankOpen(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, r, "POST")
		return
	}
	var body openBody
	if !readBody(w, r, &body) {
		return
	}
	if err := checkAccount("name", body.Name); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	res, err := h.submit(r.Context(), bank.Open(body.Name))
	if err == nil {
		err = bank.DecodeOpen(res)
	}
	if err != nil {
		h.clusterError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"name": body.Name, "balance": uint64(0)})
}

func (h *HTTP) bankBalance(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, r, "GET", "HEAD")
		return
	}
	name := r.PathValue("name")
	if err := checkAccount("account", name); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	res, err := h.submit(r.Context(), bank.Balance(name))
	var bal uint64
	if err == nil {
		bal, err = bank.DecodeBalance(res)
	}
	if err != nil {
		h.clusterError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": name, "balance": bal})
}

func (h *HTTP) bankDeposit(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, r, "POST")
		return
	}
	name := r.PathValue("name")
	var body depositBody
	if !readBody(w, r, &body) {
		return
	}
	if err := checkAccount("account", name); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if body.Amount == nil {
		writeError(w, http.StatusBadRequest, `missing "amount" (a whole number)`)
		return
	}
	res, err := h.submit(r.Context(), bank.Deposit(name, *body.Amount))
	if err == nil {
		err = bank.DecodeDeposit(res)
	}
	if err != nil {
		h.clusterError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": name, "deposited": *body.Amount})
}

func (h *HTTP) bankTransfer(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, r, "POST")
		return
	}
	var body transferBody
	if !readBody(w, r, &body) {
		return
	}
	err := checkAccount("from", body.From)
	if err == nil {
		err = checkAccount("to", body.To)
	}
	if err == nil && (body.N == nil || body.M == nil) {
		err = errors.New(`need "n" (the balance "from" must exceed) and "m" (the amount to move), whole numbers`)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	res, err := h.submit(r.Context(), bank.Transfer(body.From, body.To, *body.N, *body.M))
	var executed bool
	if err == nil {
		executed, err = bank.DecodeTransfer(res)
	}
	if err != nil {
		h.clusterError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"executed": executed})
}

// clusterError writes the error of a failed cluster request with its
// status (see requester.failure): 503 when the gateway could not get the
// request to the cluster (every client busy, no replica reachable,
// shutting down), 504 when the cluster did not answer in time, 413 for an
// operation too large for a request, and for a refusal by the application
// its meaning (404 missing, 409 refused or conflicting with the state, 400
// malformed).
func (h *HTTP) clusterError(w http.ResponseWriter, err error) {
	status, message := h.failure(err)
	writeError(w, status, message)
}

// crossSite says why a write request comes from a web page of another
// site, or "" if it does not seem to: the browser's Sec-Fetch-Site says
// cross-site, or its Origin names a host other than the request's Host.
// The routes take no credentials, so this (with readBody's Content-Type
// check) is what keeps a page the operator happens to open from writing
// through an API it can reach.
func crossSite(r *http.Request) string {
	if strings.EqualFold(r.Header.Get("Sec-Fetch-Site"), "cross-site") {
		return "cross-site request refused (Sec-Fetch-Site: cross-site)"
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return ""
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) {
		return fmt.Sprintf("cross-origin request refused: Origin %q is not this API's host %q", truncate(origin, 100), truncate(r.Host, 100))
	}
	return ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// isJSON says whether a Content-Type is application/json (parameters
// such as charset allowed).
func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

// readBody decodes a JSON request body of at most MaxBodyBytes into v,
// rejecting unknown fields and trailing data; on failure it has written
// the error (415, 413 or 400). The body must be sent as
// Content-Type: application/json, which a browser's "simple" cross-site
// request cannot set.
func readBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); !isJSON(ct) {
		writeError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q: send the body as application/json", truncate(ct, 100)))
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("data after the JSON object")
	}
	if err == nil {
		if _, rerr := dec.Token(); !errors.Is(rerr, io.EOF) {
			err = errors.New("data after the JSON object")
		}
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", MaxBodyBytes))
		return false
	case errors.Is(err, io.EOF):
		writeError(w, http.StatusBadRequest, "empty request body: want a JSON object")
		return false
	case err != nil:
		writeError(w, http.StatusBadRequest, "bad JSON body: "+err.Error())
		return false
	}
	return true
}

// methodNotAllowed writes a 405 naming the allowed methods, in the Allow
// header too.
func methodNotAllowed(w http.ResponseWriter, r *http.Request, allow ...string) {
	w.Header().Set("Allow", strings.Join(allow, ", "))
	writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s; allowed: %s", r.Method, r.URL.Path, strings.Join(allow, ", ")))
}

func writeError(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, map[string]any{"error": message})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}
