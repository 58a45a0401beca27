package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/client"
	"github.com/braid-bft/braid/config"
	"github.com/braid-bft/braid/gateway"
	"github.com/braid-bft/braid/msg"
)

const gatewayUsage = `Usage: braid gateway --config FILE [--listen 127.0.0.1:6380] [--http ADDR] [--keys GLOB] [flags]

Serves the Redis protocol (RESP2) on --listen and, with --http, the kv and
bank HTTP/JSON API, for a running cluster. Every command becomes a BFT
request answered once f+1 replicas agree. The gateway submits through a
pool of admitted client keys, one request in flight per key: by default
every keys/client-J.key next to the configuration except client-0.key
(the braid kv/bank commands' default key; two processes must not share a
key). The cluster must use the shared kv keyspace (braid init --kv-scope
shared). Commands, routes and the design: docs/gateway.md.

Example:
  braid init --dir c --kv-scope shared --clients 65 && braid local --dir c
  braid gateway --config c/cluster.json --listen 127.0.0.1:6380 --http 127.0.0.1:8080
  redis-cli -p 6380 set greeting hello

Flags:
`

// runGateway implements `braid gateway`.
func runGateway(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("braid gateway", gatewayUsage, stderr)
	cfgPath := fs.String("config", "", "cluster configuration file (required)")
	listen := fs.String("listen", "127.0.0.1:6380", "address for the Redis protocol (RESP2)")
	httpAddr := fs.String("http", "", "address for the HTTP/JSON kv and bank API (default: none)")
	keys := fs.String("keys", "", "glob of client private key files for the pool (default DIR/keys/client-*.key without client-0.key, DIR the configuration's directory)")
	timeout := fs.Duration("timeout", gateway.DefaultTimeout, "give up on one cluster request (waiting for a free client included) after this long")
	retransmit := fs.Duration("retransmit", client.DefaultTimeout, "re-send a request to every replica after this long without a result")
	broadcast := fs.Bool("broadcast", false, "send every request to all replicas at once instead of to the instance's primary first")
	maxConns := fs.Int("max-conns", gateway.DefaultMaxConns, "most open connections, for RESP and (separately) for HTTP")
	idle := fs.Duration("idle-timeout", gateway.DefaultIdleTimeout, "close a connection that sends nothing for this long")
	if stop, err := parseFlagsOnly(fs, args, "braid gateway"); stop {
		return err
	}
	switch {
	case *cfgPath == "":
		return errors.New("--config is required: the cluster configuration file (DIR/cluster.json from braid init)")
	case *timeout <= 0 || *retransmit <= 0 || *idle <= 0:
		return errors.New("--timeout, --retransmit and --idle-timeout must be positive")
	case *maxConns < 1:
		return fmt.Errorf("--max-conns %d: must be at least 1", *maxConns)
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	if cfg.KVScope != config.KVShared {
		return fmt.Errorf("%s has kv_scope %q: every gateway key would have its own keyspace, so a value SET through one request "+
			"would be missing for the next. The gateway needs the shared keyspace: create the cluster with braid init --kv-scope shared, "+
			`or set "kv_scope": "shared" in %s before the replicas first start (the scope is part of their state)`, *cfgPath, cfg.KVScope, *cfgPath)
	}
	poolKeys, err := gatewayKeys(cfg, *keys)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	pool, err := gateway.NewPool(cfg, poolKeys, client.Options{Timeout: *retransmit, Broadcast: *broadcast, Logger: log})
	if err != nil {
		return err
	}
	defer pool.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := gateway.Options{Timeout: *timeout, MaxConns: *maxConns, IdleTimeout: *idle, Logger: log}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	var hs *http.Server
	var hln net.Listener
	if *httpAddr != "" {
		if hln, err = net.Listen("tcp", *httpAddr); err != nil {
			ln.Close()
			return fmt.Errorf("--http: %w", err)
		}
		// At most --max-conns connections, each with a read deadline (a
		// body is at most 256 KiB), a write deadline past the call's
		// --timeout, and --idle-timeout between requests.
		hln = gateway.LimitListener(hln, *maxConns)
		hs = &http.Server{
			Handler:           gateway.NewHTTP(pool, opts),
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      *timeout + 30*time.Second,
			IdleTimeout:       *idle,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
	}
	fmt.Fprintf(stdout, "braid gateway: RESP on %s", ln.Addr())
	if hs != nil {
		fmt.Fprintf(stdout, ", HTTP on %s", hln.Addr())
	}
	ids := pool.IDs()
	fmt.Fprintf(stdout, "; %d client keys (ids %d…%d; bank accounts owned by id %d), n=%d m=%d\n",
		pool.Size(), ids[0], ids[len(ids)-1], pool.OwnerID(), cfg.N, cfg.M)
	if pool.Size() < 8 {
		fmt.Fprintf(stdout, "note: at most %d requests in flight at once; braid init --clients N admits more keys\n", pool.Size())
	}

	// Warm every client in the background (see gateway.Pool.Warm), so the
	// first commands do not each wait a retransmission timeout.
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		start := time.Now()
		n, err := pool.Warm(wctx)
		if err != nil && ctx.Err() == nil {
			log.Warn("not every client key is connected yet", "ready", n, "of", pool.Size(), "err", err)
			return
		}
		log.Info("client keys connected", "ready", n, "of", pool.Size(), "in", time.Since(start).Round(time.Millisecond))
	}()
	errc := make(chan error, 2)
	running := 1
	go func() { errc <- gateway.NewServer(pool, opts).Serve(ctx, ln) }()
	if hs != nil {
		running++
		go func() {
			if err := hs.Serve(hln); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("http: %w", err)
				return
			}
			errc <- nil
		}()
	}
	var first error
	select {
	case first = <-errc: // a server failed: stop the other too
		running--
	case <-ctx.Done():
	}
	stop()
	fmt.Fprintln(stdout, "braid gateway: stopping")
	if hs != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = hs.Shutdown(sctx)
		cancel()
	}
	pool.Close() // ends requests still in flight
	for ; running > 0; running-- {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// gatewayKeys loads the pool's keys: the files glob names, or by default
// every keys/client-J.key beside the configuration but client-0.key. Each
// must be a key the configuration admits.
func gatewayKeys(cfg *config.Config, glob string) ([]gateway.Key, error) {
	explicit := glob != ""
	if !explicit {
		glob = filepath.Join(cfg.Dir(), "keys", "client-*.key")
	}
	files, err := filepath.Glob(glob)
	if err != nil {
		return nil, fmt.Errorf("--keys %q: %w", glob, err)
	}
	if !explicit {
		files = slices.DeleteFunc(files, func(f string) bool { return filepath.Base(f) == "client-0.key" })
	}
	if len(files) == 0 {
		if explicit {
			return nil, fmt.Errorf("--keys %q matches no file", glob)
		}
		return nil, fmt.Errorf("no client keys for the gateway in %s (it uses every client-J.key but client-0.key, which the braid kv and bank commands use): "+
			"create the cluster with braid init --clients N (N ≥ 2; e.g. 65 for 64 requests in flight), or name key files with --keys", filepath.Dir(glob))
	}
	return readPoolKeys(cfg, files)
}

// readPoolKeys reads a pool's private key files, each of which must be a
// client the configuration admits, no two the same client. The one home
// of these rules for the gateway (--keys) and a replica's HTTP API
// (http_client_keys, --http-keys).
func readPoolKeys(cfg *config.Config, files []string) ([]gateway.Key, error) {
	var out []gateway.Key
	seen := map[msg.ClientID]string{}
	for _, f := range files {
		key, err := auth.ReadPrivateKeyFile(f)
		if err != nil {
			return nil, err
		}
		id, err := client.FindClientID(cfg, key.Public())
		if err != nil {
			return nil, fmt.Errorf("key file %s: %w", f, err)
		}
		if prev, dup := seen[id]; dup {
			return nil, fmt.Errorf("key files %s and %s are the same client (id %d)", prev, f, id)
		}
		seen[id] = f
		out = append(out, gateway.Key{ID: id, Private: key})
	}
	return out, nil // NewPool sorts them by id
}
