package dashboard

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/braid-bft/braid/httpapi"
)

func get(t *testing.T, method, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// The page and its assets come with their content types, the CSP, and
// revalidation by ETag; other paths and methods get the API's JSON errors.
func TestServesPageAndAssets(t *testing.T) {
	srv := httptest.NewServer(httpapi.New(nil, httpapi.Options{Routes: Routes()}))
	defer srv.Close()
	for path, ct := range map[string]string{
		"/":                        "text/html; charset=utf-8",
		"/dashboard/dashboard.js":  "text/javascript; charset=utf-8",
		"/dashboard/dashboard.css": "text/css; charset=utf-8",
	} {
		resp, body := get(t, "GET", srv.URL+path, nil)
		h := resp.Header
		if resp.StatusCode != 200 || h.Get("Content-Type") != ct || h.Get("Content-Security-Policy") != CSP ||
			h.Get("Cache-Control") != "no-cache" || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("ETag") == "" || len(body) < 100 {
			t.Fatalf("GET %s: %d %v (%d bytes)", path, resp.StatusCode, h, len(body))
		}
		resp, body = get(t, "GET", srv.URL+path, map[string]string{"If-None-Match": h.Get("ETag")})
		if resp.StatusCode != 304 || body != "" {
			t.Errorf("GET %s with its ETag: %d, %d bytes", path, resp.StatusCode, len(body))
		}
		if resp, body := get(t, "HEAD", srv.URL+path, nil); resp.StatusCode != 200 || body != "" {
			t.Errorf("HEAD %s: %d", path, resp.StatusCode)
		}
		if resp, body := get(t, "POST", srv.URL+path, nil); resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" || !strings.Contains(body, `"error"`) {
			t.Errorf("POST %s: %d %s", path, resp.StatusCode, body)
		}
	}
	for _, path := range []string{"/dashboard/", "/dashboard/x.js", "/index.html", "/nothing"} {
		resp, body := get(t, "GET", srv.URL+path, nil)
		if resp.StatusCode != 404 || resp.Header.Get("Content-Type") != "application/json" || !strings.Contains(body, "no route "+path) {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, body)
		}
	}
}

// The page loads nothing from elsewhere and sets no markup from data:
// everything from the API goes through textContent.
func TestAssetsSelfContained(t *testing.T) {
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|@import|url\(`)
	for _, name := range []string{"index.html", "dashboard.js", "dashboard.css"} {
		b, err := static.ReadFile("static/" + name)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if m := external.FindString(s); m != "" {
			t.Errorf("%s refers to %q: the page must work offline", name, m)
		}
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", " style=", "<script>", "onclick="} {
			if strings.Contains(s, bad) {
				t.Errorf("%s uses %s", name, bad)
			}
		}
	}
}
