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
	"slices"
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
	// Store, when set, is used instead of the data directory's on-disk
	// store (tests: a store that crashes or fails). The replica closes it.
	Store storage.Interface
	// Sent, when set, sees every message to peers just before it leaves
	// (tests collect what a replica signed across a crash and restart).
	// It runs on the replica's goroutine and must not block.
	Sent func(m msg.Message)
}

// ErrFailStop is wrapped by the error Run returns when the replica stopped
// because its storage failed. Going on after a failed write or fsync could
// make the replica contradict what it sent, or silently stop applying
// rounds; a supervisor restarts it from what is on disk.
var ErrFailStop = errors.New("fail-stop")

// Replica is one running replica.
type Replica struct {
	cfg     *config.Config
	id      msg.ReplicaID
	log     *slog.Logger
	keyring auth.Keyring
	node    *rcc.Node
	store   storage.Interface
	sent    func(m msg.Message)
	peers   *transport.Transport
	front   *transport.Transport // client-facing listener
	events  chan event

	// Executed state (owned by the loop goroutine).
	app          *mux.App
	table        executed // exactly-once: last executed request and its reply, per client
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
	failed       error                    // set once storage failed: the replica stops (fail-stop)
	quit         chan struct{}            // closed when Run stops reading events
	compactedAt  uint64                   // the stable checkpoint the WAL was last compacted at
	compactTo    uint64                   // a stable checkpoint to compact at once its proof is durable
	badSource    map[msg.ReplicaID]bool   // signers that served a transfer that did not verify
	stagedLimit  int                      // maxStagedBytes (tests lower it)
	outReplies   []*msg.Reply             // replies of the round being executed, sent once it is stored
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
		pool: auth.NewPool(0, 0), charged: map[msg.ReplicaID]uint64{}, badSource: map[msg.ReplicaID]bool{}, stagedLimit: maxStagedBytes,
		app: mux.New(kvScope(cfg)), table: executed{}, quit: make(chan struct{}), sent: opts.Sent,
		conns: map[msg.ClientID]*transport.ClientConn{}, recent: map[uint64][2]msg.Digest{}, clientID: map[string]msg.ClientID{},
	}
	for i, k := range pubs {
		r.keyring.Replicas[msg.ReplicaID(i)] = k
	}
	admitted := make([]msg.ClientID, 0, len(clientKeys))
	for cid, k := range clientKeys {
		r.keyring.Clients[msg.ClientID(cid)] = k
		r.clientID[string(k)] = msg.ClientID(cid)
		admitted = append(admitted, msg.ClientID(cid))
	}
	slices.Sort(admitted)
	policy := rcc.Replace
	if cfg.FailurePolicy == config.InPlace {
		policy = rcc.InPlace
	}
	node, err := rcc.New(rcc.Config{
		ID: r.id, N: cfg.N, M: cfg.M, Policy: policy,
		Sigma: uint64(cfg.Sigma), Epsilon: uint64(cfg.Epsilon), Clients: admitted,
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
	if opts.Store != nil {
		r.store = opts.Store
	} else {
		var fsync storage.FsyncPolicy = storage.PerBatch{}
		if cfg.Fsync == config.FsyncGroup {
			fsync = storage.GroupCommit{Interval: cfg.GroupCommitInterval.Value()}
		}
		r.store, err = storage.Open(cfg.ReplicaDataDir(id), storage.Options{Fsync: fsync})
		if err != nil {
			return nil, fmt.Errorf("replica %d: storage: %w", id, err)
		}
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
		func(from int, frame []byte) { r.enqueue(event{from: from, frame: frame}) }, nil)
	if err != nil {
		r.store.Close()
		return nil, fmt.Errorf("replica %d: transport: %w", id, err)
	}
	r.front, err = transport.New(transport.Config{ID: id, Listen: self.ClientAddr, Key: ed25519.PrivateKey(key), Logger: r.log},
		func(int, []byte) {}, func(c *transport.ClientConn, frame []byte) { r.enqueue(event{client: c, frame: frame}) })
	if err != nil {
		r.peers.Close()
		r.store.Close()
		return nil, fmt.Errorf("replica %d: client transport: %w", id, err)
	}
	return r, nil
}

// enqueue hands a frame from a transport goroutine to the loop. Once the
// loop has stopped nothing drains the queue, so a full queue must not block
// the transport's readers: Close waits for them.
func (r *Replica) enqueue(ev event) {
	select {
	case r.events <- ev:
	case <-r.quit:
	}
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
		if r.failed != nil {
			return errors.Join(fmt.Errorf("replica %d: %w", r.id, r.failed), r.close())
		}
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
	select {
	case <-r.quit:
	default:
		close(r.quit)
	}
	var errs []error
	if r.failed == nil { // after a failure the store refuses every call
		errs = append(errs, r.store.Sync())
	}
	errs = append(errs, r.front.Close(), r.peers.Close(), r.store.Close())
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
	if req.Number <= r.table.last(req.Client) {
		if rep := r.table[req.Client]; rep != nil && rep.Number == req.Number {
			r.reply(rep)
		}
		return
	}
	r.node.Request(req)
}

// drain carries out everything the core asked for, in the order that keeps
// the replica honest after a crash: records durable before any message
// leaves. A storage failure stops it at once (fail-stop): nothing of that
// Ready is sent or applied, and Run returns.
func (r *Replica) drain() {
	for r.failed == nil && r.node.HasReady() {
		rd := r.node.Ready()
		if len(rd.Persist) > 0 {
			recs := make([][]byte, len(rd.Persist))
			for i, m := range rd.Persist {
				recs[i] = msg.Marshal(m)
			}
			if err := r.store.Apply(&storage.Batch{Records: recs}); err != nil {
				r.fail("append consensus records", err)
				return
			}
		}
		// Everything written so far — these records, and the blocks of
		// rounds executed earlier — is durable before anything leaves.
		if err := r.store.Sync(); err != nil {
			r.fail("sync", err)
			return
		}
		for _, o := range rd.Messages {
			if r.sent != nil {
				r.sent(o.Msg)
			}
			frame := msg.Marshal(o.Msg)
			if o.Broadcast {
				_ = r.peers.Broadcast(frame) // a full queue drops: the protocol retransmits
			} else if int(o.To) < r.cfg.N {
				_ = r.peers.Send(int(o.To), frame)
			}
		}
		for _, round := range rd.Rounds {
			r.execute(round)
			if r.failed != nil {
				return
			}
		}
		if rd.StateTransfer != nil {
			r.startTransfer(rd.StateTransfer)
		}
		for _, c := range r.node.TakeCertificates() {
			r.certify(c)
			if r.failed != nil {
				return
			}
		}
	}
	// Every record the core asked for is durable now, the proof of a new
	// stable checkpoint included (it may have been produced after this
	// pass's sync, by the round that completed it): only now may the log
	// lose what the checkpoint makes obsolete.
	if r.failed == nil && r.compactTo > 0 {
		r.compact(r.compactTo)
		r.compactTo = 0
	}
}

// fail records the first storage failure; Run stops after the current
// step. Nothing that depends on the failed write is sent or applied.
func (r *Replica) fail(what string, err error) {
	if r.failed != nil {
		return
	}
	r.failed = fmt.Errorf("%w: %s: %w", ErrFailStop, what, err)
	r.log.Error("storage failed: stopping the replica (fail-stop); restart it to recover from its data directory",
		"what", what, "err", err)
}

// execute applies one round: the application, the exactly-once table, one
// ledger block, and every K rounds a snapshot and a checkpoint over (block,
// state). The round's block, its paradigm state and (at checkpoints) its
// snapshot are one atomic write: a crash never restores a height with
// another round's paradigm state.
func (r *Replica) execute(round rcc.Round) {
	if round.Round != r.round+1 {
		r.fail("execute", fmt.Errorf("round %d out of order, want %d", round.Round, r.round+1))
		return
	}
	var reqs []msg.Request
	var orderings []ledger.Ordering
	var results [][]byte
	// Entries come in the agreed execution order, instance changes in
	// their place: a request number executes once, whichever of the
	// original request and an instance change carrying it comes first.
	for _, e := range round.Entries {
		req := e.Request
		if req.Number <= r.table.last(req.Client) {
			continue // a duplicate: the reply cache answers it
		}
		res := r.app.Execute(app.CallerID(uint64(req.Client)), e.Op)
		o := ledger.Ordering{Instance: e.Instance, Outcome: e.Outcome}
		if e.Outcome == msg.NotMoved {
			r.log.Debug("instance change refused; its operation executed", "client", req.Client, "number", req.Number,
				"target", e.Instance, "why", e.Refusal)
		}
		r.finishRequest(req, e.View, o, res)
		reqs, orderings, results = append(reqs, req), append(orderings, o), append(results, res)
	}
	state := r.stateDigest(round.State)
	b := &ledger.Block{Height: round.Round, Prev: r.head, Round: round.Round, Requests: reqs, Orderings: orderings,
		ResultsDigest: ledger.ResultsDigest(results), StateDigest: state}
	w := &storage.Batch{Blocks: []*ledger.Block{b}}
	if !bytes.Equal(round.State, r.lastParadigm) { // it changes only on failures and instance changes
		w.Meta = append(w.Meta, storage.Meta{Key: paradigmMeta, Val: round.State})
	}
	k := uint64(r.cfg.CheckpointInterval)
	checkpoint := round.Round%k == 0
	if checkpoint {
		snap, err := r.app.Snapshot()
		if err != nil {
			r.fail("snapshot", err)
			return
		}
		w.Snapshots = []storage.Snapshot{{Round: round.Round, Data: encodeSnapshot(snap, r.table)}}
		w.Meta = append(w.Meta, storage.Meta{Key: paradigmKey(round.Round), Val: round.State})
	}
	replies := r.outReplies
	r.outReplies = nil
	if err := r.store.Apply(w); err != nil {
		r.fail(fmt.Sprintf("store block %d", b.Height), err)
		return
	}
	// Results go out once their block is written (a crash before its
	// commit re-executes the same decided round from the log).
	for _, rep := range replies {
		r.reply(rep)
	}
	r.lastParadigm = round.State
	r.head, r.round = b.Hash(), round.Round
	r.progress.Store(r.round)
	r.recent[round.Round] = [2]msg.Digest{r.head, state}
	if checkpoint {
		r.node.Checkpoint(round.Round, ledger.CheckpointDigest(r.head, state))
	}
	for old := range r.recent {
		if old+4*k < round.Round {
			delete(r.recent, old)
		}
	}
}

// paradigmMeta names the paradigm state of the last executed round.
const paradigmMeta = "paradigm"

func (r *Replica) finishRequest(req msg.Request, view uint64, o ledger.Ordering, res []byte) {
	rep := &msg.Reply{Client: req.Client, Number: req.Number, View: view, Outcome: o.Outcome, Instance: o.Instance,
		Result: res, From: r.id, Primary: msg.NoReplica}
	inst := r.node.InstanceFor(req.Client)
	if p := r.node.Instance(int(inst)); p != nil {
		if _, changing := p.View(); !changing {
			rep.Primary = p.Primary()
		}
	}
	r.table[req.Client] = rep
	r.outReplies = append(r.outReplies, rep)
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

// certify stores a stable checkpoint's certificate with the block it
// covers, then compacts what the checkpoint made obsolete.
func (r *Replica) certify(c rcc.Certificate) {
	at, ok := r.recent[c.Round]
	if !ok {
		return
	}
	if ledger.CheckpointDigest(at[0], at[1]) != c.Proof[0].State {
		// 2f+1 replicas, so at least f+1 correct ones, certified another
		// state for this round than the one we executed: we diverged, and
		// going on would spread it.
		r.fail("certify", fmt.Errorf("stable checkpoint %d does not match our executed state", c.Round))
		return
	}
	cert := &ledger.Certificate{Round: c.Round, BlockHash: at[0], StateDigest: at[1], Signatures: c.Proof}
	if err := r.store.Apply(&storage.Batch{Certificates: []*ledger.Certificate{cert}}); err != nil {
		r.fail(fmt.Sprintf("store certificate %d", c.Round), err)
		return
	}
	r.compactTo = max(r.compactTo, c.Round) // after the proof is durable: see drain
}
