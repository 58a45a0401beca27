package replica

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/braid-bft/braid/app/kv"
	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/config"
	"github.com/braid-bft/braid/ledger"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/storage"
	"github.com/braid-bft/braid/transport"
)

func freePorts(t *testing.T, k int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for i := 0; i < k; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// cluster writes a 4-replica config with fresh keys into a temp dir.
func cluster(t *testing.T, n int) (*config.Config, auth.PrivateKey) {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Default(n, 0) // the product default, m = n − f
	ports := freePorts(t, 2*n)
	for i := range cfg.Replicas {
		pub, priv, err := auth.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keyFile := filepath.Join(dir, fmt.Sprintf("replica-%d.key", i))
		if err := auth.WritePrivateKeyFile(keyFile, priv); err != nil {
			t.Fatal(err)
		}
		cfg.Replicas[i].PublicKey = auth.MarshalPublicKey(pub)
		cfg.Replicas[i].KeyFile = keyFile
		cfg.Replicas[i].Addr = fmt.Sprintf("127.0.0.1:%d", ports[i])
		cfg.Replicas[i].ClientAddr = fmt.Sprintf("127.0.0.1:%d", ports[n+i])
		cfg.Replicas[i].HTTPAddr = ""
	}
	cpub, cpriv, err := auth.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Clients.Keys = []config.ClientKey{{ID: 0, PublicKey: auth.MarshalPublicKey(cpub)}}
	cfg.DataDir = filepath.Join(dir, "data-{id}")
	// Timeouts of a second: the race detector slows replicas several-fold,
	// and timeouts far below the processing time churn views (see notes).
	cfg.Tick = "10ms"
	cfg.RequestTimeout, cfg.ProgressTimeout, cfg.ViewChangeTimeout = 100, 100, 100
	cfg.SetDir(dir)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg, cpriv
}

// TestClusterOnLoopback runs four replicas as goroutines over real TCP
// (mutual TLS), writes through one replica's client port, reads back, and
// checks every replica's ledger verifies with only the public keys.
func TestClusterOnLoopback(t *testing.T) {
	cfg, ckey := cluster(t, 4)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	reps := make([]*Replica, 4)
	stops := make([]context.CancelFunc, 4)
	start := func(i int) {
		r, err := New(cfg, i, Options{Logger: slog.New(slog.NewTextHandler(logSink, nil))})
		if err != nil {
			t.Fatal(err)
		}
		rctx, stop := context.WithCancel(ctx)
		reps[i], stops[i] = r, stop
		done := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done)
			if err := r.Run(rctx); err != nil {
				t.Errorf("replica %d: %v", i, err)
			}
		}()
		stops[i] = func() { stop(); <-done }
	}
	for i := 0; i < 4; i++ {
		start(i)
	}
	replies := make(chan *msg.Reply, 1024)
	conns := make([]*transport.Client, 4)
	var connMu sync.Mutex
	dial := func(i int) {
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
		connMu.Lock()
		conns[i] = c
		connMu.Unlock()
		go func() {
			for {
				p, err := c.Recv(ctx)
				if err != nil {
					return
				}
				if m, err := msg.Unmarshal(p); err == nil {
					if rep, ok := m.(*msg.Reply); ok && rep.From == msg.ReplicaID(i) {
						replies <- rep
					}
				}
			}
		}()
	}
	for i := 0; i < 4; i++ {
		dial(i)
	}
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	submit := func(num uint64, op []byte) []byte {
		req := msg.Request{Client: 0, Number: num, Op: op}
		req.Sig = auth.ClientSigner(ckey).Sign(req.SignedBytes())
		frame := msg.Marshal(&msg.ClientRequest{Request: req})
		connMu.Lock()
		for _, c := range conns { // to all: backups relay, the primary orders
			if c != nil {
				_ = c.Send(frame)
			}
		}
		connMu.Unlock()
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
				if len(votes[k]) >= 2 { // f+1
					return rep.Result
				}
			case <-timeout:
				for i, r := range reps {
					dctx, dcancel := context.WithTimeout(ctx, time.Second)
					t.Logf("replica %d: %s", i, r.Describe(dctx))
					dcancel()
				}
				t.Fatalf("request %d: no f+1 matching replies: %v", num, votes)
			}
		}
	}
	num := uint64(0)
	put := func(k, v string) {
		num++
		submit(num, kv.Put([]byte(k), []byte(v)))
	}
	for i := 1; i <= 20; i++ {
		put(fmt.Sprintf("k%d", i%5), fmt.Sprintf("v%d", i))
	}
	// Replica 3 goes down (a clean stop: its data directory is what a
	// crash leaves, since every record is synced before it is sent) while
	// the others move on by more than a window, then comes back: it must
	// catch up by state transfer from a certified checkpoint.
	stops[3]()
	connMu.Lock()
	conns[3].Close()
	conns[3] = nil
	connMu.Unlock()
	for i := 21; i <= 120; i++ {
		put(fmt.Sprintf("k%d", i%5), fmt.Sprintf("v%d", i))
	}
	start(3)
	dial(3)
	for i := 121; i <= 130; i++ {
		put(fmt.Sprintf("k%d", i%5), fmt.Sprintf("v%d", i))
	}
	num++
	v, found, err := kv.DecodeGet(submit(num, kv.Get([]byte("k3"))))
	if err != nil || !found || string(v) != "v128" {
		t.Fatalf("get k3 = %q, %v, %v; want v128", v, found, err)
	}
	// Wait (bounded) until every replica has executed the same rounds: the
	// restarted one catching up, the others finishing what is in flight.
	deadline := time.Now().Add(60 * time.Second)
	same := func() bool {
		r0 := reps[0].Round()
		for _, r := range reps[1:] {
			if r.Round() != r0 {
				return false
			}
		}
		return true
	}
	for !same() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // polling a result with a deadline, not ordering events
	}
	t.Logf("after restart: replica 3 at round %d, replica 0 at round %d", reps[3].Round(), reps[0].Round())
	cancel()
	wg.Wait()
	// Every replica's ledger verifies offline with only the public keys.
	pubs, _ := cfg.ReplicaPublicKeys()
	ring := auth.Keyring{Replicas: map[msg.ReplicaID]auth.PublicKey{}, Clients: map[msg.ClientID]auth.PublicKey{}}
	for i, k := range pubs {
		ring.Replicas[msg.ReplicaID(i)] = k
	}
	cpub, _ := auth.ParsePublicKey(cfg.Clients.Keys[0].PublicKey)
	ring.Clients[0] = cpub
	var heads []msg.Digest
	for i := 0; i < 4; i++ {
		st, err := storage.Open(cfg.ReplicaDataDir(i), storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := ledger.Verify(st, ring, 4, ledger.VerifyOptions{})
		st.Close()
		if err != nil {
			t.Fatalf("replica %d ledger: %v", i, err)
		}
		t.Logf("replica %d: height %d, head %x, %d certificates", i, rep.Height, rep.Head[:6], rep.Certificates)
		heads = append(heads, rep.Head)
	}
	for i := range heads {
		if heads[i] != heads[0] {
			t.Fatalf("replica %d ledger head %x differs from replica 0's %x", i, heads[i][:6], heads[0][:6])
		}
	}
}

