// Package plain is the non-replicated baseline that `braid bench --plain`
// measures: one server that does for a client request what one correct
// replica must do, minus replication and agreement. It receives the
// client's signed request over the same client transport (package
// transport, the SDK's peer), checks the signature by batch verification
// off its loop, executes the request on the same application (app/mux: kv
// and bank), stages a ledger block of what it executed in the same store
// (package storage, bbolt behind the journal), makes it durable with one
// fsync for everything staged since the last one (group commit), and only
// then replies. The difference between `braid bench` and `braid bench
// --plain` on one machine is then the cost of BFT: the other replicas, the
// protocol messages and their signatures, and the consensus records.
//
// It is for benchmarks only. Its cluster file has n = 1 (f = 0), so the
// unchanged client SDK accepts a result on this one server's word: there
// is nothing to agree with. It does not restore: it refuses a data
// directory that already holds a ledger.
package plain

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/braid-bft/braid/app"
	"github.com/braid-bft/braid/app/kv"
	"github.com/braid-bft/braid/app/mux"
	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/config"
	"github.com/braid-bft/braid/ledger"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/shell"
	"github.com/braid-bft/braid/storage"
	"github.com/braid-bft/braid/transport"
)

// Bounds of client verification, as the replica's (package shell): one
// batch verification checks at most maxVerifyBatch signatures, and at most
// maxBacklog requests wait for a free core; beyond that a request is shed
// and its client retries.
const (
	maxVerifyBatch = 256
	maxBacklog     = 8 * maxVerifyBatch
)

// Options tune a server beyond its cluster file.
type Options struct {
	Logger *slog.Logger
	// Cores is how many batch verifications run at once (default
	// GOMAXPROCS: with no peers to hear, every core may check clients).
	Cores int
	// Store, when set, is used instead of the data directory's on-disk
	// store (tests: a store whose fsync is held or fails). The server
	// closes it.
	Store storage.Interface

	// verifyBatch, when set, replaces auth.VerifyBatch (tests: hold one
	// batch's check while a later one completes).
	verifyBatch func([]auth.BatchItem) []bool
}

// Server is one running baseline server.
type Server struct {
	log       *slog.Logger
	store     storage.Interface
	app       *mux.App
	front     *transport.Transport
	clientKey map[string]msg.ClientID // public key → admitted client id
	keys      map[msg.ClientID]auth.PublicKey
	maxBlock  int // requests per ledger block: batch_size
	cores     int
	// verifyBatch checks a batch of signatures: auth.VerifyBatch.
	verifyBatch func([]auth.BatchItem) []bool

	frames   chan arrival    // from the transport's readers (bounded: backpressure)
	verified chan verifyDone // from the verification goroutines
	synced   chan syncDone   // from the fsync goroutine
	quit     chan struct{}   // closed when Run stops reading
	wg       sync.WaitGroup  // verification and fsync goroutines
	closed   bool

	// Loop state, owned by Run's goroutine.
	cache   map[msg.ClientID]*cached // each client's last executed request
	queue   []arrival                // waiting for verification
	running []*verification          // batches on the cores, in arrival order
	block   *ledger.Block            // the block being filled
	results [][]byte                 // its requests' results
	staged  []*ledger.Block          // closed blocks not yet applied to the store
	replies []pending                // replies of executed requests, waiting for durability
	height  uint64
	head    msg.Digest
	applied uint64 // store batches applied
	durable uint64 // of those, the ones known durable
	syncing bool
	failed  error

	// Counters, for the log at shutdown.
	executed, shed, answered uint64
}

// arrival is a client frame: a request not yet checked.
type arrival struct {
	conn *transport.ClientConn
	id   msg.ClientID
	req  msg.Request
}

// verification is a batch of requests on a core; the loop sets valid
// when the check is done.
type verification struct {
	batch []arrival
	valid []bool
}

// verifyDone is a finished check, from its goroutine to the loop.
type verifyDone struct {
	v     *verification
	valid []bool
}

type syncDone struct {
	upTo uint64
	err  error
}

// cached is a client's last executed request and the reply to it, which
// may be sent once store batch seq is durable.
type cached struct {
	number uint64
	frame  []byte
	seq    uint64
}

// pending is a reply waiting for store batch seq to be durable.
type pending struct {
	conn  *transport.ClientConn
	frame []byte
	seq   uint64
}

