// Package replica runs one replica in production: it gives the runtime
// (package shell) its real dependencies — TLS sockets (transport), Ed25519
// (auth), the bbolt store with a group-commit goroutine, a bounded worker
// pool — and the loop goroutine that feeds it events. The protocol work
// itself, and everything the simulator checks, lives in the shell.
package replica

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/braid-bft/braid/byzantine"
	"github.com/braid-bft/braid/config"
	"github.com/braid-bft/braid/dashboard"
	"github.com/braid-bft/braid/httpapi"
	"github.com/braid-bft/braid/ledger"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/shell"
	"github.com/braid-bft/braid/storage"
	"github.com/braid-bft/braid/transport"
)

// Options tune a replica beyond the cluster file.
type Options struct {
	Logger *slog.Logger
	// Store, when set, is used instead of the data directory's on-disk
	// store (tests: a store that crashes or fails). The replica closes it.
	Store storage.Interface
	// Sent, when set, sees every message to peers just before it leaves
	// (tests collect what a replica signed across a crash and restart).
	// It runs on the replica's goroutine and must not block.
	Sent func(m msg.Message)
	// HTTPRoutes are mounted on the HTTP listener (http_addr) beside the
	// metrics, status and block routes: the gateway's. The dashboard
	// (package dashboard) is mounted at / unless one of them claims the
	// page's path.
	HTTPRoutes []httpapi.Route
	// Byzantine, when set, makes the replica deliberately faulty (package
	// byzantine): for attacks on real processes in tests. New refuses it
	// unless UnsafeByzantine is set too, and Run says so in the log at
	// startup and every ByzantineWarnEvery.
	Byzantine       byzantine.Kind
	UnsafeByzantine bool
}

// ByzantineWarnEvery is how often a Byzantine replica repeats its warning.
const ByzantineWarnEvery = 10 * time.Second

// ErrFailStop is wrapped by the error Run returns when the replica stopped
// because its storage failed (see shell.ErrFailStop).
var ErrFailStop = shell.ErrFailStop

// Replica is one running replica.
type Replica struct {
	cfg      *config.Config
	id       msg.ReplicaID
	log      *slog.Logger
	sh       *shell.Shell
	store    storage.Interface
	peers    *transport.Transport
	front    *transport.Transport // client-facing listener
	frames   chan event           // from the transports' readers (bounded: backpressure)
	done     *completions         // from the workers and the committer
	workers  *workers
	commit   *committer
	clientID map[string]msg.ClientID // public key → admitted client id
	progress atomic.Uint64           // the shell's round, readable from other goroutines
	inspect  chan chan string
	status   chan chan shell.Status
	quit     chan struct{} // closed when Run stops reading events
	closed   bool
	byz      *byzantine.Filter // nil: a correct replica

	// Observability: frames waiting in frames per peer (by id) and from
	// clients; the histograms the runtime records; the HTTP listener.
	ingress       []atomic.Int64
	clientIngress atomic.Int64
	metrics       *httpapi.Metrics
	latency       latency
	httpRoutes    []httpapi.Route
	httpServer    *httpapi.Server // set and closed by Run
}

// withDashboard adds the dashboard's routes to routes, unless one of them
// claims the page's path ("/{$}", method or not) itself.
func withDashboard(routes []httpapi.Route) []httpapi.Route {
	for _, r := range routes {
		p := r.Pattern[strings.LastIndex(r.Pattern, " ")+1:]
		if p == "/{$}" || p == dashboard.AssetPrefix {
			return routes
		}
	}
	return append(slices.Clip(routes), dashboard.Routes()...)
}

// event is work for the loop from a transport goroutine; depth counts it
// while it waits (the ingress queue metrics).
type event struct {
	depth *atomic.Int64
	run   func()
}

