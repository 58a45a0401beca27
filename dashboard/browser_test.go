package dashboard_test

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/braid-bft/braid/app/kv"
	"github.com/braid-bft/braid/client"
	"github.com/braid-bft/braid/httpapi"
	"github.com/braid-bft/braid/internal/testcluster"
	"github.com/braid-bft/braid/replica"
)

var (
	screenshot = flag.String("screenshot", "", "write a PNG of the dashboard on a live cluster to this file (docs/dashboard.png: -screenshot ../docs/dashboard.png)")
	shotAfter  = flag.Duration("screenshot-after", 40*time.Second, "with -screenshot, let the charts fill this long first")
)

// chromium finds the browser: $BRAID_CHROMIUM, else Debian's chromium on
// PATH. Without one the test skips, except in CI ($CI set), where the
// browser test is part of the acceptance and a missing browser fails it.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("BRAID_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
		t.Fatal("CI is set and no chromium is installed: the dashboard's browser test needs it (.ci/run installs Debian's chromium; or set BRAID_CHROMIUM)")
	}
	t.Skip("no chromium on PATH (apt-get install chromium, or set BRAID_CHROMIUM): skipping the dashboard's browser test")
	return ""
}

// runCluster starts n replicas in this process, each serving the API and,
// by default, the dashboard on its http_addr.
func runCluster(t *testing.T, n int) (*replicaCluster, func()) {
	t.Helper()
	cfg, ckey := testcluster.Config(t, n, true)
	testcluster.HTTP(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range n {
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
	c := &replicaCluster{}
	// A closed-loop client keeps the counters moving; Broadcast so that
	// every replica sees each request (and records its latency).
	cl, err := client.New(cfg, 0, ckey, client.Options{Broadcast: true})
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			// An op with bytes a page must escape, as any client may send.
			op := kv.Put([]byte(fmt.Sprintf("<img src=x onerror=alert(%d)>", i%7)), []byte("v"))
			sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := cl.Submit(sctx, op)
			scancel()
			if err == nil {
				c.done.Add(1)
			}
		}
	}()
	c.cfgAddr = cfg.Replicas[1].HTTPAddr
	c.f = cfg.F()
	c.m = cfg.M
	return c, func() { cancel(); cl.Close(); wg.Wait() }
}

type replicaCluster struct {
	cfgAddr string // replica 1's http_addr
	f, m    int
	done    atomic.Int64
}

// outageProxy forwards to a replica's http_addr; while down it drops
// every connection, as a replica that went away.
func outageProxy(t *testing.T, addr string) (*httptest.Server, *atomic.Bool) {
	t.Helper()
	target, err := url.Parse("http://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	// SetURL also sets the outbound Host to the replica's: it answers only
	// requests addressed to it (its Host check against DNS rebinding).
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) }}
	var down atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
					return
				}
			}
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &down
}

