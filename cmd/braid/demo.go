package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/braid-bft/braid/app/bank"
	"github.com/braid-bft/braid/app/kv"
	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/client"
	"github.com/braid-bft/braid/config"
	"github.com/braid-bft/braid/internal/loopback"
	"github.com/braid-bft/braid/ledger"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/storage"
)

// runDemo is `braid demo`: a 4-replica cluster as separate processes on
// loopback, a mixed kv + bank workload through the client SDK with a live progress line,
// a crash of one instance's primary midway (kill -9) and its restart, then
// an offline verification of every replica's ledger.
func runDemo(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("braid demo", "", stderr)
	phase := fs.Duration("phase", 8*time.Second, "length of each phase (normal, primary down, restarted)")
	keep := fs.Bool("keep", false, "keep the temporary cluster directory")
	if stop, err := parseFlags(fs, args); stop {
		return err
	}
	const n, m = 4, 3 // m = n−f: a crashed primary is replaced (Figure 4)
	dir, err := os.MkdirTemp("", "braid-demo-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	base, err := loopback.FreeBase(3 * n)
	if err != nil {
		return err
	}
	// The demo's workload is its six clients; no HTTP API keys, whose
	// warming traffic would blur what the progress line shows.
	if err := runInit([]string{"--n", strconv.Itoa(n), "--m", strconv.Itoa(m), "--dir", dir, "--base-port", strconv.Itoa(base), "--clients", "6", "--http-clients", "0"}, io.Discard, stderr); err != nil {
		return err
	}
	cfgPath := filepath.Join(dir, "cluster.json")
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	cl, err := newCluster(cfgPath, n)
	if err != nil {
		return err
	}
	defer cl.stop()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(stdout, "braid demo: %d replicas, %d parallel instances (policy %s) in %s\n", n, m, cfg.FailurePolicy, dir)
	for i := 0; i < n; i++ {
		if err := cl.start(i); err != nil {
			return err
		}
	}

	// One client per instance pair: client c is served by instance c mod m.
	clients := make([]*client.Client, len(cfg.Clients.Keys))
	for i, ck := range cfg.Clients.Keys {
		key, err := auth.ReadPrivateKeyFile(filepath.Join(dir, "keys", fmt.Sprintf("client-%d.key", ck.ID)))
		if err != nil {
			return err
		}
		c, err := client.New(cfg, msg.ClientID(ck.ID), key, client.Options{Timeout: time.Second, Broadcast: true})
		if err != nil {
			return err
		}
		defer c.Close()
		clients[i] = c
	}
	// Wait for the replicas to listen and agree on a first request.
	up := time.Now().Add(30 * time.Second)
	for {
		warm, cancelWarm := context.WithTimeout(ctx, 5*time.Second)
		_, err = clients[0].Submit(warm, kv.Put([]byte("demo"), []byte("hello")))
		cancelWarm()
		if err == nil {
			break
		}
		if time.Now().After(up) || ctx.Err() != nil {
			return fmt.Errorf("cluster did not come up: %w (logs in %s)", err, cl.logDir)
		}
		time.Sleep(200 * time.Millisecond)
	}

	var mu sync.Mutex
	type ackKey struct {
		client int
		key    string
	}
	acked := map[ackKey]string{} // (client, key) → last value a put was acknowledged with (kv keys are per client by default)
	perInstance := make([]int, m)
	var lat []time.Duration
	var total, failed int
	work, stopWork := context.WithCancel(ctx)
	defer stopWork()
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inst := int(msg.HomeInstance(msg.ClientID(cfg.Clients.Keys[i].ID), m))
			// Each client owns a bank account (only its opener may move
			// money out of it) and pays its neighbour now and then.
			acct, next := fmt.Sprintf("acct-%d", i), fmt.Sprintf("acct-%d", (i+1)%len(clients))
			for _, op := range [][]byte{bank.Open(acct), bank.Deposit(acct, 1000)} {
				octx, cancel := context.WithTimeout(work, 15*time.Second)
				_, _ = c.Submit(octx, op)
				cancel()
			}
			for k := 0; work.Err() == nil; k++ {
				key := []byte(fmt.Sprintf("client%d/key%d", i, k%8))
				op := kv.Put(key, []byte(strconv.Itoa(k)))
				isPut := k%4 < 2
				switch k % 4 {
				case 2:
					op = kv.Get(key)
				case 3:
					op = bank.Transfer(acct, next, 0, 1) // the paper's transfer(A, B, n, m)
				}
				start := time.Now()
				rctx, cancel := context.WithTimeout(work, 15*time.Second)
				_, err := c.Submit(rctx, op)
				cancel()
				mu.Lock()
				if err == nil {
					if isPut {
						acked[ackKey{i, string(key)}] = strconv.Itoa(k)
					}
					perInstance[inst]++
					total++
					lat = append(lat, time.Since(start))
				} else if work.Err() == nil {
					failed++
				}
				mu.Unlock()
			}
		}()
	}
	progress := func(label string, d time.Duration) {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		end := time.Now().Add(d)
		prev := make([]int, m)
		for time.Now().Before(end) && ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
			mu.Lock()
			rates := make([]int, m)
			for i := range rates {
				rates[i] = perInstance[i] - prev[i]
			}
			copy(prev, perInstance)
			p50, p99 := percentile(lat, 50), percentile(lat, 99)
			lat = lat[:0]
			mu.Unlock()
			fmt.Fprintf(stdout, "\r%-22s req/s per instance %v   p50 %6.1f ms   p99 %6.1f ms   done %d   ", label, rates, ms(p50), ms(p99), total)
		}
		fmt.Fprintln(stdout)
	}
	victim := int(msg.PrimaryOf(n, 0, 0))
	progress("all replicas up", *phase)
	fmt.Fprintf(stdout, "kill -9 replica %d (primary of instance 0)\n", victim)
	cl.kill(victim)
	progress(fmt.Sprintf("replica %d down", victim), *phase)
	fmt.Fprintf(stdout, "restart replica %d from its data directory\n", victim)
	if err := cl.start(victim); err != nil {
		return err
	}
	progress(fmt.Sprintf("replica %d restarted", victim), *phase)
	stopWork()
	wg.Wait()
	// Every acknowledged write must be readable, through the replicas that
	// are up now (one of which crashed and recovered).
	readBad := 0
	for ak, want := range acked {
		key := ak.key
		rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		res, err := clients[ak.client].Submit(rctx, kv.Get([]byte(key)))
		cancel()
		v, found, derr := kv.DecodeGet(res)
		// A put cut off when the workload stopped may still have executed
		// after the acknowledged one: a later value of the same client's
		// counter is fine, an older or missing one is not.
		got, _ := strconv.Atoi(string(v))
		wantN, _ := strconv.Atoi(want)
		if err != nil || derr != nil || !found || got < wantN {
			readBad++
			fmt.Fprintf(stdout, "acknowledged write %s=%s not read back: got %q found=%v err=%v %v\n", key, want, v, found, err, derr)
		}
	}
	fmt.Fprintf(stdout, "read back %d acknowledged writes: %d wrong\n", len(acked), readBad)
	// Let the idle cluster finish the rounds in flight before stopping it,
	// so every replica stops at the same height.
	select {
	case <-ctx.Done():
	case <-time.After(2 * time.Second):
	}
	cl.stop()
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted")
	}

	fmt.Fprintf(stdout, "\nworkload: %d operations acknowledged by f+1 replicas, %d attempts gave up\n", total, failed)
	ok := true
	ring, err := cfg.Keyring()
	if err != nil {
		return err
	}
	var heights []uint64
	var stores []*storage.Store
	defer func() {
		for _, st := range stores {
			st.Close()
		}
	}()
	for i := 0; i < n; i++ {
		st, err := storage.Open(cfg.ReplicaDataDir(i), storage.Options{})
		if err != nil {
			return err
		}
		stores = append(stores, st)
		rep, err := ledger.Verify(st, ring, n, ledger.VerifyOptions{})
		if err != nil {
			ok = false
			fmt.Fprintf(stdout, "replica %d: ledger FAILED: %v\n", i, err)
			continue
		}
		heights = append(heights, rep.Height)
		fmt.Fprintf(stdout, "replica %d: ledger verified: height %d, head %x…, %d certificates\n", i, rep.Height, rep.Head[:8], rep.Certificates)
	}
	if len(heights) == n {
		// Ledgers must agree wherever they overlap.
		common := slices.Min(heights)
		var ref msg.Digest
		for i, st := range stores {
			b, err := st.Block(common)
			if common == 0 {
				break
			}
			if err != nil {
				ok = false
				continue
			}
			if i == 0 {
				ref = b.Hash()
			} else if b.Hash() != ref {
				ok = false
				fmt.Fprintf(stdout, "replica %d disagrees with replica 0 at height %d\n", i, common)
			}
		}
		if slices.Min(heights) < slices.Max(heights) {
			fmt.Fprintf(stdout, "note: replicas stopped at heights %v; they agree up to %d\n", heights, common)
		}
	}
	if !ok || readBad > 0 {
		return exitCode(1)
	}
	fmt.Fprintln(stdout, "demo finished: every replica's ledger verifies with only the public keys")
	return nil
}

// kill stops replica id abruptly (SIGKILL), as a crash would.
func (c *cluster) kill(id int) {
	if p := c.procs[id]; p != nil && p.Process != nil {
		_ = p.Process.Kill()
		c.procs[id] = nil
	}
}

func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
