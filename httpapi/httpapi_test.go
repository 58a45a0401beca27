package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/braid-bft/braid/app/kv"
	"github.com/braid-bft/braid/ledger"
	"github.com/braid-bft/braid/ledger/ledgertest"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/pbft"
	"github.com/braid-bft/braid/shell"
	"github.com/braid-bft/braid/transport"
)

// fakeSource serves a fixed snapshot and chain; stuck makes Snapshot wait
// for its context, as a loop that does not answer.
type fakeSource struct {
	snap  *Snapshot
	chain ledger.Source
	stuck bool
}

func (f *fakeSource) Snapshot(ctx context.Context) (*Snapshot, error) {
	if f.stuck {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return f.snap, nil
}

func (f *fakeSource) Ledger() ledger.Source { return f.chain }

func testSnapshot() *Snapshot {
	return &Snapshot{
		Shell: shell.Status{
			ID: 2, N: 4, M: 2, Policy: "replace", Round: 9, StableCheckpoint: 8,
			Ingress:        shell.Stats{FetchOverBudget: 6},
			FailedReplicas: []msg.ReplicaID{1},
			Instances: []shell.InstanceStatus{
				{Instance: 0, View: 0, Primary: 0, LastDecided: 9, Executed: 12, Counters: pbft.Stats{Decided: 9, Dropped: map[string]uint64{"stale": 3}}},
				{Instance: 1, View: 2, Changing: true, Reason: "progress-timeout", Primary: msg.NoReplica, PrimaryFailed: false,
					LastDecided: 7, Failures: 1, ResumeAt: 12, Skipping: true, Counters: pbft.Stats{Decided: 7, ViewChanges: 2, Dropped: map[string]uint64{"stale": 1}}},
			},
		},
		Peers:   transport.Stats{DroppedQueueFull: 5},
		Egress:  []transport.Queue{{Peer: 0, Frames: 3, Bytes: 300}, {Peer: 1}, {Peer: 3, Frames: 1, Bytes: 10}},
		Ingress: []int64{4, 0, 0, 1},
		Pool:    Pool{Workers: 2, Busy: 1, BusySeconds: 1.5},
	}
}

func serve(t *testing.T, src Source, opts Options) string {
	t.Helper()
	srv := httptest.NewServer(New(src, opts))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func fetch(t *testing.T, method, url string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
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
	return resp.StatusCode, resp.Header, string(body)
}

// Bad requests get the right status code and a JSON error that says what
// was wrong; none of them reaches the ledger with a bad height.
func TestErrorAnswers(t *testing.T) {
	addr := serve(t, &fakeSource{snap: testSnapshot(), chain: ledgertest.NewChain(10, 4, 5)}, Options{})
	for _, c := range []struct {
		method, path string
		code         int
		want         string
	}{
		{"GET", "/v1/blocks/abc", 400, `height: \"abc\" is not a height`},
		{"GET", "/v1/blocks/-1", 400, "not a height"},
		{"GET", "/v1/blocks/1e3", 400, "not a height"},
		{"GET", "/v1/blocks/99999999999999999999", 400, "out of range"},
		{"GET", "/v1/blocks/0", 404, "no block at height 0"},
		{"GET", "/v1/blocks/11", 404, "heights 1 to 10"},
		{"GET", "/v1/blocks", 400, "give from and to"},
		{"GET", "/v1/blocks?from=1", 400, "give from and to"},
		{"GET", "/v1/blocks?from=1&to=2&to=3", 400, "give from and to"},
		{"GET", "/v1/blocks?from=1&to=2&limit=3", 400, `unknown query parameter \"limit\"`},
		{"GET", "/v1/blocks?from=0&to=2", 400, "heights start at 1"},
		{"GET", "/v1/blocks?from=x&to=2", 400, "from: \\\"x\\\" is not a height"},
		{"GET", "/v1/blocks?from=5&to=4", 400, "to 4 is below from 5"},
		{"GET", "/v1/blocks?from=1&to=257", 400, "at most 256 per request"},
		{"GET", "/v1/blocks?from=11&to=12", 404, "no block at height 11"},
		{"POST", "/v1/status", 405, "method POST not allowed"},
		{"DELETE", "/v1/blocks/1", 405, "use GET"},
		{"PUT", "/metrics", 405, "use GET"},
		{"GET", "/v2/nothing", 404, "no route /v2/nothing"},
		{"GET", "/v1/blocks/", 404, "no route /v1/blocks/"},
		{"GET", "/v1/blocks/1/2", 404, "no route /v1/blocks/1/2"},
		{"GET", "/", 404, "no route /"},
	} {
		code, hdr, body := fetch(t, c.method, "http://"+addr+c.path)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("%s %s: %d %s, want %d containing %q", c.method, c.path, code, body, c.code, c.want)
			continue
		}
		if ct := hdr.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q", c.method, c.path, ct)
		}
		var e Error
		if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" {
			t.Errorf("%s %s: body %q is not a JSON error", c.method, c.path, body)
		}
		if c.code == 405 && hdr.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s %s: Allow %q", c.method, c.path, hdr.Get("Allow"))
		}
	}
}

