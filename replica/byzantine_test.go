package replica

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/braid-bft/braid/app/kv"
	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/byzantine"
	"github.com/braid-bft/braid/internal/testcluster"
	"github.com/braid-bft/braid/ledger"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/storage"
	"github.com/braid-bft/braid/transport"
)

// Issue 13, item 4: attacks on real processes. Four replicas over TCP on
// loopback, one of them running a Byzantine filter (package byzantine, the
// simulator's): the three correct ones must still execute every request
// with the right results, agree block for block, certify checkpoints, and
// the attack must really have run.

func TestByzantineEquivocatingPrimary(t *testing.T) {
	runByzantine(t, byzantine.Equivocate, 0) // view 0's primary of instance 0, client 0's instance
}

// Client 0's primary (instance 0's) ignores it: the backups' request
// timers must replace that primary.
func TestByzantineSilentPrimary(t *testing.T) {
	for i, in := range runByzantine(t, byzantine.Silent, 0) {
		if in[0][1] == 0 {
			t.Errorf("replica %d: instance 0's primary is still the silent replica 0 (view %d)", i, in[0][0])
		}
	}
}

func TestByzantineLyingCheckpoints(t *testing.T) {
	runByzantine(t, byzantine.LieCheckpoint, 3)
}

func TestByzantineDarkPrimary(t *testing.T) {
	runByzantine(t, byzantine.Dark, 0) // replicas 2 and 3 get none of instance 0's proposals
}

func TestByzantineFlood(t *testing.T) {
	runByzantine(t, byzantine.Flood, 3)
}

func TestByzantineReplay(t *testing.T) {
	runByzantine(t, byzantine.Replay, 3)
}

// New refuses a behaviour without the unsafe opt-in, before it opens
// anything.
func TestNewRefusesByzantineWithoutOptIn(t *testing.T) {
	cfg, _ := testcluster.Config(t, 4, false)
	_, err := New(cfg, 1, Options{Logger: testcluster.Logger(), Store: testcluster.MemStore(t), Byzantine: byzantine.Equivocate})
	if !errors.Is(err, byzantine.ErrNotOptedIn) {
		t.Fatalf("New with Byzantine and no UnsafeByzantine: err %v; want ErrNotOptedIn", err)
	}
	_, err = New(cfg, 1, Options{Logger: testcluster.Logger(), Store: testcluster.MemStore(t), Byzantine: "bogus", UnsafeByzantine: true})
	if err == nil {
		t.Fatal("New accepted the Byzantine behaviour \"bogus\"")
	}
}