// New opens the server's store (replica 0's data_dir) and its client
// listener (replica 0's client_addr); Run starts it. cfg must describe one
// server: n = 1.
func New(cfg *config.Config, opts Options) (*Server, error) {
	if cfg.N != 1 || len(cfg.Replicas) != 1 {
		return nil, fmt.Errorf("plain: the configuration has n = %d; the non-replicated server needs n = 1 (braid bench --plain writes one)", cfg.N)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Cores <= 0 {
		opts.Cores = runtime.GOMAXPROCS(0)
	}
	if opts.verifyBatch == nil {
		opts.verifyBatch = auth.VerifyBatch
	}
	key, err := cfg.ReplicaKey(0)
	if err != nil {
		return nil, fmt.Errorf("plain: key: %w", err)
	}
	keys, err := cfg.ClientPublicKeys()
	if err != nil {
		return nil, fmt.Errorf("plain: %w", err)
	}
	scope := kv.Shared
	if cfg.KVScope == config.KVPerClient {
		scope = kv.PerClient
	}
	s := &Server{
		log: opts.Logger, app: mux.New(scope), clientKey: map[string]msg.ClientID{}, keys: map[msg.ClientID]auth.PublicKey{},
		maxBlock: cfg.BatchSize, cores: opts.Cores, verifyBatch: opts.verifyBatch,
		frames: make(chan arrival, 4096), verified: make(chan verifyDone, opts.Cores), synced: make(chan syncDone, 1),
		quit: make(chan struct{}), cache: map[msg.ClientID]*cached{},
	}
	for id, k := range keys {
		s.keys[msg.ClientID(id)] = k
		s.clientKey[string(k)] = msg.ClientID(id)
	}
	// The replica's store and policy: writes are staged, and only Sync
	// (one fsync for everything staged) makes them durable.
	if opts.Store != nil {
		s.store = opts.Store
	} else if s.store, err = storage.Open(cfg.ReplicaDataDir(0), storage.Options{Fsync: storage.GroupCommit{Interval: time.Hour}}); err != nil {
		return nil, fmt.Errorf("plain: storage: %w", err)
	}
	if h, err := s.store.Height(); err != nil || h > 0 {
		s.store.Close()
		if err != nil {
			return nil, fmt.Errorf("plain: storage: %w", err)
		}
		return nil, fmt.Errorf("plain: %s already holds a ledger of %d blocks; the baseline server does not restore, give it an empty data directory", cfg.ReplicaDataDir(0), h)
	}
	self := cfg.Replicas[0]
	s.front, err = transport.New(transport.Config{ID: 0, Listen: self.ClientAddr, Key: ed25519.PrivateKey(key), Logger: s.log},
		func(int, []byte) {}, s.onClientFrame)
	if err != nil {
		s.store.Close()
		return nil, fmt.Errorf("plain: client transport: %w", err)
	}
	return s, nil
}

// Addr is the client listener's address (once Run has started it).
func (s *Server) Addr() net.Addr { return s.front.Addr() }

// onClientFrame runs on a transport reader: a frame from an admitted key
// that decodes as a request for that key's client id goes to the loop.
func (s *Server) onClientFrame(c *transport.ClientConn, frame []byte) {
	id, ok := s.clientKey[string(c.PublicKey())]
	if !ok {
		return
	}
	m, err := msg.Unmarshal(frame)
	if err != nil {
		return
	}
	cr, ok := m.(*msg.ClientRequest)
	if !ok || cr.Request.Client != id {
		return
	}
	select {
	case s.frames <- arrival{conn: c, id: id, req: cr.Request}:
	case <-s.quit:
	}
}

// Run serves until ctx ends, then stops cleanly; it returns early with an
// error if the store fails (fail-stop: nothing executed after a failed
// write is ever answered).
func (s *Server) Run(ctx context.Context) error {
	if err := s.front.Start(); err != nil {
		return errors.Join(fmt.Errorf("plain: %w", err), s.close())
	}
	s.log.Info("plain server running (non-replicated baseline, benchmarks only)", "clients", s.front.Addr(), "cores", s.cores, "block", s.maxBlock)
	for {
		select {
		case <-ctx.Done():
			return s.close()
		case a := <-s.frames:
			s.onRequest(a)
		case v := <-s.verified:
			s.onVerified(v)
		case d := <-s.synced:
			s.onSynced(d)
		}
		// Take everything else already waiting, then stage and commit once:
		// requests that arrive together share one fsync.
	pass:
		for range shell.LoopPass {
			select {
			case a := <-s.frames:
				s.onRequest(a)
			case v := <-s.verified:
				s.onVerified(v)
			case d := <-s.synced:
				s.onSynced(d)
			default:
				break pass
			}
		}
		if s.failed == nil {
			s.flush()
		}
		if s.failed != nil {
			return errors.Join(s.failed, s.close())
		}
	}
}

// onRequest answers a request already executed from the cache and queues a
// new one for verification.
func (s *Server) onRequest(a arrival) {
	if c := s.cache[a.id]; c != nil && a.req.Number <= c.number {
		s.answerDuplicate(a, c)
		return
	}
	if len(s.queue) >= maxBacklog {
		s.shed++
		return
	}
	s.queue = append(s.queue, a)
}

// answerDuplicate resends the cached reply to a retransmission of the
// client's last request once it is durable (before that, the reply still
// waiting goes out when it is). Older requests get nothing: the client has
// moved on.
func (s *Server) answerDuplicate(a arrival, c *cached) {
	if a.req.Number == c.number && c.seq <= s.durable {
		s.answered++
		_ = a.conn.Send(c.frame)
	}
}

// onVerified executes the requests whose signatures held, in the order
// they arrived: a batch checked before the ones ahead of it waits for them
// (else a client's later request could execute first and make the
// earlier one look old).
func (s *Server) onVerified(d verifyDone) {
	d.v.valid = d.valid
	for len(s.running) > 0 && s.running[0].valid != nil {
		v := s.running[0]
		s.running[0] = nil
		s.running = s.running[1:]
		s.executeBatch(v)
	}
	if len(s.running) == 0 {
		s.running = nil
	}
}

func (s *Server) executeBatch(v *verification) {
	for i, a := range v.batch {
		if !v.valid[i] {
			s.log.Debug("dropped request with an invalid signature", "client", a.id)
			continue
		}
		if c := s.cache[a.id]; c != nil && a.req.Number <= c.number {
			s.answerDuplicate(a, c) // a retransmission verified alongside the original
			continue
		}
		s.execute(a)
	}
}

// execute applies one request: the application, the reply cache, the
// block. Its reply waits for the store batch the next flush applies.
func (s *Server) execute(a arrival) {
	res := s.app.Execute(app.CallerID(uint64(a.id)), a.req.Op)
	rep := &msg.Reply{Client: a.id, Number: a.req.Number, Outcome: msg.Executed, Instance: 0, Result: res, From: 0, Primary: 0}
	frame := msg.Marshal(rep)
	seq := s.applied + 1
	s.cache[a.id] = &cached{number: a.req.Number, frame: frame, seq: seq}
	s.replies = append(s.replies, pending{conn: a.conn, frame: frame, seq: seq})
	if s.block == nil {
		s.block = &ledger.Block{Height: s.height + 1, Prev: s.head, Round: s.height + 1}
	}
	s.block.Requests = append(s.block.Requests, a.req)
	s.results = append(s.results, res)
	s.executed++
	if len(s.block.Requests) >= s.maxBlock {
		s.closeBlock()
	}
}

// closeBlock seals the block being filled: its results and the state
// after it, chained to the previous one.
func (s *Server) closeBlock() {
	b := s.block
	b.ResultsDigest = ledger.ResultsDigest(s.results)
	b.StateDigest = msg.Digest(s.app.Digest())
	s.head, s.height = b.Hash(), b.Height
	s.staged = append(s.staged, b)
	s.block, s.results = nil, nil
}

// flush ends a pass: it starts verification batches while cores are free,
// stages this pass's blocks as one store batch, and starts an fsync if
// none is running.
func (s *Server) flush() {
	for len(s.queue) > 0 && len(s.running) < s.cores {
		k := min(len(s.queue), maxVerifyBatch)
		batch := s.queue[:k:k]
		s.queue = s.queue[k:]
		if len(s.queue) == 0 {
			s.queue = nil
		}
		s.verify(batch)
	}
	if s.block != nil {
		s.closeBlock()
	}
	if len(s.staged) > 0 {
		if err := s.store.Apply(&storage.Batch{Blocks: s.staged}); err != nil {
			s.failed = fmt.Errorf("plain: store blocks %d…%d: %w", s.staged[0].Height, s.height, err)
			return
		}
		s.staged = nil
		s.applied++
	}
	if !s.syncing && s.durable < s.applied {
		s.syncing = true
		upTo := s.applied
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			err := s.store.Sync()
			select {
			case s.synced <- syncDone{upTo, err}:
			case <-s.quit:
			}
		}()
	}
}