// New opens the replica's storage and restores its state; Run starts it.
func New(cfg *config.Config, id int, opts Options) (*Replica, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if _, ok := cfg.Replica(id); !ok {
		return nil, fmt.Errorf("replica: id %d is not in the cluster config (n=%d)", id, cfg.N)
	}
	if opts.Byzantine != "" {
		if _, err := byzantine.Parse(string(opts.Byzantine)); err != nil {
			return nil, fmt.Errorf("replica %d: %w", id, err)
		}
		if err := byzantine.OptIn(opts.Byzantine, opts.UnsafeByzantine, ""); err != nil {
			return nil, fmt.Errorf("replica %d: %w", id, err)
		}
	}
	key, err := cfg.ReplicaKey(id)
	if err != nil {
		return nil, fmt.Errorf("replica %d: key: %w", id, err)
	}
	pubs, err := cfg.ReplicaPublicKeys()
	if err != nil {
		return nil, fmt.Errorf("replica %d: %w", id, err)
	}
	r := &Replica{
		cfg: cfg, id: msg.ReplicaID(id), log: opts.Logger.With("replica", id),
		frames: make(chan event, 4096), done: newCompletions(), inspect: make(chan chan string),
		status: make(chan chan shell.Status), quit: make(chan struct{}), clientID: map[string]msg.ClientID{},
		ingress: make([]atomic.Int64, cfg.N), metrics: httpapi.NewMetrics(), httpRoutes: withDashboard(opts.HTTPRoutes),
	}
	r.latency = latency{pending: map[msg.ClientID]arrival{}, hist: r.metrics.ClientLatencySeconds}
	scfg, keyring, err := shell.FromConfig(cfg, id)
	if err != nil {
		return nil, fmt.Errorf("replica %d: %w", id, err)
	}
	for cid, k := range keyring.Clients {
		r.clientID[string(k)] = cid
	}
	if opts.Store != nil {
		r.store = opts.Store
	} else {
		// Group commit: the shell stages writes and asks for one fsync
		// for all of them (committer); nothing commits behind its back.
		r.store, err = storage.Open(cfg.ReplicaDataDir(id), storage.Options{Fsync: storage.GroupCommit{Interval: time.Hour}})
		if err != nil {
			return nil, fmt.Errorf("replica %d: storage: %w", id, err)
		}
	}
	r.workers = newWorkers(0, r.done)
	r.commit = newCommitter(r.store, r.done, r.metrics)
	peers := map[int]transport.Peer{}
	for _, rep := range cfg.Replicas {
		peers[rep.ID] = transport.Peer{Addr: rep.Addr, PublicKey: ed25519.PublicKey(pubs[rep.ID])}
	}
	self, _ := cfg.Replica(id)
	r.peers, err = transport.New(transport.Config{ID: id, Listen: self.Addr, Peers: peers, Key: ed25519.PrivateKey(key), Logger: r.log},
		func(from int, frame []byte) {
			r.enqueue(&r.ingress[from], func() {
				r.byz.Received(frame)
				if r.byz.AcceptPeer(frame) {
					r.sh.OnPeer(msg.ReplicaID(from), frame)
				}
			})
		}, nil)
	if err != nil {
		r.stopHelpers()
		r.store.Close()
		return nil, fmt.Errorf("replica %d: transport: %w", id, err)
	}
	r.front, err = transport.New(transport.Config{ID: id, Listen: self.ClientAddr, Key: ed25519.PrivateKey(key), Logger: r.log},
		func(int, []byte) {}, r.onClientFrame)
	if err != nil {
		r.peers.Close()
		r.stopHelpers()
		r.store.Close()
		return nil, fmt.Errorf("replica %d: client transport: %w", id, err)
	}
	var net shell.Network = peerNet{r.peers}
	if opts.Byzantine != "" {
		r.byz, err = byzantine.New(opts.Byzantine, byzantine.Env{
			ID: msg.ReplicaID(id), N: cfg.N, Signer: scfg.Core.Instance.Signer, Rand: globalRand{},
			Send: peerNet{r.peers}.Send,
		})
		if err != nil {
			r.front.Close()
			r.peers.Close()
			r.stopHelpers()
			r.store.Close()
			return nil, fmt.Errorf("replica %d: %w", id, err)
		}
		net = r.byz
	}
	r.sh, err = shell.New(scfg, shell.Deps{
		Net: net, Disk: disk{r.store, r.commit}, Crypto: keyCrypto{keyring, r.metrics.VerifyBatchSize}, Worker: r.workers,
		Logger: r.log, Observer: shell.Observer{Sent: opts.Sent, Received: r.latency.received, Replied: r.latency.replied},
	})
	if err != nil {
		r.front.Close()
		r.peers.Close()
		r.stopHelpers()
		r.store.Close()
		return nil, fmt.Errorf("replica %d: %w", id, err)
	}
	r.progress.Store(r.sh.Round())
	return r, nil
}