// runByzantine runs the cluster with replica byz running kind, and returns
// each correct replica's (view, primary) per instance at the end.
func runByzantine(t *testing.T, kind byzantine.Kind, byz int) map[int][][2]uint64 {
	const n, puts = 4, 12
	cfg, ckey := testcluster.Config(t, n, true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reps := make([]*Replica, n)
	var wg sync.WaitGroup
	var byzLog bytes.Buffer // written by the replica's goroutines, read once they stopped
	for i := 0; i < n; i++ {
		opts := Options{Logger: testcluster.Logger()}
		if i == byz {
			opts.Byzantine, opts.UnsafeByzantine = kind, true
			opts.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(&byzLog, testcluster.LogSink), nil))
		}
		r, err := New(cfg, i, opts)
		if err != nil {
			t.Fatal(err)
		}
		reps[i] = r
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.Run(ctx); err != nil {
				t.Errorf("replica %d: %v", i, err)
			}
		}()
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			wg.Wait()
		}
	}
	defer stop()
	logStates := func() {
		for i, r := range reps {
			dctx, dcancel := context.WithTimeout(ctx, time.Second)
			t.Logf("replica %d: %s", i, r.Describe(dctx))
			dcancel()
		}
	}
	replies := make(chan *msg.Reply, 1024)
	var conns []*transport.Client
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		pub, _ := auth.ParsePublicKey(cfg.Replicas[i].PublicKey)
		var c *transport.Client
		var err error
		for try := 0; try < 200; try++ {
			dctx, dcancel := context.WithTimeout(ctx, time.Second)
			c, err = transport.Dial(dctx, cfg.Replicas[i].ClientAddr, ed25519.PublicKey(pub), ed25519.PrivateKey(ckey), 1<<20)
			dcancel()
			if err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond) // the replica may not be listening yet: a retry loop, not synchronisation
		}
		if err != nil {
			t.Fatalf("dial replica %d: %v", i, err)
		}
		conns = append(conns, c)
		go func() {
			for {
				p, err := c.Recv(ctx)
				if err != nil {
					return
				}
				if rep, ok := msg.UnmarshalAs[*msg.Reply](p); ok && rep.From == msg.ReplicaID(i) {
					replies <- rep
				}
			}
		}()
	}
	// submit sends a request to every replica and returns the result f+1
	// of them agree on (f+1 = 2 with n = 4: at least one is correct).
	submit := func(num uint64, op []byte) []byte {
		req := msg.Request{Client: 0, Number: num, Op: op}
		req.Sig = auth.ClientSigner(ckey).Sign(req.SignedBytes())
		frame := msg.Marshal(&msg.ClientRequest{Request: req})
		for _, c := range conns {
			_ = c.Send(frame)
		}
		votes := map[string]map[msg.ReplicaID]bool{}
		timeout := time.After(30 * time.Second)
		for {
			select {
			case rep := <-replies:
				if rep.Number != num {
					continue
				}
				k := string(rep.Result)
				if votes[k] == nil {
					votes[k] = map[msg.ReplicaID]bool{}
				}
				votes[k][rep.From] = true
				if len(votes[k]) >= 2 {
					return rep.Result
				}
			case <-timeout:
				logStates()
				t.Fatalf("--byzantine %s on replica %d: request %d has no f+1 matching replies: %v", kind, byz, num, votes)
			}
		}
	}
	start := time.Now()
	for i := 1; i <= puts; i++ {
		submit(uint64(i), kv.Put(fmt.Appendf(nil, "k%d", i%5), fmt.Appendf(nil, "v%d", i)))
	}
	v, found, err := kv.DecodeGet(submit(puts+1, kv.Get([]byte("k3"))))
	if err != nil || !found || string(v) != "v8" {
		t.Fatalf("get k3 = %q, %v, %v; want v8 (the last of k3's puts)", v, found, err)
	}
	t.Logf("--byzantine %s on replica %d: %d requests in %v", kind, byz, puts+1, time.Since(start).Round(time.Millisecond))
	// At least one correct replica has executed every request (f+1 agreed
	// on the last); all of them must, and certify the checkpoint above it
	// (idle primaries pad to one): wait, bounded, for that.
	correct := slices.DeleteFunc([]int{0, 1, 2, 3}, func(i int) bool { return i == byz })
	k := uint64(cfg.CheckpointInterval)
	var target uint64
	for _, i := range correct {
		target = max(target, reps[i].Round())
	}
	target = (target + k - 1) / k * k
	var stable []uint64
	views := map[int][][2]uint64{} // per correct replica, each instance's view and primary
	for deadline := time.Now().Add(30 * time.Second); ; {
		stable = stable[:0]
		for _, i := range correct {
			sctx, scancel := context.WithTimeout(ctx, time.Second)
			snap, err := reps[i].Snapshot(sctx)
			scancel()
			if err != nil {
				t.Fatalf("replica %d: %v", i, err)
			}
			stable = append(stable, snap.Shell.StableCheckpoint)
			views[i] = nil
			for _, in := range snap.Shell.Instances {
				views[i] = append(views[i], [2]uint64{in.View, uint64(in.Primary)})
			}
		}
		if slices.Min(stable) >= target {
			break
		}
		if time.Now().After(deadline) {
			logStates()
			t.Fatalf("correct replicas' stable checkpoints %v: not all certified round %d", stable, target)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline, not ordering events
	}
	tampered := reps[byz].byz.Tampered()
	stop()
	if tampered == 0 {
		t.Fatalf("--byzantine %s: the filter never altered, withheld, added or dropped a frame: the attack did not run", kind)
	}
	t.Logf("--byzantine %s: %d frames tampered with; correct replicas' stable checkpoints %v; (view, primary) per instance %v", kind, tampered, stable, views)
	if want := "level=ERROR msg=\"" + byzantine.Warning(kind); !strings.Contains(byzLog.String(), want) {
		t.Errorf("the Byzantine replica's log lacks its warning %q at ERROR level:\n%s", want, byzLog.String())
	}
	// The correct replicas' ledgers verify with the public keys alone and
	// agree block for block up to the shortest.
	pubs, _ := cfg.ReplicaPublicKeys()
	ring := auth.Keyring{Replicas: map[msg.ReplicaID]auth.PublicKey{}, Clients: map[msg.ClientID]auth.PublicKey{}}
	for i, k := range pubs {
		ring.Replicas[msg.ReplicaID(i)] = k
	}
	cpub, _ := auth.ParsePublicKey(cfg.Clients.Keys[0].PublicKey)
	ring.Clients[0] = cpub
	hashes := map[int][]msg.Digest{}
	var executed []int
	for _, i := range correct {
		st, err := storage.Open(cfg.ReplicaDataDir(i), storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := ledger.Verify(st, ring, n, ledger.VerifyOptions{})
		requests := 0
		for h := uint64(1); err == nil && h <= rep.Height; h++ {
			var b *ledger.Block
			if b, err = st.Block(h); err == nil {
				hashes[i] = append(hashes[i], b.Hash())
				requests += len(b.Requests)
			}
		}
		st.Close()
		if err != nil {
			t.Fatalf("replica %d ledger: %v", i, err)
		}
		executed = append(executed, requests)
	}
	lo := len(hashes[correct[0]])
	for _, i := range correct {
		lo = min(lo, len(hashes[i]))
	}
	for _, i := range correct {
		if !slices.Equal(hashes[i][:lo], hashes[correct[0]][:lo]) {
			t.Fatalf("replica %d's ledger differs from replica %d's within the first %d blocks", i, correct[0], lo)
		}
	}
	for k, i := range correct {
		if executed[k] != puts+1 {
			t.Fatalf("replica %d's ledger holds %d requests; want each of the %d once", i, executed[k], puts+1)
		}
	}
	t.Logf("correct replicas %v agree on %d blocks; requests in their ledgers %v", correct, lo, executed)
	return views
}
