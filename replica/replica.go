// Package replica is the networked shell around the pure protocol core: it
// owns one rcc.Node and drives it from a single goroutine, with sockets
// (transport), signatures (auth), the kv application, durable storage and
// the ledger around it. The loop is the one the simulator's shell runs:
// verify → Step → persist (synced) → send → execute → reply.
package replica

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/braid-bft/braid/app"
	"github.com/braid-bft/braid/app/kv"
	"github.com/braid-bft/braid/app/mux"
	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/config"
	"github.com/braid-bft/braid/ledger"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/pbft"
	"github.com/braid-bft/braid/rcc"
	"github.com/braid-bft/braid/storage"
	"github.com/braid-bft/braid/transport"
)

// Options tune a replica beyond the cluster file.
type Options struct {
	Logger *slog.Logger
}

// Replica is one running replica.
type Replica struct {
	cfg     *config.Config
	id      msg.ReplicaID
	log     *slog.Logger
	keyring auth.Keyring
	node    *rcc.Node
	store   *storage.Store
	peers   *transport.Transport
	front   *transport.Transport // client-facing listener
	events  chan event

	// Executed state (owned by the loop goroutine).
	app          *mux.App
	lastNum      map[msg.ClientID]uint64
	replies      map[msg.ClientID]*msg.Reply
	conns        map[msg.ClientID]*transport.ClientConn
	round        uint64
	head         msg.Digest
	recent       map[uint64][2]msg.Digest // round → (block hash, state digest), for certificates
	xfer         *transfer                // state transfer under way
	ticks        int64
	progress     atomic.Uint64 // r.round, readable from other goroutines
	inspect      chan chan string
	lastParadigm []byte                   // the paradigm state last written to storage
	pool         *auth.Pool               // bounded workers for batch signature verification
	charged      map[msg.ReplicaID]uint64 // invalid client signatures each replica forwarded
	clientID     map[string]msg.ClientID  // public key → admitted client id
}

type event struct {
	from   int                   // replica id, for peer frames
	client *transport.ClientConn // set for client frames
	frame  []byte
}

