// Package client submits operations to a Braid cluster and returns their
// results once enough replicas vouch for them.
//
// # Protocol
//
// A Client holds one authenticated transport connection per replica (to the
// replica's client_addr, pinned to its configured public key), opened lazily
// the first time the replica is needed and reopened with backoff after a
// failure. A replica that is down or stalls in the handshake never delays
// traffic to the others: every dial runs on its own goroutine.
//
// Submit signs a msg.Request{Client: id, Number: n, Op: op} and sends it,
// as a msg.ClientRequest frame, first to the replica the client believes is
// the primary of its instance (initially msg.PrimaryOf(n, id mod m, 0), later
// the Primary hint of the last accepted reply). If no result is accepted
// within Options.Timeout, the request is re-sent to every replica, and again
// every Timeout, until the context ends. A result is accepted once f+1
// replicas (f = ⌊(n−1)/3⌋) sent replies for (id, n) with byte-identical
// results and the same Outcome and Instance: at least one of them is
// correct, so a result is never accepted on the word of Byzantine replicas
// alone. A reply counts only for the replica at the other end of the link it
// arrived on (its From must name that replica), and each replica counts once
// (its latest reply).
//
// # Instance changes
//
// Under in-place recovery a failed primary keeps its instance and may ignore
// the client forever (paper Section 4.2). After three timeouts on one
// operation, Submit asks another instance to serve the client: it sends, to
// every replica, an instance-change request (msg.InstanceChangeOp) that
// carries the operation and has the same request number. Whichever of the
// two requests executes first is the operation's one execution — the
// change executes the operation it carries whether or not the move is
// granted — and the other is a duplicate that replicas answer from their
// reply cache. So an operation executes at most once however the timeouts
// fall, also when the ignored request was only delayed. If the change goes
// unanswered for three timeouts too, the next instance is asked, again
// under the same number, and so on round all m instances, the client's own
// included (asking to move to where it already is is granted, by the
// instance that serves it). A reply with Outcome msg.Moved tells the client
// which instance serves it now.
//
// # Exactly-once and serialisation
//
// Replicas execute a client's requests only with increasing numbers and
// answer an older one only from a one-entry reply cache, so a client may
// have one request outstanding. Submit therefore serialises: concurrent
// calls on one Client are safe but run one at a time, in no particular
// order. Request numbers are max(last+1, wall-clock nanoseconds), so they
// keep increasing across process restarts as long as the clock does not go
// back; two processes must not use the same client key at the same time.
package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/config"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/transport"
)

// Defaults for zero Options fields.
const (
	DefaultTimeout     = time.Second
	DefaultDialTimeout = 5 * time.Second
)

// Reconnect backoff: the delay after the k-th consecutive failure of a
// replica is min(backoffMin·2^(k−1), backoffMax), jittered into [d/2, d].
const (
	backoffMin = 100 * time.Millisecond
	backoffMax = 5 * time.Second
)

var (
	// ErrNoReplicas means that no replica could be reached: during one
	// Submit every replica's connection attempt failed and none is open.
	// It is also wrapped, next to the context's error, when the context
	// ends while no connection is open.
	ErrNoReplicas = errors.New("client: no replicas reachable")
	// ErrClosed is returned by Submit after Close.
	ErrClosed = errors.New("client: closed")
	// ErrNotAdmitted means the client's key is not the one the cluster
	// configuration lists (clients.keys) for it.
	ErrNotAdmitted = errors.New("client: key not admitted by the cluster configuration")
)

// Options tunes a Client. The zero value is usable.
type Options struct {
	// Timeout is how long a request may go unanswered before it is re-sent
	// to every replica (and then again every Timeout). Default 1s.
	Timeout time.Duration
	// DialTimeout bounds one connection attempt (TCP, TLS and hello) to one
	// replica. Default 5s.
	DialTimeout time.Duration
	// Broadcast sends every request to all replicas at once instead of to
	// the believed primary first. It costs n× the request traffic (and
	// relays among replicas) but does not depend on the primary hint, and
	// lets every replica reply on the first try: replicas answer a client
	// only on a connection it has sent a request on, so with primary-first
	// routing a client's first request is answered by f+1 replicas only
	// after one Timeout. Useful for one-shot clients such as the CLI.
	Broadcast bool
	// Logger receives connection and protocol events; nil discards them.
	Logger *slog.Logger
}

