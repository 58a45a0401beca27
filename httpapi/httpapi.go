// Package httpapi is a replica's HTTP listener: Prometheus metrics at
// /metrics, its view of every instance at /v1/status, and its ledger's
// blocks at /v1/blocks — so a running cluster can be watched, inspected and
// audited without stopping anything. docs/http.md documents every route.
//
// The package never touches the runtime's state itself. It asks a Source
// for one Snapshot per request (the replica's loop builds it, see
// shell.Status), with a deadline, so a stuck loop answers 503 instead of
// hanging the scraper; blocks come from the store, which is safe for
// concurrent reads. Other packages mount their routes on the same mux
// (Options.Routes): the gateway's /v1/kv and /v1/bank, a dashboard at /.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/braid-bft/braid/gateway"
	"github.com/braid-bft/braid/ledger"
	"github.com/braid-bft/braid/shell"
	"github.com/braid-bft/braid/storage"
	"github.com/braid-bft/braid/transport"
)

// The routes this package serves.
const (
	PathMetrics = "/metrics"
	PathStatus  = "/v1/status"
	PathBlocks  = "/v1/blocks"          // ?from=A&to=B
	PathBlock   = "/v1/blocks/{height}" // one block
)

// Limits on what one request may ask for or send.
const (
	// MaxRange bounds the blocks of one range request; MaxRangeBytes the
	// encoded bytes (past it the answer stops early and says where).
	MaxRange      = 256
	MaxRangeBytes = 16 << 20
	// MaxBodyBytes bounds a request body on every route, mounted ones
	// included (none of this package's routes takes one).
	MaxBodyBytes = 1 << 20
	// DefaultTimeout is how long a request waits for the replica's loop.
	DefaultTimeout = 2 * time.Second
	// DefaultMaxConns bounds the listener's open connections.
	DefaultMaxConns = 256
	// DefaultBlockRequests bounds the block requests served at once:
	// every block read holds the store's lock, which the replica's loop
	// needs for its writes.
	DefaultBlockRequests = 2
)

// Snapshot is what the runtime reports at one instant: the shell's state
// and the counters the production goroutines own.
type Snapshot struct {
	Shell shell.Status
	// Peers is replica traffic, Clients the client-facing listener's.
	Peers, Clients transport.Stats
	// Egress is each peer's outbound queue; Ingress the frames each peer
	// (by id) has waiting for the loop, and ClientIngress the client
	// frames waiting.
	Egress        []transport.Queue
	Ingress       []int64
	ClientIngress int64
	Pool          Pool
	Store         storage.Stats
	// Byzantine is the replica's deliberate misbehaviour ("" for none;
	// package byzantine, test only) and Tampered the frames it has
	// altered, withheld, added or dropped.
	Byzantine string
	Tampered  uint64
}

// Pool is the worker pool that verifies signatures (and runs the loop's
// other off-loop jobs: snapshots, serving fetches).
type Pool struct {
	Workers     int
	Busy        int     // workers running a job now
	Queued      int     // jobs waiting for a worker
	BusySeconds float64 // total time workers spent in jobs
	Inline      uint64  // jobs the loop ran itself because the queue was full
}

// Source is the replica the API describes.
type Source interface {
	// Snapshot asks the runtime for its state. It returns an error once
	// ctx ends without an answer, or when the replica is not running.
	Snapshot(ctx context.Context) (*Snapshot, error)
	// Ledger is the replica's store; it must be safe to read concurrently
	// with the running replica.
	Ledger() ledger.Source
}

// Route is a handler another package mounts on the API's mux. Pattern is
// an http.ServeMux pattern ("/v1/kv/", "GET /{$}").
type Route struct {
	Pattern string
	Handler http.Handler
}

// Options configure New.
type Options struct {
	// Metrics holds the histograms the runtime records; nil serves none.
	Metrics *Metrics
	// Routes are mounted beside this package's own.
	Routes []Route
	// Timeout bounds the wait for a snapshot; 0 means DefaultTimeout.
	Timeout time.Duration
	Logger  *slog.Logger
	// MaxConns bounds the connections Listen keeps open at once (more
	// wait in the kernel's backlog); 0 means DefaultMaxConns. File
	// descriptors are shared with the transports and the store, so an
	// unbounded listener could starve them.
	MaxConns int
	// AllowedHosts are the Host headers (host:port) the API answers; any
	// other gets 421, so that a web page whose DNS name was rebound to
	// this address cannot read or write through it. An entry "*:PORT"
	// matches any IP address with that port (a DNS-rebinding page's Host
	// is its own name, never an address). Empty allows every Host (tests'
	// httptest servers); a replica sets AllowedHostsFor(http_addr).
	AllowedHosts []string
	// BlockRequests bounds the block requests (/v1/blocks, /v1/blocks/N)
	// read from the store at once; others wait for a turn up to Timeout
	// (or their context), then get 503 with Retry-After. 0 means
	// DefaultBlockRequests.
	BlockRequests int
}