// New opens the replica's storage and restores its state; Run starts it.
func New(cfg *config.Config, id int, opts Options) (*Replica, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if _, ok := cfg.Replica(id); !ok {
		return nil, fmt.Errorf("replica: id %d is not in the cluster config (n=%d)", id, cfg.N)
	}
	key, err := cfg.ReplicaKey(id)
	if err != nil {
		return nil, fmt.Errorf("replica %d: key: %w", id, err)
	}
	pubs, err := cfg.ReplicaPublicKeys()
	if err != nil {
		return nil, fmt.Errorf("replica %d: %w", id, err)
	}
	clientKeys, err := cfg.ClientPublicKeys()
	if err != nil {
		return nil, fmt.Errorf("replica %d: %w", id, err)
	}
	r := &Replica{
		cfg: cfg, id: msg.ReplicaID(id), log: opts.Logger.With("replica", id),
		keyring: auth.Keyring{Replicas: map[msg.ReplicaID]auth.PublicKey{}, Clients: map[msg.ClientID]auth.PublicKey{}},
		events:  make(chan event, 4096), inspect: make(chan chan string),
		pool: auth.NewPool(0, 0), charged: map[msg.ReplicaID]uint64{},
		app: mux.New(kvScope(cfg)), lastNum: map[msg.ClientID]uint64{}, replies: map[msg.ClientID]*msg.Reply{},
		conns: map[msg.ClientID]*transport.ClientConn{}, recent: map[uint64][2]msg.Digest{}, clientID: map[string]msg.ClientID{},
	}
	for i, k := range pubs {
		r.keyring.Replicas[msg.ReplicaID(i)] = k
	}
	for cid, k := range clientKeys {
		r.keyring.Clients[msg.ClientID(cid)] = k
		r.clientID[string(k)] = msg.ClientID(cid)
	}
	policy := rcc.Replace
	if cfg.FailurePolicy == config.InPlace {
		policy = rcc.InPlace
	}
	node, err := rcc.New(rcc.Config{
		ID: r.id, N: cfg.N, M: cfg.M, Policy: policy,
		Sigma: uint64(cfg.Sigma), Epsilon: uint64(cfg.Epsilon), Clients: len(clientKeys),
		Instance: pbft.Config{
			Signer: auth.ReplicaSigner(key), MaxBatch: cfg.BatchSize, Window: uint64(cfg.Window),
			CheckpointInterval: uint64(cfg.CheckpointInterval), RequestTimeout: cfg.RequestTimeout,
			ProgressTimeout: cfg.ProgressTimeout, ViewChangeTimeout: cfg.ViewChangeTimeout,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("replica %d: %w", id, err)
	}
	r.node = node
	var fsync storage.FsyncPolicy = storage.PerBatch{}
	if cfg.Fsync == config.FsyncGroup {
		fsync = storage.GroupCommit{Interval: cfg.GroupCommitInterval.Value()}
	}
	r.store, err = storage.Open(cfg.ReplicaDataDir(id), storage.Options{Fsync: fsync})
	if err != nil {
		return nil, fmt.Errorf("replica %d: storage: %w", id, err)
	}
	if err := r.restore(); err != nil {
		r.store.Close()
		return nil, fmt.Errorf("replica %d: restore: %w", id, err)
	}
	peers := map[int]transport.Peer{}
	for _, rep := range cfg.Replicas {
		peers[rep.ID] = transport.Peer{Addr: rep.Addr, PublicKey: ed25519.PublicKey(pubs[rep.ID])}
	}
	self, _ := cfg.Replica(id)
	r.peers, err = transport.New(transport.Config{ID: id, Listen: self.Addr, Peers: peers, Key: ed25519.PrivateKey(key), Logger: r.log},
		func(from int, frame []byte) { r.events <- event{from: from, frame: frame} }, nil)
	if err != nil {
		r.store.Close()
		return nil, fmt.Errorf("replica %d: transport: %w", id, err)
	}
	r.front, err = transport.New(transport.Config{ID: id, Listen: self.ClientAddr, Key: ed25519.PrivateKey(key), Logger: r.log},
		func(int, []byte) {}, func(c *transport.ClientConn, frame []byte) { r.events <- event{client: c, frame: frame} })
	if err != nil {
		r.store.Close()
		return nil, fmt.Errorf("replica %d: client transport: %w", id, err)
	}
	return r, nil
}

func kvScope(cfg *config.Config) kv.Scope {
	if cfg.KVScope == config.KVPerClient {
		return kv.PerClient
	}
	return kv.Shared
}

// Describe returns a one-line summary of the replica's protocol state,
// taken by its own goroutine (for logs and failing tests).
func (r *Replica) Describe(ctx context.Context) string {
	q := make(chan string, 1)
	select {
	case r.inspect <- q:
		return <-q
	case <-ctx.Done():
		return "(not running)"
	}
}

func (r *Replica) describe() string {
	out := fmt.Sprintf("round=%d %s", r.round, r.node.Debug())
	for i := 0; i < r.cfg.M; i++ {
		p := r.node.Instance(i)
		v, ch := p.View()
		out += fmt.Sprintf(" [i%d v%d ch=%v ld=%d low=%d next=%d p=%d]", i, v, ch, p.LastDecided(), p.LowWatermark(), p.NextProposal(), p.Primary())
	}
	return out
}

// Round is the last executed round (safe to call from any goroutine).
func (r *Replica) Round() uint64 { return r.progress.Load() }

// Run serves until ctx is cancelled, then shuts down cleanly.
func (r *Replica) Run(ctx context.Context) error {
	if err := r.peers.Start(); err != nil {
		return fmt.Errorf("replica %d: %w", r.id, err)
	}
	if err := r.front.Start(); err != nil {
		r.peers.Close()
		return fmt.Errorf("replica %d: %w", r.id, err)
	}
	r.log.Info("replica running", "peers", r.peers.Addr(), "clients", r.front.Addr(), "round", r.round, "m", r.cfg.M, "policy", r.cfg.FailurePolicy)
	tick := time.NewTicker(r.cfg.Tick.Value())
	defer tick.Stop()
	r.node.Announce()
	r.drain()
	for {
		select {
		case <-ctx.Done():
			return r.close()
		case <-tick.C:
			r.ticks++
			r.node.Tick()
			r.onTickTransfer()
		case ev := <-r.events:
			r.handle(ev)
		case q := <-r.inspect:
			q <- r.describe()
		}
		r.drain()
	}
}

func (r *Replica) close() error {
	errs := []error{r.front.Close(), r.peers.Close(), r.store.Sync(), r.store.Close()}
	r.pool.Close()
	r.log.Info("replica stopped", "round", r.round)
	return errors.Join(errs...)
}

func (r *Replica) handle(ev event) {
	m, err := msg.Unmarshal(ev.frame)
	if err != nil {
		r.log.Debug("dropped malformed frame", "err", err)
		return
	}
	if ev.client != nil {
		r.onClient(ev.client, m)
		return
	}
	switch x := m.(type) {
	case *msg.Fetch:
		r.serveFetch(ev.from, x)
		return
	case *msg.Blocks:
		r.onBlocks(ev.from, x)
		return
	}
	if pp, ok := m.(*msg.PrePrepare); ok && len(pp.Batch.Requests) > 1 {
		if !r.verifyBatch(ev.from, pp) {
			return
		}
		r.node.Step(msg.ReplicaID(ev.from), m)
		return
	}
	if err := msg.Verify(m, r.keyring); err != nil {
		r.log.Debug("dropped message", "from", ev.from, "kind", m.Kind(), "err", err)
		return
	}
	r.node.Step(msg.ReplicaID(ev.from), m)
}

// verifyBatch checks a pre-prepare's client signatures with batch
// verification on the bounded worker pool (one ZIP-215 rule for single and
// batch checks, see auth). A batch with a bad signature costs a fallback
// search; the replica that forwarded it is charged for it.
func (r *Replica) verifyBatch(from int, pp *msg.PrePrepare) bool {
	if !r.keyring.Replica(pp.From, msg.SignedBytes(pp), pp.Sig) {
		return false
	}
	items := make([]auth.BatchItem, len(pp.Batch.Requests))
	for i := range pp.Batch.Requests {
		req := &pp.Batch.Requests[i]
		key, ok := r.keyring.Clients[req.Client]
		if !ok {
			r.charged[msg.ReplicaID(from)]++
			return false
		}
		items[i] = auth.BatchItem{Key: key, Context: auth.ContextClient, Msg: req.SignedBytes(), Sig: req.Sig}
	}
	valid, err := r.pool.Verify(context.Background(), items)
	if err != nil {
		return false
	}
	for i, ok := range valid {
		if !ok {
			r.charged[msg.ReplicaID(from)]++
			r.log.Warn("pre-prepare carries an invalid client signature; dropped and charged to the sender",
				"from", from, "client", pp.Batch.Requests[i].Client, "charged", r.charged[msg.ReplicaID(from)])
			return false
		}
	}
	return true
}

// onClient admits a request only from the key the config lists for its
// client id, verifies its signature, and answers duplicates from the cache.
func (r *Replica) onClient(c *transport.ClientConn, m msg.Message) {
	cr, ok := m.(*msg.ClientRequest)
	if !ok {
		return
	}
	req := cr.Request
	if id, admitted := r.clientID[string(c.PublicKey())]; !admitted || id != req.Client {
		r.log.Debug("dropped request from a key not admitted for its client id", "client", req.Client)
		return
	}
	if err := msg.Verify(cr, r.keyring); err != nil {
		return
	}
	r.conns[req.Client] = c
	if req.Number <= r.lastNum[req.Client] {
		if rep := r.replies[req.Client]; rep != nil && rep.Number == req.Number {
			r.reply(rep)
		}
		return
	}
	r.node.Request(req)
}

// drain carries out everything the core asked for, in the order that keeps
// the replica honest after a crash: records durable before any message leaves.
func (r *Replica) drain() {
	for r.node.HasReady() {
		rd := r.node.Ready()
		if len(rd.Persist) > 0 {
			recs := make([][]byte, len(rd.Persist))
			for i, m := range rd.Persist {
				recs[i] = msg.Marshal(m)
			}
			err := r.store.AppendRecords(recs)
			if err == nil {
				err = r.store.Sync()
			}
			if err != nil {
				// Sending what we could not make durable could make a
				// restarted replica contradict itself: stay silent instead.
				r.log.Error("cannot persist consensus records; not sending", "err", err)
				continue
			}
		}
		for _, o := range rd.Messages {
			frame := msg.Marshal(o.Msg)
			if o.Broadcast {
				_ = r.peers.Broadcast(frame)
			} else if int(o.To) < r.cfg.N {
				_ = r.peers.Send(int(o.To), frame)
			}
		}
		for _, round := range rd.Rounds {
			r.execute(round)
		}
		if rd.StateTransfer != nil {
			r.startTransfer(rd.StateTransfer)
		}
		for _, c := range r.node.TakeCertificates() {
			r.certify(c)
		}
	}
}

// execute applies one round: the kv application, the reply cache, one
// ledger block, and every K rounds a checkpoint over (block, state).
func (r *Replica) execute(round rcc.Round) {
	if round.Round != r.round+1 {
		r.log.Error("round out of order", "got", round.Round, "want", r.round+1)
		return
	}
	var reqs []msg.Request
	var results [][]byte
	for _, b := range round.Batches {
		for _, req := range b.Batch.Requests {
			if req.Number <= r.lastNum[req.Client] {
				continue
			}
			res := r.app.Execute(app.CallerID(uint64(req.Client)), req.Op)
			r.finishRequest(req, b.View, res)
			reqs, results = append(reqs, req), append(results, res)
		}
	}
	for _, ctl := range round.Controls {
		if ctl.Request.Number > r.lastNum[ctl.Request.Client] {
			r.finishRequest(ctl.Request, 0, ctl.Result)
			reqs, results = append(reqs, ctl.Request), append(results, ctl.Result)
		}
	}
	state := r.stateDigest(round.State)
	b := &ledger.Block{Height: round.Round, Prev: r.head, Round: round.Round, Requests: reqs,
		ResultsDigest: ledger.ResultsDigest(results), StateDigest: state}
	if err := r.store.PutBlock(b); err != nil {
		r.log.Error("cannot store block", "height", b.Height, "err", err)
	}
	if !bytes.Equal(round.State, r.lastParadigm) { // it changes only on failures and instance changes
		_ = r.store.PutMeta("paradigm", round.State)
		r.lastParadigm = round.State
	}
	r.head, r.round = b.Hash(), round.Round
	r.progress.Store(r.round)
	r.recent[round.Round] = [2]msg.Digest{r.head, state}
	k := uint64(r.cfg.CheckpointInterval)
	if round.Round%k == 0 {
		if snap, err := r.app.Snapshot(); err == nil {
			_ = r.store.PutSnapshot(round.Round, snap)
		}
		_ = r.store.PutMeta(paradigmKey(round.Round), round.State)
		r.node.Checkpoint(round.Round, ledger.CheckpointDigest(r.head, state))
	}
	for old := range r.recent {
		if old+4*k < round.Round {
			delete(r.recent, old)
		}
	}
}

func (r *Replica) finishRequest(req msg.Request, view uint64, res []byte) {
	r.lastNum[req.Client] = req.Number
	rep := &msg.Reply{Client: req.Client, Number: req.Number, View: view, Result: res, From: r.id, Primary: msg.NoReplica}
	inst := r.node.InstanceFor(req.Client)
	if p := r.node.Instance(int(inst)); p != nil {
		if _, changing := p.View(); !changing {
			rep.Primary = p.Primary()
		}
	}
	r.replies[req.Client] = rep
	r.reply(rep)
}

func (r *Replica) reply(rep *msg.Reply) {
	if c := r.conns[rep.Client]; c != nil {
		_ = c.Send(msg.Marshal(rep))
	}
}

// stateDigest binds the application state and the paradigm state.
func (r *Replica) stateDigest(paradigm []byte) msg.Digest { return stateDigest(r.app, paradigm) }

// stateDigest is what a block's StateDigest (and so a checkpoint) binds:
// the application digest and the paradigm state. Execution and state
// transfer must compute it the same way.
func stateDigest(a *mux.App, paradigm []byte) msg.Digest {
	d := a.Digest()
	return ledger.ResultsDigest([][]byte{d[:], paradigm})
}

// certify stores a stable checkpoint's certificate with the block it covers.
func (r *Replica) certify(c rcc.Certificate) {
	at, ok := r.recent[c.Round]
	if !ok {
		return
	}
	if ledger.CheckpointDigest(at[0], at[1]) != c.Proof[0].State {
		r.log.Error("stable checkpoint does not match our state", "round", c.Round)
		return
	}
	cert := &ledger.Certificate{Round: c.Round, BlockHash: at[0], StateDigest: at[1], Signatures: c.Proof}
	if err := r.store.PutCertificate(cert); err != nil {
		r.log.Error("cannot store certificate", "round", c.Round, "err", err)
	}
}