// enqueue hands work from a transport goroutine to the loop. Once the loop
// has stopped nothing drains the queue, so a full queue must not block the
// transport's readers: Close waits for them.
func (r *Replica) enqueue(depth *atomic.Int64, f func()) {
	depth.Add(1)
	select {
	case r.frames <- event{depth, f}:
	case <-r.quit:
		depth.Add(-1)
	}
}

func (e event) handle() {
	e.depth.Add(-1)
	e.run()
}

// onClientFrame admits a client frame only from a key the config lists,
// under that key's client id.
func (r *Replica) onClientFrame(c *transport.ClientConn, frame []byte) {
	id, ok := r.clientID[string(c.PublicKey())]
	if !ok {
		return
	}
	if !r.byz.AcceptClient() {
		return
	}
	conn := clientConn{c: c, id: id}
	r.enqueue(&r.clientIngress, func() { r.byz.Received(frame); r.sh.OnClient(conn, frame) })
}

// Describe returns a one-line summary of the replica's protocol state,
// taken by its own goroutine (for logs and failing tests).
func (r *Replica) Describe(ctx context.Context) string {
	q := make(chan string, 1)
	select {
	case r.inspect <- q:
		return <-q
	case <-ctx.Done():
		return "(not running)"
	}
}

// Snapshot is the replica's state for its metrics and HTTP status: the
// shell's, taken by the loop goroutine (which owns it), and the counters
// the other goroutines own, read with atomics or their own locks. It gives
// up when ctx ends first (a loop stuck in a long pass) or once the replica
// stopped.
func (r *Replica) Snapshot(ctx context.Context) (*httpapi.Snapshot, error) {
	q := make(chan shell.Status, 1)
	select {
	case r.status <- q:
	case <-r.quit:
		return nil, errors.New("the replica has stopped")
	case <-ctx.Done():
		return nil, fmt.Errorf("the replica's loop is busy: %w", ctx.Err())
	}
	snap := &httpapi.Snapshot{
		Shell: <-q, Peers: r.peers.Stats(), Clients: r.front.Stats(), Egress: r.peers.Queues(),
		Ingress: make([]int64, len(r.ingress)), ClientIngress: r.clientIngress.Load(),
		Pool: r.workers.stats(), Store: r.store.Stats(),
		Byzantine: string(r.byz.Kind()), Tampered: r.byz.Tampered(),
	}
	for i := range r.ingress {
		snap.Ingress[i] = r.ingress[i].Load()
	}
	return snap, nil
}

// Ledger is the replica's store, for the HTTP block routes: every method
// of storage.Interface is safe for concurrent use, so reads need not go
// through the loop. They see blocks as soon as they are staged.
func (r *Replica) Ledger() ledger.Source { return r.store }

// Round is the last executed round (safe to call from any goroutine).
func (r *Replica) Round() uint64 { return r.progress.Load() }

