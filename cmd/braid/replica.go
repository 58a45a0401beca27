package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"syscall"

	"github.com/braid-bft/braid/byzantine"
	"github.com/braid-bft/braid/config"
	"github.com/braid-bft/braid/replica"
)

const replicaUsage = `Usage: braid replica --config FILE --id I [--http-keys GLOB] [flags]

Runs replica I of the cluster FILE describes until SIGINT or SIGTERM. Its
key is the replica's key_file, its state the data_dir. With an http_addr
it serves metrics, /v1/status, /v1/blocks and the dashboard there, and
the kv and bank HTTP API (docs/gateway.md) through the client keys of its
http_client_keys (or --http-keys): every call a BFT request to the whole
cluster, answered once f+1 replicas agree. Operations: docs/operations.md.

TEST ONLY: --byzantine KIND makes the replica deliberately faulty, to run
attacks against real processes (docs/operations.md, "Byzantine replicas
for tests"). KIND is one of equivocate, silent, dark, flood, replay,
lie-checkpoint (also throttle, forge, garbage). It is refused unless
--unsafe-byzantine is given or BRAID_UNSAFE_BYZANTINE=1 is set, and the
replica says in its log, at startup and every 10 s, that it is Byzantine.
Never use it in a real cluster.

Flags:
`

// runReplica is `braid replica --config FILE --id I`: one replica process,
// stopped gracefully by SIGINT or SIGTERM.
func runReplica(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("braid replica", replicaUsage, stderr)
	cfgPath := fs.String("config", "", "cluster config file (from braid init)")
	id := fs.Int("id", -1, "this replica's id, 0 ≤ id < n")
	httpKeys := fs.String("http-keys", "", "glob of admitted client key files the kv/bank HTTP API on http_addr submits through (default: the replica's http_client_keys in the config)")
	byz := fs.String("byzantine", "", "TEST ONLY: run a deliberately faulty replica: "+byzantine.Names()+" (needs --unsafe-byzantine or "+byzantine.UnsafeEnv+"=1)")
	unsafeByz := fs.Bool("unsafe-byzantine", false, "TEST ONLY: allow --byzantine")
	verbose := fs.Bool("v", false, "debug logging")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file (go tool pprof); also $BRAID_CPUPROFILE_DIR/replica-<id>.pprof")
	traceFile := fs.String("trace", "", "write an execution trace of the whole run to this file (go tool trace: where the loop waits); also $BRAID_TRACE_DIR/replica-<id>.trace")
	if stop, err := parseFlags(fs, args); stop {
		return err
	}
	if *cfgPath == "" || *id < 0 {
		fmt.Fprintln(stderr, "braid replica: --config FILE and --id I are required")
		return exitCode(2)
	}
	var kind byzantine.Kind
	if *byz != "" {
		k, err := byzantine.Parse(*byz)
		if err != nil {
			fmt.Fprintf(stderr, "braid replica: --byzantine: %v\n", err)
			return exitCode(2)
		}
		if err := byzantine.OptIn(k, *unsafeByz, os.Getenv(byzantine.UnsafeEnv)); err != nil {
			fmt.Fprintf(stderr, "braid replica: %v\n", err)
			return exitCode(2)
		}
		kind = k
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	stopProfile, err := record("--cpuprofile", *cpuProfile, "BRAID_CPUPROFILE_DIR", fmt.Sprintf("replica-%d.pprof", *id), pprof.StartCPUProfile, pprof.StopCPUProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	stopTrace, err := record("--trace", *traceFile, "BRAID_TRACE_DIR", fmt.Sprintf("replica-%d.trace", *id), trace.Start, trace.Stop)
	if err != nil {
		return err
	}
	defer stopTrace()
	api, err := newReplicaAPI(cfg, *id, *httpKeys, logger.With("replica", *id))
	if err != nil {
		return err
	}
	defer api.close()
	r, err := replica.New(cfg, *id, replica.Options{Logger: logger, HTTPRoutes: api.routes, Byzantine: kind, UnsafeByzantine: *unsafeByz || os.Getenv(byzantine.UnsafeEnv) == "1"})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	api.warm(ctx, logger.With("replica", *id))
	return r.Run(ctx)
}

// record starts a whole-run recording (a CPU profile, an execution trace)
// into path, or into name inside $envDir when path is empty; neither set
// records nothing. The returned stop ends it and closes the file.
func record(flagName, path, envDir, name string, start func(io.Writer) error, stop func()) (func(), error) {
	if dir := os.Getenv(envDir); path == "" && dir != "" {
		// The directory is named for a whole cluster's profiles: make it,
		// rather than have every replica fail to start for want of it.
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("$%s: %w", envDir, err)
		}
		path = filepath.Join(dir, name)
	}
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flagName, err)
	}
	if err := start(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", flagName, err)
	}
	return func() { stop(); f.Close() }, nil
}