// replica is the client's state for one replica. Guarded by Client.mu.
type replica struct {
	id   msg.ReplicaID
	addr string
	pub  auth.PublicKey

	tc       *transport.Client // open connection, or nil
	dialing  bool
	failures int       // consecutive failures since the last good reply
	retryAt  time.Time // no automatic redial before this
	failedIn uint64    // epoch of the Submit during which the last dial failed
	lastErr  error
}

type inbound struct {
	from msg.ReplicaID
	rep  *msg.Reply
}

// Client submits operations as one admitted client. It is safe for
// concurrent use; Submit calls are serialised (see the package doc).
type Client struct {
	id       msg.ClientID
	key      auth.PrivateKey
	signer   auth.Signer
	n, f     int
	m        uint32
	inPlace  bool // the cluster's failure policy is in-place recovery: move on when ignored
	instance uint32
	changes  uint32 // instance changes asked for so far: the next target rotates
	refused  bool   // the last instance change was refused: the next operation goes straight to another instance
	opts     Options
	log      *slog.Logger

	life   context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	sem     chan struct{} // one Submit at a time; holds lastNum and hint
	lastNum uint64
	hint    msg.ReplicaID

	replies chan inbound
	wake    chan struct{} // a connection attempt failed or a link dropped

	mu     sync.Mutex
	closed bool
	reps   []*replica
	// The outstanding request: its frame (nil if none), whether it goes to
	// every replica or only to target, and the Submit's epoch.
	cur    []byte
	curAll bool
	target msg.ReplicaID
	epoch  uint64
}

