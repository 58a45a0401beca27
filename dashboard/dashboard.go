// Package dashboard is the page every replica serves at / on its
// http_addr: live per-instance progress, throughput and latency charts,
// the ledger's head and checkpoint, and a block explorer. It is three
// hand-written files embedded in the binary (static/), plain JavaScript
// that polls the replica's own JSON API (/v1/status, /v1/blocks): nothing
// to build, no external URL, so it works offline. docs/http.md describes
// the page.
package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"net/http"
	"path"
	"time"

	"github.com/braid-bft/braid/httpapi"
)

//go:embed static
var static embed.FS

// The page's paths: the page itself at the root, its script and style
// under AssetPrefix.
const (
	PathPage    = "/"
	AssetPrefix = "/dashboard/"
)

// CSP lets the page load only its own script and style and talk only to
// its own origin: nothing inline, no frames, no forms, no other host.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

type asset struct {
	name, contentType string
	body              []byte
	etag              string
}

// assets maps a request path to the embedded file it serves.
var assets = func() map[string]*asset {
	out := map[string]*asset{}
	for p, f := range map[string]struct{ file, ct string }{
		PathPage:                      {"index.html", "text/html; charset=utf-8"},
		AssetPrefix + "dashboard.js":  {"dashboard.js", "text/javascript; charset=utf-8"},
		AssetPrefix + "dashboard.css": {"dashboard.css", "text/css; charset=utf-8"},
	} {
		body, err := static.ReadFile(path.Join("static", f.file))
		if err != nil {
			panic(fmt.Sprintf("dashboard: embedded %s: %v", f.file, err)) // a build without the files: caught by every test
		}
		sum := sha256.Sum256(body)
		out[p] = &asset{name: f.file, contentType: f.ct, body: body, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
	}
	return out
}()

// Routes are the dashboard's routes for httpapi.Options.Routes (the
// replica mounts them by default): the page at exactly / and its assets.
// Any other path falls through to the API's JSON 404.
func Routes() []httpapi.Route {
	h := Handler()
	return []httpapi.Route{{Pattern: "/{$}", Handler: h}, {Pattern: AssetPrefix, Handler: h}}
}

// Handler serves the page and its assets by request path, GET and HEAD
// only. Every answer carries the CSP and asks the browser to revalidate
// (no-cache with an ETag: a replica upgraded in place serves its new page
// at once, an unchanged one answers 304).
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		a, ok := assets[r.URL.Path]
		if !ok {
			writeError(w, http.StatusNotFound, fmt.Sprintf("no route %s", r.URL.Path))
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s; use GET", r.Method, r.URL.Path))
			return
		}
		h.Set("Content-Type", a.contentType)
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", a.etag)
		http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.body))
	})
}

// writeError answers as the API does: JSON with one field.
func writeError(w http.ResponseWriter, code int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = httpapi.Encode(w, httpapi.Error{Error: message})
}