// Run serves until ctx is cancelled, then shuts down cleanly. Each pass of
// its loop takes every event already waiting (up to shell.LoopPass), then asks
// the shell to flush once: requests that arrive together become one batch,
// and one group commit covers all m instances.
func (r *Replica) Run(ctx context.Context) error {
	if err := r.peers.Start(); err != nil {
		return errors.Join(fmt.Errorf("replica %d: %w", r.id, err), r.close())
	}
	if err := r.front.Start(); err != nil {
		return errors.Join(fmt.Errorf("replica %d: %w", r.id, err), r.close())
	}
	if self, _ := r.cfg.Replica(int(r.id)); self.HTTPAddr != "" {
		hopts := httpapi.Options{Metrics: r.metrics, Routes: r.httpRoutes, Logger: r.log, AllowedHosts: httpapi.AllowedHostsFor(self.HTTPAddr, self.Addr, self.ClientAddr)}
		srv, err := httpapi.Listen(self.HTTPAddr, httpapi.New(r, hopts), hopts)
		if err != nil {
			return errors.Join(fmt.Errorf("replica %d: %w", r.id, err), r.close())
		}
		r.httpServer = srv
		r.log.Info("http listening", "addr", srv.Addr())
	}
	r.log.Info("replica running", "peers", r.peers.Addr(), "clients", r.front.Addr(), "round", r.sh.Round(), "m", r.cfg.M, "policy", r.cfg.FailurePolicy)
	tick := time.NewTicker(r.cfg.Tick.Value())
	defer tick.Stop()
	var warn <-chan time.Time // a Byzantine replica's reminder
	if r.byz != nil {
		r.log.Error(byzantine.Warning(r.byz.Kind()), "byzantine", r.byz.Kind())
		t := time.NewTicker(ByzantineWarnEvery)
		defer t.Stop()
		warn = t.C
	}
	r.sh.Announce()
	r.sh.Flush()
	for {
		if err := r.sh.Failed(); err != nil {
			return errors.Join(fmt.Errorf("replica %d: %w", r.id, err), r.close())
		}
		select {
		case <-ctx.Done():
			return r.close()
		case <-tick.C:
			r.sh.Tick()
			r.byz.Tick()
		case <-warn:
			r.log.Error(byzantine.Warning(r.byz.Kind()), "byzantine", r.byz.Kind(), "round", r.sh.Round(), "tampered", r.byz.Tampered())
		case e := <-r.frames:
			e.handle()
		case <-r.done.ready:
		case q := <-r.inspect:
			q <- r.sh.Describe()
		case q := <-r.status:
			q <- r.sh.Status()
		}
		r.done.run()
	pass:
		for i := 0; i < shell.LoopPass; i++ {
			select {
			case e := <-r.frames:
				e.handle()
			default:
				break pass
			}
		}
		r.done.run()
		r.sh.Flush()
		r.progress.Store(r.sh.Round())
	}
}

func (r *Replica) stopHelpers() {
	r.workers.close()
	r.commit.close()
}

func (r *Replica) close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	close(r.quit)
	if r.httpServer != nil {
		// First, so nothing reads the store once it is closed; requests
		// waiting on the loop fail at once (quit is closed). A request
		// that outlives the grace period is cut off: that is no failure of
		// the replica's, so it is logged, not returned.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := r.httpServer.Close(ctx); err != nil {
			r.log.Warn("http listener did not stop cleanly", "err", err)
		}
		cancel()
	}
	errs := []error{r.front.Close(), r.peers.Close()}
	r.stopHelpers()
	if r.sh.Failed() == nil { // after a failure the store may refuse every call
		errs = append(errs, r.store.Sync())
	}
	errs = append(errs, r.store.Close())
	if r.byz != nil {
		// What the attack did, for whoever reads the log afterwards.
		r.log.Error("Byzantine replica stopped", "byzantine", r.byz.Kind(), "tampered", r.byz.Tampered())
	}
	r.log.Info("replica stopped", "round", r.sh.Round())
	return errors.Join(errs...)
}
