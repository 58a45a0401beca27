package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/braid-bft/braid/client"
	"github.com/braid-bft/braid/config"
	"github.com/braid-bft/braid/gateway"
	"github.com/braid-bft/braid/httpapi"
)

// maxHTTPKeys bounds the pool a replica's HTTP API opens: each key is an
// SDK client with a connection to every replica.
const maxHTTPKeys = 1024

// replicaAPI is the kv and bank API a replica mounts on its HTTP listener
// (http_addr): docs/gateway.md's routes, over a gateway.Pool of the
// client keys glob names (--http-keys; by default the replica's
// http_client_keys). The pool is an SDK client of the whole cluster, this
// replica included, so an answer is what f+1 replicas agreed on, never
// this replica's word alone. Without keys the routes answer 501 saying how
// to configure them; under per-client kv scope the kv routes answer 501
// (a pool of keys would each see their own keyspace) and bank is served.
// pool is nil when there are no keys; the caller closes it.
type replicaAPI struct {
	routes []httpapi.Route
	pool   *gateway.Pool
}

func newReplicaAPI(cfg *config.Config, id int, glob string, log *slog.Logger) (*replicaAPI, error) {
	self, ok := cfg.Replica(id)
	if !ok {
		return nil, fmt.Errorf("replica: id %d is not in the cluster config (n=%d)", id, cfg.N)
	}
	explicit := glob != ""
	if self.HTTPAddr == "" {
		if explicit {
			return nil, fmt.Errorf("--http-keys: replica %d has no http_addr to serve the kv and bank API on", id)
		}
		return &replicaAPI{}, nil
	}
	if !explicit {
		glob = cfg.ReplicaHTTPClientKeys(id)
	}
	api := &replicaAPI{}
	mount := func(patterns []string, h http.Handler) {
		for _, p := range patterns {
			api.routes = append(api.routes, httpapi.Route{Pattern: p, Handler: h})
		}
	}
	if glob == "" {
		why := fmt.Sprintf("replica %d serves no kv or bank API: it has no client keys to submit through. "+
			"Set replicas[%d].http_client_keys in the configuration (braid init --http-clients K writes them), "+
			"or start it with braid replica --http-keys GLOB", id, id)
		mount(append(gateway.KVPatterns(), gateway.BankPatterns()...), gateway.ErrorHandler(http.StatusNotImplemented, why))
		return api, nil
	}
	what := fmt.Sprintf("replicas[%d].http_client_keys", id)
	if explicit {
		what = "--http-keys"
	}
	files, err := filepath.Glob(glob)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", what, glob, err)
	}
	switch {
	case len(files) == 0:
		return nil, fmt.Errorf("%s %q matches no file: copy this replica's HTTP client keys there, or remove the field to serve no kv/bank API", what, glob)
	case len(files) > maxHTTPKeys:
		return nil, fmt.Errorf("%s %q matches %d files; at most %d", what, glob, len(files), maxHTTPKeys)
	}
	keys, err := readPoolKeys(cfg, files)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	api.pool, err = gateway.NewPool(cfg, keys, client.Options{Logger: log})
	if err != nil {
		return nil, err
	}
	h := gateway.NewHTTP(api.pool, gateway.Options{Logger: log})
	mount(gateway.BankPatterns(), h)
	if cfg.KVScope == config.KVShared {
		mount(gateway.KVPatterns(), h)
	} else {
		mount(gateway.KVPatterns(), gateway.ErrorHandler(http.StatusNotImplemented, fmt.Sprintf(
			"the kv API needs the shared keyspace, and this cluster has kv_scope %q: each of the API's client keys would see its own keys, "+
				"so a value PUT through one would be missing for the next GET. Create the cluster with braid init --kv-scope shared, "+
				`or set "kv_scope": "shared" before the replicas first start (the scope is part of their state). The bank routes work either way`, cfg.KVScope)))
	}
	return api, nil
}

// warm connects the pool's clients in the background (gateway.Pool.Warm),
// so that the API's first calls do not each wait a retransmission timeout;
// the other replicas may still be starting, hence the generous bound.
func (a *replicaAPI) warm(ctx context.Context, log *slog.Logger) {
	if a.pool == nil {
		return
	}
	go func() {
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		n, err := a.pool.Warm(wctx)
		if err != nil && !errors.Is(ctx.Err(), context.Canceled) {
			log.Warn("http kv/bank API: not every client key is connected yet", "ready", n, "of", a.pool.Size(), "err", err)
			return
		}
		log.Info("http kv/bank API ready", "clients", n, "of", a.pool.Size(), "owner", a.pool.OwnerID())
	}()
}

// close ends the pool's requests in flight.
func (a *replicaAPI) close() {
	if a.pool != nil {
		a.pool.Close()
	}
}