// AllowedHostsFor is the AllowedHosts of a listener bound to addr: addr
// itself and localhost, 127.0.0.1 and [::1] with its port, and each of
// names (hosts, or host:port whose port is ignored: the replica's addr and
// client_addr, say, which name the same machine) with its port; for a
// wildcard addr (0.0.0.0, [::], no host) also any IP address with its port.
func AllowedHostsFor(addr string, names ...string) []string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return []string{addr}
	}
	out := []string{net.JoinHostPort("localhost", port), net.JoinHostPort("127.0.0.1", port), net.JoinHostPort("::1", port)}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		out = append(out, "*:"+port)
	} else {
		out = append(out, net.JoinHostPort(host, port))
	}
	for _, n := range names {
		if h, _, err := net.SplitHostPort(n); err == nil {
			n = h
		}
		if hp := net.JoinHostPort(n, port); n != "" && !slices.Contains(out, hp) {
			out = append(out, hp)
		}
	}
	return out
}

// hostAllowed says whether a request's Host is one of allowed (see
// Options.AllowedHosts); a Host without a port means port 80.
func hostAllowed(allowed []string, reqHost string) bool {
	host, port, err := net.SplitHostPort(reqHost)
	if err != nil {
		host, port = strings.TrimSuffix(strings.TrimPrefix(reqHost, "["), "]"), "80"
	}
	norm := net.JoinHostPort(host, port)
	for _, a := range allowed {
		if strings.EqualFold(a, norm) {
			return true
		}
		if p, ok := strings.CutPrefix(a, "*:"); ok && p == port && net.ParseIP(host) != nil {
			return true
		}
	}
	return false
}

type api struct {
	src      Source
	metrics  *Metrics
	timeout  time.Duration
	log      *slog.Logger
	blockSem chan struct{} // a token per block request being served
	snaps    snapCache
}

// New returns the API's handler: this package's routes and opts.Routes on
// one http.ServeMux, every request body bounded by MaxBodyBytes. Paths no
// route claims answer a JSON 404.
func New(src Source, opts Options) http.Handler {
	a := &api{src: src, metrics: opts.Metrics, timeout: opts.Timeout, log: opts.Logger}
	if a.timeout <= 0 {
		a.timeout = DefaultTimeout
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	nblocks := opts.BlockRequests
	if nblocks <= 0 {
		nblocks = DefaultBlockRequests
	}
	a.blockSem = make(chan struct{}, nblocks)
	mux := http.NewServeMux()
	mux.Handle(PathMetrics, get(a.serveMetrics))
	mux.Handle(PathStatus, get(a.serveStatus))
	mux.Handle(PathBlocks, get(a.serveBlocks))
	mux.Handle(PathBlock, get(a.serveBlock))
	root := false
	for _, r := range opts.Routes {
		mux.Handle(r.Pattern, r.Handler)
		if p := r.Pattern[strings.LastIndex(r.Pattern, " ")+1:]; p == "/" {
			root = true
		}
	}
	if !root {
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, fmt.Sprintf("no route %s", r.URL.Path))
		})
	}
	allowed := slices.Clone(opts.AllowedHosts)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(allowed) > 0 && !hostAllowed(allowed, r.Host) {
			writeError(w, http.StatusMisdirectedRequest, fmt.Sprintf("Host %q is not this replica's http_addr (allowed: %s)", truncate(r.Host, 100), strings.Join(allowed, ", ")))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		mux.ServeHTTP(w, r)
	})
}

// get allows GET and HEAD only, answering anything else with a JSON 405
// (ServeMux's method patterns answer in plain text).
func get(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s; use GET", r.Method, r.URL.Path))
			return
		}
		h(w, r)
	})
}

// SnapshotMaxAge is how long one snapshot answers further /metrics and
// /v1/status requests: scrapers and dashboards polling at once cost the
// replica's loop one snapshot, not one each.
const SnapshotMaxAge = 250 * time.Millisecond

// snapCache shares snapshots between requests: at most one request to the
// loop is in flight (the others wait for its answer), and an answer is
// reused for SnapshotMaxAge. Snapshots are read-only once taken.
type snapCache struct {
	mu     sync.Mutex
	snap   *Snapshot
	at     time.Time
	flight *snapFlight
}

type snapFlight struct {
	done chan struct{}
	snap *Snapshot
	err  error
}