// A loop that does not answer makes the snapshot routes 503 within the
// timeout, instead of hanging the scraper.
func TestStuckLoopAnswers503(t *testing.T) {
	addr := serve(t, &fakeSource{stuck: true, chain: ledgertest.NewChain(1, 4, 0)}, Options{Timeout: 50 * time.Millisecond, Metrics: NewMetrics()})
	for _, path := range []string{PathStatus, PathMetrics} {
		start := time.Now()
		code, hdr, body := fetch(t, "GET", "http://"+addr+path)
		if code != 503 || !strings.Contains(body, "did not report its state") || hdr.Get("Retry-After") == "" {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("GET %s took %v", path, d)
		}
	}
	// Blocks come from the store, not the loop: still served.
	if code, _, body := fetch(t, "GET", "http://"+addr+"/v1/blocks/1"); code != 200 {
		t.Fatalf("block with a stuck loop: %d %s", code, body)
	}
}

// Other packages' routes (the gateway's, a dashboard at /) share the mux.
func TestMountedRoutes(t *testing.T) {
	kvRoute := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "kv "+r.URL.Path) })
	root := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "dashboard") })
	addr := serve(t, &fakeSource{snap: testSnapshot(), chain: ledgertest.NewChain(1, 4, 0)},
		Options{Routes: []Route{{"/v1/kv/", kvRoute}, {"GET /{$}", root}}})
	if code, _, body := fetch(t, "GET", "http://"+addr+"/v1/kv/a"); code != 200 || body != "kv /v1/kv/a" {
		t.Fatalf("mounted route: %d %q", code, body)
	}
	if code, _, body := fetch(t, "GET", "http://"+addr+"/"); code != 200 || body != "dashboard" {
		t.Fatalf("mounted root: %d %q", code, body)
	}
	if code, _, _ := fetch(t, "GET", "http://"+addr+PathStatus); code != 200 {
		t.Fatalf("status beside mounted routes: %d", code)
	}
}

func TestStatusDocument(t *testing.T) {
	addr := serve(t, &fakeSource{snap: testSnapshot(), chain: ledgertest.NewChain(1, 4, 0)}, Options{})
	st, err := NewClient(addr, nil).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.ID != 2 || st.M != 2 || st.Round != 9 || st.Height != 9 || st.CheckpointLag != 1 || !reflect.DeepEqual(st.FailedReplicas, []int{1}) {
		t.Fatalf("status %+v", st)
	}
	i1 := st.Instances[1]
	if len(st.Instances) != 2 || i1.View != 2 || !i1.ViewChanging || i1.ViewChangeReason != "progress-timeout" || i1.Primary != -1 ||
		!i1.Skipping || i1.ResumeAt != 12 || i1.Decided != 7 || i1.ViewChanges != 2 || st.Instances[0].ExecutedRequests != 12 {
		t.Fatalf("instances %+v", st.Instances)
	}
	if len(st.Peers) != 3 || st.Peers[0] != (PeerStatus{ID: 0, EgressFrames: 3, EgressBytes: 300, IngressFrames: 4}) || st.Peers[2].IngressFrames != 1 {
		t.Fatalf("peers %+v", st.Peers)
	}
}