// New returns a client with id id and private key key for the cluster cfg.
// It does not connect: connections open when Submit first needs them.
// It fails if cfg's replicas are malformed, or if cfg does not list id in
// clients.keys with key's public key.
func New(cfg *config.Config, id msg.ClientID, key auth.PrivateKey, opts Options) (*Client, error) {
	if cfg == nil {
		return nil, errors.New("client: nil configuration")
	}
	if len(key) != auth.PrivateKeySize {
		return nil, fmt.Errorf("client: private key has %d bytes, want %d", len(key), auth.PrivateKeySize)
	}
	if cfg.N < 1 || len(cfg.Replicas) != cfg.N {
		return nil, fmt.Errorf("client: configuration lists %d replicas for n = %d", len(cfg.Replicas), cfg.N)
	}
	pubs, err := cfg.ReplicaPublicKeys()
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if err := checkAdmitted(cfg, id, key.Public()); err != nil {
		return nil, err
	}
	m := cfg.M
	if m < 1 || m > cfg.N {
		m = cfg.N
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	life, cancel := context.WithCancel(context.Background())
	c := &Client{
		id:       id,
		key:      key,
		signer:   auth.ClientSigner(key),
		n:        cfg.N,
		f:        cfg.F(),
		instance: msg.HomeInstance(id, m),
		m:        uint32(m),
		inPlace:  cfg.FailurePolicy == config.InPlace && m > 1,
		opts:     opts,
		log:      log.With("client", uint64(id)),
		life:     life,
		cancel:   cancel,
		sem:      make(chan struct{}, 1),
		hint:     msg.NoReplica,
		replies:  make(chan inbound, 64),
		wake:     make(chan struct{}, 1),
		reps:     make([]*replica, cfg.N),
	}
	for _, r := range cfg.Replicas {
		if r.ClientAddr == "" {
			cancel()
			return nil, fmt.Errorf("client: replica %d has no client_addr", r.ID)
		}
		c.reps[r.ID] = &replica{id: msg.ReplicaID(r.ID), addr: r.ClientAddr, pub: pubs[r.ID]}
	}
	for i, r := range c.reps {
		if r == nil {
			cancel()
			return nil, fmt.Errorf("client: configuration has no replica with id %d", i)
		}
	}
	return c, nil
}

// checkAdmitted fails unless cfg admits pub as client id.
func checkAdmitted(cfg *config.Config, id msg.ClientID, pub auth.PublicKey) error {
	for i, k := range cfg.Clients.Keys {
		if k.ID != uint64(id) {
			continue
		}
		want, err := auth.ParsePublicKey(k.PublicKey)
		if err != nil {
			return fmt.Errorf("client: clients.keys[%d].public_key: %w", i, err)
		}
		if !want.Equal(pub) {
			return fmt.Errorf("%w: client %d is listed with public key %s, this key is %s", ErrNotAdmitted, id, want, pub)
		}
		return nil
	}
	return fmt.Errorf("%w: client id %d is not in clients.keys", ErrNotAdmitted, id)
}

// ID returns the client's id.
func (c *Client) ID() msg.ClientID { return c.id }

// Submit executes op on the cluster and returns its result once f+1
// replicas sent the same result. It retransmits until ctx is done, then
// returns an error wrapping ctx.Err() (and ErrNoReplicas if no replica
// was connected at that point). It returns an error wrapping ErrNoReplicas
// early if every replica's connection attempt failed, and ErrClosed after
// Close. Calls are serialised per Client: a call waits for earlier ones,
// and honours ctx while it waits.
//
// If ctx ends first, the operation may still execute later; its result is
// then lost, and the next Submit uses a higher request number. Under
// in-place recovery Submit moves the client to another instance when its
// own keeps ignoring it (see the package doc); the operation still
// executes at most once.
func (c *Client) Submit(ctx context.Context, op []byte) ([]byte, error) {
	if len(op) > msg.MaxOpSize {
		return nil, fmt.Errorf("client: operation of %d bytes exceeds the limit of %d", len(op), msg.MaxOpSize)
	}
	if c.inPlace && len(op) > msg.MaxOpSize-msg.InstanceChangeOverhead {
		return nil, fmt.Errorf("client: operation of %d bytes exceeds the limit of %d under in-place recovery (an instance change must be able to carry it)",
			len(op), msg.MaxOpSize-msg.InstanceChangeOverhead)
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("client: waiting for the previous request: %w", ctx.Err())
	case <-c.life.Done():
		return nil, ErrClosed
	}
	defer func() { <-c.sem }()

	num := max(c.lastNum+1, uint64(time.Now().UnixNano()))
	c.lastNum = num
	giveUp := 0
	if c.inPlace {
		giveUp = changeAfter
	}
	// Every request below has number num: the operation itself, then
	// instance changes carrying it. At most one of them executes. After a
	// refused change the instance that ignored us is skipped: the
	// operation goes out as an instance change to the next one at once.
	var res *msg.Reply
	var err error
	stuck := c.inPlace && c.refused
	if !stuck {
		res, stuck, err = c.attempt(ctx, num, op, c.opts.Broadcast, giveUp)
	}
	for stuck {
		// The rotation passes through our own instance too: after a
		// refusal the instances we ask may ignore us while ours works
		// again, and an instance change to the instance we are at is
		// granted at once by the one instance that serves us.
		c.changes++
		target := (c.instance + c.changes) % c.m
		c.log.Info("instance ignores us; asking another to serve us", "from", c.instance, "to", target, "number", num)
		res, stuck, err = c.attempt(ctx, num, msg.InstanceChangeOp(target, op), true, giveUp)
	}
	if err != nil {
		return nil, err
	}
	c.refused = res.Outcome == msg.NotMoved
	return res.Result, nil
}

// changeAfter is how many timeouts in a row make an in-place client move.
const changeAfter = 3

// attempt sends op as request number num and waits for f+1 matching
// replies; with giveUp > 0 it reports stuck after that many timeouts
// instead of waiting forever. The accepted reply may answer another request
// with the same number (the operation, or an instance change carrying it):
// whichever executed.
func (c *Client) attempt(ctx context.Context, num uint64, op []byte, broadcast bool, giveUp int) (*msg.Reply, bool, error) {
	req := msg.Request{Client: c.id, Number: num, Op: op}
	req.Sig = c.signer.Sign(req.SignedBytes())
	frame := msg.Marshal(&msg.ClientRequest{Request: req})

	primary := c.hint
	if primary == msg.NoReplica || int(primary) >= c.n {
		primary = msg.PrimaryOf(c.n, c.instance, 0)
	}

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, false, ErrClosed
	}
	c.epoch++
	c.cur, c.target, c.curAll = frame, primary, false
	if broadcast {
		c.curAll = true
		c.sendAllLocked()
	} else {
		c.sendPrimaryLocked()
	}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.cur = nil
		c.mu.Unlock()
	}()

	timer := time.NewTimer(c.opts.Timeout)
	defer timer.Stop()
	latest := make([]*msg.Reply, c.n) // each replica's latest reply to num
	timeouts := 0
	for {
		select {
		case <-ctx.Done():
			return nil, false, c.ctxError(num, ctx.Err())
		case <-c.life.Done():
			return nil, false, ErrClosed
		case <-timer.C:
			if timeouts++; giveUp > 0 && timeouts >= giveUp {
				return nil, true, nil
			}
			c.log.Debug("request timed out, sending to all replicas", "number", num)
			c.mu.Lock()
			c.curAll = true
			c.sendAllLocked()
			c.mu.Unlock()
			timer.Reset(c.opts.Timeout)
		case <-c.wake:
			if err := c.unreachable(); err != nil {
				return nil, false, err
			}
		case in := <-c.replies:
			rep := in.rep
			if rep.Client != c.id || rep.Number != num {
				continue
			}
			latest[in.from] = rep
			if ok := c.accept(latest, rep); ok {
				if rep.Outcome == msg.Moved && rep.Instance < c.m {
					c.log.Info("served by another instance now", "from", c.instance, "to", rep.Instance)
					c.instance, c.hint = rep.Instance, msg.NoReplica
				}
				return rep, false, nil
			}
		}
	}
}

