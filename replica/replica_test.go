package replica

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/braid-bft/braid/app/kv"
	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/internal/testcluster"
	"github.com/braid-bft/braid/ledger"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/pbft"
	"github.com/braid-bft/braid/shell"
	"github.com/braid-bft/braid/storage"
	"github.com/braid-bft/braid/transport"
)

// TestClusterOnLoopback runs four replicas as goroutines over real TCP
// (mutual TLS), writes through one replica's client port, reads back, and
// checks every replica's ledger verifies with only the public keys.
func TestClusterOnLoopback(t *testing.T) {
	cfg, ckey := testcluster.Config(t, 4, true)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	reps := make([]*Replica, 4)
	stops := make([]context.CancelFunc, 4)
	signed := newSignedLog(t)
	start := func(i int) {
		r, err := New(cfg, i, Options{Logger: testcluster.Logger(), Sent: signed.observe})
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
	describe := func(i int) string {
		dctx, dcancel := context.WithTimeout(ctx, time.Second)
		defer dcancel()
		return reps[i].Describe(dctx)
	}
	logStates := func() {
		for i := range reps {
			t.Logf("replica %d: %s", i, describe(i))
		}
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
				logStates()
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
	putRange := func(from, to int) {
		for i := from; i <= to; i++ {
			put(fmt.Sprintf("k%d", i%5), fmt.Sprintf("v%d", i))
		}
	}
	down := func(i int) {
		stops[i]()
		connMu.Lock()
		conns[i].Close()
		conns[i] = nil
		connMu.Unlock()
	}
	down(3)
	putRange(21, 120)
	start(3)
	dial(3)
	putRange(121, 130)
	// One fault at a time: replica 3 has caught up before the next replica
	// goes down. (It may still wait alone in a view change it started while
	// it lagged; the others' next view change meets it there.)
	settled := func() bool {
		r0 := reps[0].Round()
		for _, r := range reps {
			if r.Round() != r0 {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(60 * time.Second); !settled(); {
		if time.Now().After(deadline) {
			logStates()
			t.Fatal("replicas did not reach the same round after replica 3 rejoined")
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline, not ordering events
	}
	// Replica 0, the primary of instance 0, stops mid-load and comes back:
	// it restores its own pre-prepares and votes from its log and must
	// never sign anything that contradicts them (signed.check below).
	down(0)
	putRange(131, 140)
	start(0)
	dial(0)
	putRange(141, 150)
	num++
	v, found, err := kv.DecodeGet(submit(num, kv.Get([]byte("k3"))))
	if err != nil || !found || string(v) != "v148" {
		t.Fatalf("get k3 = %q, %v, %v; want v148", v, found, err)
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
	signed.check()
	// Rounds keep executing until the very stop (idle primaries fill while
	// another instance is ahead), so the ledgers may end a round or two
	// apart: they must agree block for block up to the shortest one, and
	// the restarted replicas must have caught up to within a few rounds.
	hashes := make([]map[uint64]msg.Digest, 4)
	var heights []uint64
	for i := 0; i < 4; i++ {
		st, err := storage.Open(cfg.ReplicaDataDir(i), storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := ledger.Verify(st, ring, 4, ledger.VerifyOptions{})
		if err == nil {
			var summary string
			summary, err = checkCompacted(st, uint64(cfg.CheckpointInterval))
			t.Logf("replica %d: %s", i, summary)
		}
		hashes[i] = map[uint64]msg.Digest{}
		for h := uint64(1); err == nil && h <= rep.Height; h++ {
			var b *ledger.Block
			if b, err = st.Block(h); err == nil {
				hashes[i][h] = b.Hash()
			}
		}
		st.Close()
		if err != nil {
			t.Fatalf("replica %d ledger: %v", i, err)
		}
		t.Logf("replica %d: height %d, head %x, %d certificates", i, rep.Height, rep.Head[:6], rep.Certificates)
		heights = append(heights, rep.Height)
	}
	lo, hi := slices.Min(heights), slices.Max(heights)
	if hi-lo > uint64(cfg.CheckpointInterval) {
		t.Fatalf("ledger heights %v: a replica did not catch up", heights)
	}
	for i := range hashes {
		for h := uint64(1); h <= lo; h++ {
			if hashes[i][h] != hashes[0][h] {
				t.Fatalf("replica %d block %d differs from replica 0's", i, h)
			}
		}
	}
}

// signedLog collects every signed protocol message the replicas send,
// across stops and restarts, and fails the test if one replica ever signed
// two different messages for the same (kind, instance, view, sequence).
type signedLog struct {
	t        *testing.T
	mu       sync.Mutex
	seen     map[string][32]byte
	conflict string
	count    int
}

func newSignedLog(t *testing.T) *signedLog { return &signedLog{t: t, seen: map[string][32]byte{}} }

func (l *signedLog) observe(m msg.Message) {
	key, ok := pbft.SignedKey(m)
	if !ok {
		return
	}
	d := sha256.Sum256(msg.SignedBytes(m))
	l.mu.Lock()
	defer l.mu.Unlock()
	l.count++
	if have, dup := l.seen[key]; dup && have != d && l.conflict == "" {
		l.conflict = key
	}
	l.seen[key] = d
}

func (l *signedLog) check() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conflict != "" {
		l.t.Fatalf("a replica signed two different messages for %s", l.conflict)
	}
	l.t.Logf("%d signed messages sent, %d distinct slots, no replica contradicted itself", l.count, len(l.seen))
}

// checkCompacted checks that a data directory holds only what lies above
// its last stable checkpoint: a small part of all write-ahead records ever
// appended, and no snapshot more than one interval below the latest.
func checkCompacted(st *storage.Store, k uint64) (string, error) {
	first, next, err := st.RecordBounds()
	if err != nil {
		return "", err
	}
	latest, _, err := st.LatestSnapshot()
	if err != nil {
		return "", err
	}
	retained, total := next-first, next-1
	summary := fmt.Sprintf("%d of %d records retained, latest snapshot %d", retained, total, latest)
	if latest < 2*k {
		return summary, fmt.Errorf("latest snapshot at round %d: too few rounds to check compaction", latest)
	}
	if retained*2 > total {
		return summary, fmt.Errorf("log not compacted: %s", summary)
	}
	for round := k; round+k < latest; round += k {
		if _, _, err := st.SnapshotChunk(round, 0, 1); !errors.Is(err, storage.ErrNotFound) {
			return summary, fmt.Errorf("snapshot of round %d still stored below the latest %d (%v)", round, latest, err)
		}
		if round+2*k < latest {
			if _, err := st.GetMeta(shell.ParadigmKey(round)); !errors.Is(err, storage.ErrNotFound) {
				return summary, fmt.Errorf("paradigm state of round %d still stored below the latest snapshot %d (%v)", round, latest, err)
			}
		}
	}
	return summary, nil
}