// logSink discards replica logs unless BRAID_TEST_LOGS is set.
var logSink io.Writer = func() io.Writer {
	if os.Getenv("BRAID_TEST_LOGS") != "" {
		return os.Stderr
	}
	return io.Discard
}()

// A pre-prepare's client signatures are batch-verified; one bad signature
// drops the message and charges the replica that sent it.
func TestBatchVerificationChargesSender(t *testing.T) {
	cfg, ckey := cluster(t, 4)
	r, err := New(cfg, 1, Options{Logger: slog.New(slog.NewTextHandler(logSink, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	pkey, err := cfg.ReplicaKey(0)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(corrupt bool) *msg.PrePrepare {
		var reqs []msg.Request
		for i := uint64(1); i <= 3; i++ {
			req := msg.Request{Client: 0, Number: i, Op: kv.Put([]byte("k"), []byte("v"))}
			req.Sig = auth.ClientSigner(ckey).Sign(req.SignedBytes())
			reqs = append(reqs, req)
		}
		if corrupt {
			reqs[1].Sig[5] ^= 1
		}
		pp := &msg.PrePrepare{View: 0, Seq: 1, From: 0, Batch: msg.Batch{Requests: reqs}}
		pp.Digest = pp.Batch.Digest()
		pp.Sig = auth.ReplicaSigner(pkey).Sign(msg.SignedBytes(pp))
		return pp
	}
	if !r.verifyBatch(0, mk(false)) {
		t.Fatal("valid batch rejected")
	}
	if r.verifyBatch(0, mk(true)) {
		t.Fatal("batch with a bad client signature accepted")
	}
	if r.charged[0] != 1 {
		t.Fatalf("sender charged %d times, want 1", r.charged[0])
	}
}
