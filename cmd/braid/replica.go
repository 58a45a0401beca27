package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"syscall"

	"github.com/braid-bft/braid/config"
	"github.com/braid-bft/braid/replica"
)

// runReplica is `braid replica --config FILE --id I`: one replica process,
// stopped gracefully by SIGINT or SIGTERM.
func runReplica(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("braid replica", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "cluster config file (from braid init)")
	id := fs.Int("id", -1, "this replica's id, 0 ≤ id < n")
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
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if *cpuProfile == "" && os.Getenv("BRAID_CPUPROFILE_DIR") != "" {
		*cpuProfile = filepath.Join(os.Getenv("BRAID_CPUPROFILE_DIR"), fmt.Sprintf("replica-%d.pprof", *id))
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if *traceFile == "" && os.Getenv("BRAID_TRACE_DIR") != "" {
		*traceFile = filepath.Join(os.Getenv("BRAID_TRACE_DIR"), fmt.Sprintf("replica-%d.trace", *id))
	}
	if *traceFile != "" {
		f, err := os.Create(*traceFile)
		if err != nil {
			return fmt.Errorf("--trace: %w", err)
		}
		defer f.Close()
		if err := trace.Start(f); err != nil {
			return fmt.Errorf("--trace: %w", err)
		}
		defer trace.Stop()
	}
	r, err := replica.New(cfg, *id, replica.Options{Logger: logger})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return r.Run(ctx)
}