// verify checks a batch of client signatures on another goroutine, as the
// replica's worker pool does.
func (s *Server) verify(batch []arrival) {
	items := make([]auth.BatchItem, len(batch))
	for i := range batch {
		r := &batch[i].req
		items[i] = auth.BatchItem{Key: s.keys[r.Client], Context: auth.ContextClient, Msg: r.SignedBytes(), Sig: r.Sig}
	}
	v := &verification{batch: batch}
	s.running = append(s.running, v)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		valid := s.verifyBatch(items)
		select {
		case s.verified <- verifyDone{v, valid}:
		case <-s.quit:
		}
	}()
}

// onSynced releases the replies whose batches the fsync made durable; a
// failed fsync stops the server.
func (s *Server) onSynced(d syncDone) {
	s.syncing = false
	if d.err != nil {
		s.failed = fmt.Errorf("plain: fsync: %w", d.err)
		return
	}
	s.durable = d.upTo
	k := 0
	for ; k < len(s.replies) && s.replies[k].seq <= s.durable; k++ {
		_ = s.replies[k].conn.Send(s.replies[k].frame)
	}
	s.replies = s.replies[k:]
	if len(s.replies) == 0 {
		s.replies = nil
	}
}

func (s *Server) close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	close(s.quit)
	errs := []error{s.front.Close()}
	s.wg.Wait()
	if s.failed == nil {
		errs = append(errs, s.store.Sync())
	}
	errs = append(errs, s.store.Close())
	s.log.Info("plain server stopped", "executed", s.executed, "blocks", s.height, "shed", s.shed, "answered_from_cache", s.answered)
	return errors.Join(errs...)
}