// The metrics page carries the snapshot's series under braid_ names, with
// the values of the snapshot it was read from.
func TestMetricsFromSnapshot(t *testing.T) {
	m := NewMetrics()
	m.FsyncSeconds.Observe(0.002)
	m.ClientLatencySeconds.Observe(0.01)
	addr := serve(t, &fakeSource{snap: testSnapshot(), chain: ledgertest.NewChain(1, 4, 0)}, Options{Metrics: m})
	// Scrapes at once each get a registry and a snapshot of their own
	// (run with -race).
	pages := make(chan string, 8)
	for range cap(pages) {
		go func() {
			resp, err := http.Get("http://" + addr + PathMetrics)
			if err != nil {
				pages <- err.Error()
				return
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				pages <- err.Error()
				return
			}
			pages <- string(body)
		}()
	}
	body := <-pages
	if !strings.Contains(body, "braid_ledger_height 9\n") {
		t.Fatalf("scrape:\n%s", body)
	}
	for range cap(pages) - 1 {
		if other := <-pages; !strings.Contains(other, "braid_ledger_height 9\n") {
			t.Fatalf("a concurrent scrape got:\n%s", other)
		}
	}
	for _, want := range []string{
		`braid_replica_info{id="2",m="2",n="4",policy="replace"} 1`,
		`braid_ledger_height 9`,
		`braid_checkpoint_lag_rounds 1`,
		`braid_instance_round{instance="0"} 9`,
		`braid_instance_round{instance="1"} 7`,
		`braid_instance_view{instance="1"} 2`,
		`braid_instance_primary{instance="1"} -1`,
		`braid_instance_view_changing{instance="1"} 1`,
		`braid_instance_skipping{instance="1"} 1`,
		`braid_instance_decided_total{instance="0"} 9`,
		`braid_instance_executed_requests_total{instance="0"} 12`,
		`braid_messages_dropped_total{reason="instance_stale"} 4`,
		`braid_messages_dropped_total{reason="transport_queue_full"} 5`,
		`braid_messages_dropped_total{reason="fetch_over_budget"} 6`,
		`braid_egress_queue_frames{peer="0"} 3`,
		`braid_ingress_queue_frames{peer="3"} 1`,
		`braid_verify_pool_busy_seconds_total 1.5`,
		`braid_failed_replicas 1`,
		`braid_fsync_seconds_count 1`,
		`braid_client_latency_seconds_count 1`,
		`braid_group_commit_batches_count 0`,
		`go_goroutines `,
	} {
		if !strings.Contains("\n"+body, "\n"+want+"\n") && !(strings.HasSuffix(want, " ") && strings.Contains(body, "\n"+want)) {
			t.Errorf("metrics lack the line %q", want)
		}
	}
}

