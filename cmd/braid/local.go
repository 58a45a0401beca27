package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/braid-bft/braid/config"
)

// cluster supervises replica processes (this same binary, `braid replica`).
type cluster struct {
	bin     string
	cfgPath string
	logDir  string
	procs   []*exec.Cmd
	plain   bool // run `braid plain-server` (braid bench --plain) instead of replicas

	mu    sync.Mutex
	exits map[int]error // replicas whose process ended, with how
}

// exited lists the replicas whose process has ended, with how it ended.
func (c *cluster) exited() map[int]error {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[int]error, len(c.exits))
	for id, err := range c.exits {
		out[id] = err
	}
	return out
}

func newCluster(cfgPath string, n int) (*cluster, error) {
	bin, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("cannot find this binary to start replicas: %w", err)
	}
	logDir := filepath.Join(filepath.Dir(cfgPath), "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	return &cluster{bin: bin, cfgPath: cfgPath, logDir: logDir, procs: make([]*exec.Cmd, n)}, nil
}

func (c *cluster) logFile(id int) string {
	return filepath.Join(c.logDir, fmt.Sprintf("replica-%d.log", id))
}

// start launches replica id as a separate process, logging to its file.
func (c *cluster) start(id int) error {
	f, err := os.OpenFile(c.logFile(id), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	args := []string{"replica", "--config", c.cfgPath, "--id", strconv.Itoa(id)}
	if c.plain {
		args = []string{"plain-server", "--config", c.cfgPath}
	}
	cmd := exec.Command(c.bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Ctrl-C reaches us, we stop them
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start replica %d: %w", id, err)
	}
	c.procs[id] = cmd
	go func() {
		err := cmd.Wait()
		f.Close()
		if err == nil {
			err = errors.New("exit status 0")
		}
		c.mu.Lock()
		if c.exits == nil {
			c.exits = map[int]error{}
		}
		c.exits[id] = err
		c.mu.Unlock()
	}()
	return nil
}

// stop asks every replica to shut down gracefully, then kills stragglers.
func (c *cluster) stop() {
	for _, p := range c.procs {
		if p != nil && p.Process != nil {
			_ = p.Process.Signal(syscall.SIGTERM)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for i, p := range c.procs {
		if p == nil || p.Process == nil {
			continue
		}
		for time.Now().Before(deadline) && p.ProcessState == nil {
			if err := p.Process.Signal(syscall.Signal(0)); err != nil {
				break // gone
			}
			time.Sleep(50 * time.Millisecond)
		}
		_ = p.Process.Kill()
		c.procs[i] = nil
	}
}

// runLocal is `braid local --n N [--dir DIR]`: a persistent development
// cluster of N replica processes on loopback, until Ctrl-C.
func runLocal(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("braid local", "", stderr)
	n := fs.Int("n", 4, "replicas")
	m := fs.Int("m", 0, "parallel instances (default n − f)")
	dir := fs.String("dir", "braid-local", "cluster directory (created by braid init if missing; reused otherwise, with its data)")
	basePort := fs.Int("base-port", config.DefaultBasePort, "first port")
	if stop, err := parseFlags(fs, args); stop {
		return err
	}
	cfgPath := filepath.Join(*dir, "cluster.json")
	if _, err := os.Stat(cfgPath); errors.Is(err, os.ErrNotExist) {
		initArgs := []string{"--n", strconv.Itoa(*n), "--dir", *dir, "--base-port", strconv.Itoa(*basePort)}
		if *m > 0 {
			initArgs = append(initArgs, "--m", strconv.Itoa(*m))
		}
		if err := runInit(initArgs, io.Discard, stderr); err != nil {
			return err
		}
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	cl, err := newCluster(cfgPath, cfg.N)
	if err != nil {
		return err
	}
	for i := 0; i < cfg.N; i++ {
		if err := cl.start(i); err != nil {
			cl.stop()
			return err
		}
	}
	fmt.Fprintf(stdout, "braid local: %d replicas (m=%d, %s) running\n", cfg.N, cfg.M, cfg.FailurePolicy)
	for _, r := range cfg.Replicas {
		http := ""
		if r.HTTPAddr != "" {
			http = "  http " + r.HTTPAddr
		}
		fmt.Fprintf(stdout, "  replica %d  peers %s  clients %s%s  data %s  log %s\n", r.ID, r.Addr, r.ClientAddr, http, cfg.ReplicaDataDir(r.ID), cl.logFile(r.ID))
	}
	fmt.Fprintf(stdout, "config: %s\ntry:    braid kv put --config %s greeting hello && braid kv get --config %s greeting\n        braid status --config %s\nCtrl-C stops the cluster (data is kept).\n", cfgPath, cfgPath, cfgPath, cfgPath)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	fmt.Fprintln(stdout, "stopping replicas…")
	cl.stop()
	return nil
}