// The dashboard in a real browser against a running cluster under load:
// the page loads without a script error or a CSP violation, live values
// change, the charts get data, a certified block opens with its requests
// and signers (its hostile op bytes shown as text), and a replica that
// stops answering shows as unreachable until it answers again.
func TestDashboardInBrowser(t *testing.T) {
	exe := chromium(t)
	c, stop := runCluster(t, 4)
	defer stop()
	proxy, down := outageProxy(t, c.cfgAddr)
	api := httpapi.NewClient(c.cfgAddr, &http.Client{Timeout: 5 * time.Second})

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1360, 1000),
	)...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	defer cancelBrowser()
	// Start the browser with a context of no deadline (a deadline would
	// end the browser), then bound each step.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting %s: %v", exe, err)
	}
	var mu sync.Mutex
	var problems []string
	go func() {
		for m, err := range chromedp.Console(bctx) {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleException || m.Type == chromedp.ConsoleError || strings.Contains(m.Text, "Content Security Policy") {
				mu.Lock()
				problems = append(problems, m.String()+" "+m.URL)
				mu.Unlock()
			}
		}
	}()
	step := func(what string, d time.Duration, a chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := context.WithTimeout(bctx, d)
		defer cancel()
		if err := chromedp.Do(ctx, a); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(expr string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(bctx, 10*time.Second)
		defer cancel()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		return v
	}
	text := func(id string) string { return eval(`document.getElementById(` + strconv.Quote(id) + `).textContent`) }
	poll := func(what, expr string, d time.Duration) {
		t.Helper()
		step(what, d+5*time.Second, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Poll[bool](expr, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(d))(ctx, tg)
			return err
		}))
	}

	start := time.Now()
	step("load the page", 20*time.Second, chromedp.Navigate(proxy.URL+"/"))
	poll("the page goes live", `document.getElementById('conn').dataset.state === 'live' && document.querySelectorAll('#instances tbody tr').length > 0`, 20*time.Second)
	if got := eval(`String(document.querySelectorAll('#instances tbody tr').length)`); got != strconv.Itoa(c.m) {
		t.Fatalf("%s instance rows, want m = %d", got, c.m)
	}
	if title := text("title"); title != "replica 1" {
		t.Fatalf("title %q", title)
	}

	// Live values change between two reads.
	round0, exec0 := text("round"), text("executed")
	poll("the round and the executed count move", `document.getElementById('round').textContent !== `+strconv.Quote(round0)+
		` && document.getElementById('executed').textContent !== `+strconv.Quote(exec0), 20*time.Second)
	poll("throughput and latency are drawn from deltas", `/req\/s$/.test(document.getElementById('tput').textContent) && / ms$/.test(document.getElementById('latency').textContent)`, 20*time.Second)
	t.Logf("live after %v: round %s → %s, executed %s → %s, throughput %s, latency %s", time.Since(start).Round(time.Millisecond),
		round0, text("round"), exec0, text("executed"), text("tput"), text("latency"))

	// A certified block with requests opens with its requests and signers.
	poll("a certified block with requests is listed", `document.querySelector('#blocks tbody tr[data-cert="1"]:not([data-requests="0"])') !== null`, 30*time.Second)
	h := eval(`document.querySelector('#blocks tbody tr[data-cert="1"]:not([data-requests="0"])').dataset.height`)
	step("click block "+h, 10*time.Second, chromedp.Click(chromedp.CSS(`#blocks tbody tr[data-height="`+h+`"]`)))
	poll("block "+h+" opens", `(() => { const d = document.getElementById('block-detail');
		return !d.hidden && d.dataset.height === `+strconv.Quote(h)+` && document.querySelectorAll('#block-requests tbody tr').length > 0; })()`, 10*time.Second)
	height, _ := strconv.ParseUint(h, 10, 64)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	want, err := api.Block(ctx, height)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if want.Certificate == nil || len(want.Certificate.Signatures) < 2*c.f+1 {
		t.Fatalf("block %d's certificate %+v", height, want.Certificate)
	}
	var wantSigners []string
	for _, s := range want.Certificate.Signatures {
		wantSigners = append(wantSigners, strconv.Itoa(s.From))
	}
	gotSigners := strings.Fields(eval(`Array.from(document.querySelectorAll('#block-signers tbody tr'), (tr) => tr.cells[0].textContent).join(' ')`))
	if !slices.Equal(gotSigners, wantSigners) {
		t.Errorf("signers shown %v, the API has %v", gotSigners, wantSigners)
	}
	if got := eval(`String(document.querySelectorAll('#block-requests tbody tr').length)`); got != strconv.Itoa(len(want.Requests)) {
		t.Errorf("%s requests shown, block %d has %d", got, height, len(want.Requests))
	}
	if got, w := eval(`document.querySelector('#block-requests tbody tr').cells[5].textContent`), want.Requests[0].Summary; got != w {
		t.Errorf("first request's operation %q, want %q", got, w)
	}
	// Request numbers are any uint64: shown exactly, past 2^53 too.
	if got, w := eval(`document.querySelector('#block-requests tbody tr').cells[2].textContent`), strconv.FormatUint(want.Requests[0].Number, 10); got != w {
		t.Errorf("first request's number %q, want %q", got, w)
	}
	if got := eval(`document.querySelector('#block-requests tbody tr').cells[7].lastChild.textContent`); !strings.Contains(got, "<img src=x") {
		t.Errorf("first request's bytes as text %q, want the key's <img …> as text", got)
	}
	if eval(`String(document.querySelectorAll('img').length)`) != "0" {
		t.Errorf("an operation's bytes became markup")
	}
	if hash := text("bd-hash"); hash != want.Hash {
		t.Errorf("block hash shown %q, want %q", hash, want.Hash)
	}
	t.Logf("block %s: %d requests, signers %v", h, len(want.Requests), gotSigners)

	if *screenshot != "" {
		t.Logf("letting the charts fill for %v before the screenshot", *shotAfter)
		time.Sleep(*shotAfter)
		ctx, cancel := context.WithTimeout(bctx, 30*time.Second)
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(*screenshot, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", *screenshot, len(png))
	}

	// The replica stops answering: the page says so, then recovers.
	down.Store(true)
	poll("the page shows the replica unreachable", `document.getElementById('conn').dataset.state === 'down' && !document.getElementById('unreachable').hidden`, 15*time.Second)
	down.Store(false)
	poll("the page recovers", `document.getElementById('conn').dataset.state === 'live' && document.getElementById('unreachable').hidden`, 15*time.Second)

	mu.Lock()
	defer mu.Unlock()
	// The outage's failed fetches log network errors; anything else is a
	// fault of the page.
	var bad []string
	for _, p := range problems {
		if !strings.Contains(p, "net::ERR_") && !strings.Contains(p, "Failed to load resource") {
			bad = append(bad, p)
		}
	}
	if len(bad) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(bad, "\n"))
	}
	if c.done.Load() == 0 {
		t.Error("the workload completed no request")
	}
	t.Logf("%d requests completed; test took %v", c.done.Load(), time.Since(start).Round(time.Millisecond))
}