// A block document holds every byte of its block: rebuilt, it hashes the
// same, and a ledger read over HTTP, in ranges, verifies exactly as the
// ledger itself does.
func TestBlocksOverHTTPVerify(t *testing.T) {
	chain := ledgertest.NewChain(2*MaxRange+10, 4, 7)
	// One block with an instance change and orderings, and a kv op.
	b := chain.Blocks[4]
	b.Requests = append(b.Requests, ledgertest.Request(3, 99, msg.InstanceChangeOp(1, kv.Put([]byte("k"), []byte("v")))))
	b.Orderings = make([]ledger.Ordering, len(b.Requests))
	b.Orderings[len(b.Requests)-1] = ledger.Ordering{Instance: 1, Outcome: msg.Moved}
	rechain(chain)
	addr := serve(t, &fakeSource{snap: testSnapshot(), chain: chain}, Options{})
	c := NewClient(addr, nil)
	doc, err := c.Block(context.Background(), 5)
	if err != nil {
		t.Fatal(err)
	}
	if got := doc.Requests[len(doc.Requests)-1]; got.Outcome != "moved" || got.Instance != 1 || got.Summary != "instance change to 1 carrying kv put" {
		t.Fatalf("request %+v", got)
	}
	lb, _, err := doc.Ledger()
	if err != nil || lb.Hash() != b.Hash() {
		t.Fatalf("rebuilt block 5: %v, hash differs: %v", err, lb.Hash() != b.Hash())
	}
	want, err := ledger.Verify(chain, ledgertest.Verifier{}, 4, ledger.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The fake snapshot says height 9; serve the chain's own height.
	snap := testSnapshot()
	snap.Shell.Round = uint64(len(chain.Blocks))
	addr = serve(t, &fakeSource{snap: snap, chain: chain}, Options{})
	src, err := NewClient(addr, nil).Ledger(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got, err := ledger.Verify(src, ledgertest.Verifier{}, 4, ledger.VerifyOptions{})
	if err != nil || got != want {
		t.Fatalf("over HTTP: %+v, %v; directly: %+v", got, err, want)
	}
	// A range answer stops at the byte bound but always advances.
	bs, err := ReadRange(chain, 1, 20, 20, 1)
	if err != nil || bs.To != 1 || len(bs.Blocks) != 1 {
		t.Fatalf("byte-bounded range: to %d, %d blocks, %v", bs.To, len(bs.Blocks), err)
	}
}

// rechain recomputes prev links and certificates after a test edited a
// block, so the chain is valid again.
func rechain(c *ledgertest.Chain) {
	var prev msg.Digest
	for _, b := range c.Blocks {
		b.Prev = prev
		if c.Certs[b.Height] != nil {
			c.Certs[b.Height] = ledgertest.Certify(b, ledgertest.Signers(4))
		}
		prev = b.Hash()
	}
}

// docs/http.md lists every braid_ metric the page carries and every route.
func TestDocsListEveryMetricAndRoute(t *testing.T) {
	doc, err := os.ReadFile("../docs/http.md")
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, &fakeSource{snap: testSnapshot(), chain: ledgertest.NewChain(1, 4, 0)}, Options{Metrics: NewMetrics()})
	_, _, body := fetch(t, "GET", "http://"+addr+PathMetrics)
	n := 0
	for line := range strings.SplitSeq(body, "\n") {
		name, ok := strings.CutPrefix(line, "# HELP braid_")
		if !ok {
			continue
		}
		name = "braid_" + strings.Fields(name)[0]
		n++
		if !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("docs/http.md does not list %s", name)
		}
	}
	if n < 40 {
		t.Fatalf("only %d braid_ metrics on the page", n)
	}
	for _, route := range []string{PathMetrics, PathStatus, PathBlock, PathBlocks + "?from=A&to=B"} {
		if !strings.Contains(string(doc), "`GET "+route+"`") {
			t.Errorf("docs/http.md does not list GET %s", route)
		}
	}
}

// /v1/status carries the client latency histogram when the API records
// one (the dashboard draws latency from it), and leaves the field out
// when it does not.
func TestStatusClientLatency(t *testing.T) {
	m := NewMetrics()
	for _, s := range []float64{0.0004, 0.01, 0.01, 100} {
		m.ClientLatencySeconds.Observe(s)
	}
	addr := serve(t, &fakeSource{snap: testSnapshot(), chain: ledgertest.NewChain(1, 4, 0)}, Options{Metrics: m})
	st, err := NewClient(addr, nil).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	h := st.ClientLatency
	if h == nil || h.Count != 4 || h.Sum < 100.02 || h.Sum > 100.021 || len(h.Buckets) != 16 {
		t.Fatalf("client_latency %+v", h)
	}
	prev := uint64(0)
	for i, b := range h.Buckets {
		if b.Count < prev || (i > 0 && b.LE <= h.Buckets[i-1].LE) {
			t.Fatalf("buckets not cumulative and ascending: %+v", h.Buckets)
		}
		prev = b.Count
	}
	if b := h.Buckets[0]; b.LE != 0.0005 || b.Count != 1 {
		t.Errorf("first bucket %+v, want le 0.0005 count 1", b)
	}
	if last := h.Buckets[len(h.Buckets)-1]; last.Count != 3 {
		t.Errorf("last finite bucket %+v, want 3 (the 100 s observation is only in +Inf)", last)
	}

	addr = serve(t, &fakeSource{snap: testSnapshot(), chain: ledgertest.NewChain(1, 4, 0)}, Options{})
	_, _, body := fetch(t, "GET", "http://"+addr+PathStatus)
	if strings.Contains(body, "client_latency") {
		t.Errorf("status without metrics has client_latency:\n%s", body)
	}
}