// sameAnswer reports whether two replies give the same agreed answer:
// outcome, ordering instance and result.
func sameAnswer(a, b *msg.Reply) bool {
	return a.Outcome == b.Outcome && a.Instance == b.Instance && bytes.Equal(a.Result, b.Result)
}

// accept reports whether f+1 replicas' latest replies give want's answer,
// and if so adopts the primary hint most of them give.
func (c *Client) accept(latest []*msg.Reply, want *msg.Reply) bool {
	votes := 0
	hints := make(map[msg.ReplicaID]int)
	for _, r := range latest {
		if r != nil && sameAnswer(r, want) {
			votes++
			if r.Primary != msg.NoReplica && int(r.Primary) < c.n {
				hints[r.Primary]++
			}
		}
	}
	if votes < c.f+1 {
		return false
	}
	best, bestVotes := msg.NoReplica, 0
	for h, v := range hints {
		if v > bestVotes || (v == bestVotes && h < best) {
			best, bestVotes = h, v
		}
	}
	if best != msg.NoReplica {
		c.hint = best
	}
	c.mu.Lock()
	for _, r := range latest {
		if r != nil && sameAnswer(r, want) {
			c.reps[r.From].failures = 0
		}
	}
	c.mu.Unlock()
	return true
}

// unreachable returns an ErrNoReplicas error if, during the current Submit,
// every replica's connection attempt failed and none is open or pending.
func (c *Client) unreachable() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var why []string
	for _, r := range c.reps {
		if r.tc != nil || r.dialing || r.failedIn != c.epoch {
			return nil
		}
		why = append(why, fmt.Sprintf("replica %d (%s): %v", r.id, r.addr, r.lastErr))
	}
	return fmt.Errorf("%w: %s", ErrNoReplicas, strings.Join(why, "; "))
}

func (c *Client) ctxError(num uint64, err error) error {
	c.mu.Lock()
	connected := 0
	var last error
	for _, r := range c.reps {
		if r.tc != nil {
			connected++
		} else if r.lastErr != nil {
			last = r.lastErr
		}
	}
	c.mu.Unlock()
	if connected == 0 {
		if last != nil {
			return fmt.Errorf("client: request %d: %w (last error: %v): %w", num, ErrNoReplicas, last, err)
		}
		return fmt.Errorf("client: request %d: %w: %w", num, ErrNoReplicas, err)
	}
	return fmt.Errorf("client: request %d: no %d matching replies from %d connected replicas: %w", num, c.f+1, connected, err)
}

// Close disconnects from every replica and waits for the client's
// goroutines. Pending and later Submits fail with ErrClosed. It is
// idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.cancel()
	var open []*transport.Client
	for _, r := range c.reps {
		if r.tc != nil {
			open = append(open, r.tc)
			r.tc = nil
		}
	}
	c.mu.Unlock()
	for _, tc := range open {
		tc.Close()
	}
	c.wg.Wait()
	return nil
}