// get returns a snapshot at most SnapshotMaxAge old, asking src (bounded
// by timeout, not by any one waiter's context) when there is none and no
// one else is asking; it returns ctx's error if ctx ends first.
func (c *snapCache) get(ctx context.Context, src Source, timeout time.Duration) (*Snapshot, error) {
	c.mu.Lock()
	if c.snap != nil && time.Since(c.at) < SnapshotMaxAge {
		snap := c.snap
		c.mu.Unlock()
		return snap, nil
	}
	f := c.flight
	if f == nil {
		f = &snapFlight{done: make(chan struct{})}
		c.flight = f
		go func() {
			fctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			snap, err := src.Snapshot(fctx)
			c.mu.Lock()
			f.snap, f.err = snap, err
			if err == nil {
				c.snap, c.at = snap, time.Now()
			}
			c.flight = nil
			c.mu.Unlock()
			close(f.done)
		}()
	}
	c.mu.Unlock()
	select {
	case <-f.done:
		return f.snap, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// snapshot asks the source (through the shared cache), bounded by the
// timeout; a failure is written as 503 and returns nil.
func (a *api) snapshot(w http.ResponseWriter, r *http.Request) *Snapshot {
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	snap, err := a.snaps.get(ctx, a.src, a.timeout)
	if err != nil {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("replica did not report its state: %v", err))
		return nil
	}
	return snap
}

func (a *api) serveStatus(w http.ResponseWriter, r *http.Request) {
	if snap := a.snapshot(w, r); snap != nil {
		st := NewStatus(snap)
		if a.metrics != nil {
			st.ClientLatency = readHistogram(a.metrics.ClientLatencySeconds)
		}
		writeJSON(w, http.StatusOK, st)
	}
}

// blockTurn waits for one of the block requests' turns, up to the
// timeout or the request's end, and returns its release; on failure it
// has written a 503 with Retry-After and returns nil.
func (a *api) blockTurn(w http.ResponseWriter, r *http.Request) func() {
	select {
	case a.blockSem <- struct{}{}:
		return func() { <-a.blockSem }
	default:
	}
	t := time.NewTimer(a.timeout)
	defer t.Stop()
	select {
	case a.blockSem <- struct{}{}:
		return func() { <-a.blockSem }
	case <-t.C:
	case <-r.Context().Done():
	}
	w.Header().Set("Retry-After", "1")
	writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("busy: %d block requests are being served; retry", cap(a.blockSem)))
	return nil
}

// openLedger takes a turn at the store (blockTurn) and reads the ledger's
// height; a nil release means it has answered the request already.
func (a *api) openLedger(w http.ResponseWriter, r *http.Request) (ledger.Source, uint64, func()) {
	release := a.blockTurn(w, r)
	if release == nil {
		return nil, 0, nil
	}
	src := a.src.Ledger()
	height, err := src.Height()
	if err != nil {
		release()
		a.storeError(w, "reading the ledger height", err)
		return nil, 0, nil
	}
	return src, height, release
}

func (a *api) serveBlock(w http.ResponseWriter, r *http.Request) {
	h, err := parseHeight("height", r.PathValue("height"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	src, height, release := a.openLedger(w, r)
	if release == nil {
		return
	}
	defer release()
	if h == 0 || h > height {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no block at height %d: the ledger holds heights 1 to %d", h, height))
		return
	}
	b, err := ReadBlock(src, h)
	if err != nil {
		a.storeError(w, fmt.Sprintf("reading block %d", h), err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

func (a *api) serveBlocks(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		if k != "from" && k != "to" {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown query parameter %q (want from and to)", k))
			return
		}
	}
	if len(q["from"]) != 1 || len(q["to"]) != 1 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("give from and to once each: %s?from=A&to=B (at most %d blocks)", PathBlocks, MaxRange))
		return
	}
	from, err := parseHeight("from", q.Get("from"))
	if err == nil && from == 0 {
		err = errors.New("from: heights start at 1")
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	to, err := parseHeight("to", q.Get("to"))
	switch {
	case err != nil:
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case to < from:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("to %d is below from %d", to, from))
		return
	case to-from >= MaxRange:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("range %d to %d holds %d blocks; at most %d per request", from, to, to-from+1, MaxRange))
		return
	}
	src, height, release := a.openLedger(w, r)
	if release == nil {
		return
	}
	defer release()
	if from > height {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no block at height %d: the ledger holds heights 1 to %d", from, height))
		return
	}
	out, err := ReadRange(src, from, min(to, height), height, MaxRangeBytes)
	if err != nil {
		a.storeError(w, "reading blocks", err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// storeError answers a failed ledger read: 500, since the request was
// good and the replica could not serve it.
func (a *api) storeError(w http.ResponseWriter, what string, err error) {
	a.log.Warn("http: ledger read failed", "what", what, "err", err)
	writeError(w, http.StatusInternalServerError, fmt.Sprintf("%s: %v", what, err))
}

// parseHeight reads a block height: decimal digits only, no sign, no
// spaces, at most 20 of them.
func parseHeight(name, s string) (uint64, error) {
	if s == "" {
		return 0, fmt.Errorf("%s: missing height", name)
	}
	if len(s) > 20 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%s: %q is not a height (a decimal number)", name, truncate(s, 40))
	}
	h, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is out of range", name, s)
	}
	return h, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Server is the HTTP listener of one replica.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan error
}

// Listen binds addr and serves h on it until Close, with at most
// opts.MaxConns connections open at once (opts.Logger logs; the other
// Options are New's). Timeouts and header bounds keep a slow or hostile
// client from holding connections or memory.
func Listen(addr string, h http.Handler, opts Options) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http_addr %s: %w", addr, err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	maxConns := opts.MaxConns
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	ln = gateway.LimitListener(ln, maxConns)
	s := &Server{
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      60 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		},
		ln:   ln,
		done: make(chan error, 1),
	}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops accepting, lets requests under way finish until ctx ends,
// then closes what is left.
func (s *Server) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, s.srv.Close())
	}
	if serr := <-s.done; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
