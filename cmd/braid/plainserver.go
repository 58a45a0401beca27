package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/braid-bft/braid/config"
	"github.com/braid-bft/braid/plain"
)

const plainServerUsage = `Usage: braid plain-server --config FILE

For benchmarks only: runs the non-replicated baseline server that
braid bench --plain measures, until SIGINT or SIGTERM. FILE is a cluster
file with n = 1 (braid bench --plain writes one). The server does for a
request what one replica must, minus replication and agreement: it takes
the client's signed request on replica 0's client_addr over the client
transport, batch-verifies the signature, executes it on the kv and bank
application, stages a ledger block in replica 0's data_dir and makes it
durable with one fsync per group of requests, then replies. There is no
fault tolerance: f = 0, and the client SDK accepts this one server's word.
It does not restore: the data directory must be empty.

Flags:
`

// runPlainServer is `braid plain-server --config FILE`, the process braid
// bench --plain starts (hidden from the command list: not for operators).
func runPlainServer(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("braid plain-server", plainServerUsage, stderr)
	cfgPath := fs.String("config", "", "cluster config file with n = 1")
	verbose := fs.Bool("v", false, "debug logging")
	if stop, err := parseFlagsOnly(fs, args, "braid plain-server"); stop {
		return err
	}
	if *cfgPath == "" {
		fmt.Fprintln(stderr, "braid plain-server: --config FILE is required")
		return exitCode(2)
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
	s, err := plain.New(cfg, plain.Options{Logger: logger})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return s.Run(ctx)
}
