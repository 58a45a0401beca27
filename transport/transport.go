package transport

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for zero Config fields.
const (
	DefaultQueueFrames          = 4096
	DefaultQueueBytes           = 64 << 20
	DefaultClientQueueFrames    = 256
	DefaultClientQueueBytes     = 4 << 20
	DefaultMaxClients           = 1024
	DefaultMaxPendingHandshakes = 64
	DefaultHandshakeTimeout     = 10 * time.Second
	DefaultBackoffMin           = 50 * time.Millisecond
	DefaultBackoffMax           = 2 * time.Second
)

// ErrUnknownPeer is returned by Send for an id that is not a configured
// peer (including our own id).
var ErrUnknownPeer = errors.New("transport: unknown peer")

// Peer is the static description of one replica.
type Peer struct {
	// Addr is the replica's host:port. It is only dialed if the replica's
	// id is higher than ours (see the package doc), but may be set for all.
	Addr string
	// PublicKey is the replica's pinned identity.
	PublicKey ed25519.PublicKey
}

// Config configures a Transport. Zero numeric fields take the defaults
// above.
type Config struct {
	// ID is this replica's id.
	ID int
	// Listen is the address to accept replicas and clients on, e.g.
	// "0.0.0.0:7000" or "127.0.0.1:0" (see Transport.Addr).
	Listen string
	// Peers maps replica id to its address and key. It may include ID
	// itself, in which case its key must match Key.
	Peers map[int]Peer
	// Key is this replica's private key.
	Key ed25519.PrivateKey

	// MaxFrame caps inbound frame payloads (and outbound ones, so we never
	// send what a correctly configured peer would reject).
	MaxFrame int
	// QueueFrames and QueueBytes bound each peer's send queue. QueueBytes
	// counts payload plus 4-byte header and should be at least MaxFrame+4,
	// or the largest frames can never be queued.
	QueueFrames int
	QueueBytes  int
	// ClientQueueFrames and ClientQueueBytes bound each client's reply
	// queue; replies larger than ClientQueueBytes are refused.
	ClientQueueFrames int
	ClientQueueBytes  int
	// MaxClients caps concurrent client connections.
	MaxClients int
	// MaxPendingHandshakes caps inbound connections that have not finished
	// the TLS handshake and hello, so unauthenticated sockets cannot
	// consume unbounded goroutines and memory.
	MaxPendingHandshakes int
	// HandshakeTimeout bounds TCP connect, TLS handshake and hello.
	HandshakeTimeout time.Duration
	// BackoffMin and BackoffMax shape the reconnect backoff: the delay
	// doubles per failed attempt up to BackoffMax, and is jittered into
	// [d/2, d] so replicas restarting together do not redial in lockstep.
	BackoffMin time.Duration
	BackoffMax time.Duration
	// JitterSeed seeds the backoff jitter; zero means random. Tests set it
	// for reproducibility.
	JitterSeed uint64

	// Logger receives connection lifecycle events; nil discards them.
	Logger *slog.Logger
}

// Stats is a snapshot of the transport's counters. Counters are
// cumulative since New except ClientsConnected, which is a gauge.
type Stats struct {
	// Replica traffic. "Sent" counts frames that were flushed to a
	// connection, not frames that were queued.
	FramesSent     uint64
	BytesSent      uint64 // payload bytes, excluding length headers
	FramesReceived uint64
	BytesReceived  uint64

	// Outbound drops, by reason (replica and client traffic).
	DroppedQueueFull uint64 // queue at its frame or byte bound
	DroppedTooLarge  uint64 // frame exceeds MaxFrame or the queue's byte bound
	// DroppedUnflushed counts frames taken off a queue for a connection
	// that failed before they were confirmed flushed: an upper bound on
	// frames lost to disconnects (frames still queued survive reconnects).
	DroppedUnflushed uint64

	// RecvTooLarge counts connections closed because the remote announced
	// a frame longer than MaxFrame.
	RecvTooLarge uint64

	// Connection lifecycle.
	DialFailures      uint64 // TCP connect failures to peers
	HandshakeFailures uint64 // TLS or hello protocol failures and timeouts
	AuthRejected      uint64 // key not pinned for the claimed or dialed id, wrong dial direction
	BusyRejected      uint64 // inbound dropped: too many pending handshakes or clients
	Connects          uint64 // peer connections established (either direction)
	Reconnects        uint64 // of Connects, those to a peer that had been connected before
	Disconnects       uint64 // peer connections that ended

	// Clients.
	ClientsConnected     int64
	ClientFramesReceived uint64
	ClientFramesSent     uint64
}

type counters struct {
	framesSent, bytesSent, framesReceived, bytesReceived              atomic.Uint64
	droppedQueueFull, droppedTooLarge, recvTooLarge, droppedUnflushed atomic.Uint64
	dialFailures, handshakeFailures, authRejected                     atomic.Uint64
	busyRejected, connects, reconnects, disconnects                   atomic.Uint64
	clientsConnected                                                  atomic.Int64
	clientFramesReceived, clientFramesSent                            atomic.Uint64
}

// Transport connects one replica to its peers and serves its clients.
type Transport struct {
	cfg      Config
	log      *slog.Logger
	onPeer   func(from int, frame []byte)
	onClient func(c *ClientConn, frame []byte)

	acceptTLS *tls.Config
	peers     map[int]*peer // immutable after New
	peerIDs   []int         // sorted, for deterministic Broadcast order
	handshake chan struct{} // semaphore of pending inbound handshakes

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	stats  counters

	mu      sync.Mutex
	started bool
	closed  bool
	ln      net.Listener
	conns   map[net.Conn]struct{} // every open raw socket, closed by Close
	clients map[*ClientConn]struct{}
}

// New validates cfg and prepares a transport; nothing touches the network
// until Start. Frames passed to Send before Start are queued.
//
// onPeer is called with every frame received from replica from, and
// onClient with every frame from a client (nil rejects client
// connections). Both run on the connection's reader goroutine: frames from
// one connection are delivered in order, and while a handler runs that
// connection is not read, which pushes back on the sender through TCP.
// Handlers must therefore not block for long (hand off to a bounded channel
// if work is slow), and must return for Close to complete. Handlers own the
// frame slice.
func New(cfg Config, onPeer func(from int, frame []byte), onClient func(c *ClientConn, frame []byte)) (*Transport, error) {
	if onPeer == nil {
		return nil, errors.New("transport: nil peer handler")
	}
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	cert, err := newCertificate(cfg.Key)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Transport{
		cfg:       cfg,
		log:       cfg.Logger.With("replica", cfg.ID),
		onPeer:    onPeer,
		onClient:  onClient,
		acceptTLS: acceptTLSConfig(cert),
		peers:     make(map[int]*peer),
		handshake: make(chan struct{}, cfg.MaxPendingHandshakes),
		ctx:       ctx,
		cancel:    cancel,
		conns:     make(map[net.Conn]struct{}),
		clients:   make(map[*ClientConn]struct{}),
	}
	seed := cfg.JitterSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	for id, pc := range cfg.Peers {
		if id == cfg.ID {
			continue
		}
		p := &peer{
			t:          t,
			id:         id,
			key:        pc.PublicKey,
			addr:       pc.Addr,
			dialer:     cfg.ID < id,
			q:          newSendQueue(cfg.QueueFrames, cfg.QueueBytes),
			connNotify: make(chan struct{}, 1),
			rng:        rand.New(rand.NewPCG(seed, uint64(id))),
		}
		if p.dialer {
			p.tlsConf = dialTLSConfig(cert, pc.PublicKey)
		}
		t.peers[id] = p
		t.peerIDs = append(t.peerIDs, id)
	}
	slices.Sort(t.peerIDs)
	return t, nil
}

func (c *Config) normalize() error {
	if len(c.Key) != ed25519.PrivateKeySize {
		return fmt.Errorf("transport: private key has %d bytes, want %d", len(c.Key), ed25519.PrivateKeySize)
	}
	if c.ID < 0 || c.ID > math.MaxInt32 {
		return fmt.Errorf("transport: replica id %d out of range", c.ID)
	}
	if c.Listen == "" {
		return errors.New("transport: empty listen address")
	}
	for id, p := range c.Peers {
		if id < 0 || id > math.MaxInt32 {
			return fmt.Errorf("transport: peer id %d out of range", id)
		}
		if len(p.PublicKey) != ed25519.PublicKeySize {
			return fmt.Errorf("transport: peer %d public key has %d bytes, want %d", id, len(p.PublicKey), ed25519.PublicKeySize)
		}
		if id == c.ID {
			if !p.PublicKey.Equal(c.Key.Public()) {
				return fmt.Errorf("transport: configured key for own id %d does not match private key", id)
			}
			continue
		}
		if id > c.ID && p.Addr == "" {
			return fmt.Errorf("transport: peer %d has no address but we must dial it", id)
		}
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxFrame, DefaultMaxFrame)
	def(&c.QueueFrames, DefaultQueueFrames)
	def(&c.QueueBytes, DefaultQueueBytes)
	def(&c.ClientQueueFrames, DefaultClientQueueFrames)
	def(&c.ClientQueueBytes, DefaultClientQueueBytes)
	def(&c.MaxClients, DefaultMaxClients)
	def(&c.MaxPendingHandshakes, DefaultMaxPendingHandshakes)
	if uint64(c.MaxFrame) > math.MaxUint32 {
		return fmt.Errorf("transport: MaxFrame %d exceeds the 32-bit length header", c.MaxFrame)
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.BackoffMin <= 0 {
		c.BackoffMin = DefaultBackoffMin
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = DefaultBackoffMax
	}
	if c.BackoffMax < c.BackoffMin {
		c.BackoffMax = c.BackoffMin
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Start listens on Config.Listen and starts dialing higher-id peers.
func (t *Transport) Start() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrClosed
	}
	if t.started {
		return errors.New("transport: already started")
	}
	ln, err := net.Listen("tcp", t.cfg.Listen)
	if err != nil {
		return fmt.Errorf("transport: listen on %s: %w", t.cfg.Listen, err)
	}
	t.started = true
	t.ln = ln
	t.log.Info("transport listening", "addr", ln.Addr().String())
	t.wg.Add(1)
	go t.acceptLoop(ln)
	for _, id := range t.peerIDs {
		p := t.peers[id]
		t.wg.Add(1)
		go p.run()
	}
	return nil
}

// Addr returns the bound listen address, or nil before Start. It is how
// callers learn the port chosen for "127.0.0.1:0".
func (t *Transport) Addr() net.Addr {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ln == nil {
		return nil
	}
	return t.ln.Addr()
}

// Send queues frame for replica to and returns immediately. It fails with
// ErrQueueFull when the peer's queue is at its bound (the frame is dropped
// and counted), so one slow peer never stalls the caller or traffic to
// others. The transport keeps a reference to frame until it is written:
// the caller must not modify it afterwards. Frames queued while the peer is
// disconnected are sent once it reconnects, within the queue bounds.
func (t *Transport) Send(to int, frame []byte) error {
	p, ok := t.peers[to]
	if !ok {
		return fmt.Errorf("transport: send to replica %d: %w", to, ErrUnknownPeer)
	}
	if len(frame) > t.cfg.MaxFrame {
		t.stats.droppedTooLarge.Add(1)
		return fmt.Errorf("transport: send %d bytes to replica %d: %w", len(frame), to, ErrFrameTooLarge)
	}
	if err := p.q.push(frame); err != nil {
		t.countDrop(err)
		return fmt.Errorf("transport: send to replica %d: %w", to, err)
	}
	return nil
}

// Broadcast sends frame to every peer except ourselves. Per-peer failures
// do not stop delivery to the others; they are returned joined.
func (t *Transport) Broadcast(frame []byte) error {
	var errs []error
	for _, id := range t.peerIDs {
		if err := t.Send(id, frame); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (t *Transport) countDrop(err error) {
	switch {
	case errors.Is(err, ErrQueueFull):
		t.stats.droppedQueueFull.Add(1)
	case errors.Is(err, ErrFrameTooLarge):
		t.stats.droppedTooLarge.Add(1)
	}
}

// Close stops listening, closes every connection and waits for all
// goroutines to exit (including running handlers). Queued frames that were
// not yet written are discarded. Close is idempotent.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	ln := t.ln
	conns := make([]net.Conn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	clients := make([]*ClientConn, 0, len(t.clients))
	for c := range t.clients {
		clients = append(clients, c)
	}
	t.mu.Unlock()

	t.cancel()
	var err error
	if ln != nil {
		if cerr := ln.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			err = fmt.Errorf("transport: close listener: %w", cerr)
		}
	}
	// Closing raw sockets (not tls.Conn) unblocks readers and writers
	// immediately; tls.Conn.Close would try to send close_notify, which
	// can block on a peer that does not read.
	for _, c := range conns {
		c.Close()
	}
	for _, c := range clients {
		c.shutdown()
	}
	for _, p := range t.peers {
		p.q.close()
	}
	t.wg.Wait()
	t.log.Info("transport closed")
	return err
}

// Stats returns a snapshot of the counters.
func (t *Transport) Stats() Stats {
	s := &t.stats
	return Stats{
		FramesSent:           s.framesSent.Load(),
		BytesSent:            s.bytesSent.Load(),
		FramesReceived:       s.framesReceived.Load(),
		BytesReceived:        s.bytesReceived.Load(),
		DroppedQueueFull:     s.droppedQueueFull.Load(),
		DroppedTooLarge:      s.droppedTooLarge.Load(),
		DroppedUnflushed:     s.droppedUnflushed.Load(),
		RecvTooLarge:         s.recvTooLarge.Load(),
		DialFailures:         s.dialFailures.Load(),
		HandshakeFailures:    s.handshakeFailures.Load(),
		AuthRejected:         s.authRejected.Load(),
		BusyRejected:         s.busyRejected.Load(),
		Connects:             s.connects.Load(),
		Reconnects:           s.reconnects.Load(),
		Disconnects:          s.disconnects.Load(),
		ClientsConnected:     s.clientsConnected.Load(),
		ClientFramesReceived: s.clientFramesReceived.Load(),
		ClientFramesSent:     s.clientFramesSent.Load(),
	}
}

// Queue is one peer's outbound queue at an instant: frames waiting, and
// the bytes held for the peer (queued or being written; see sendQueue).
type Queue struct {
	Peer   int
	Frames int
	Bytes  int
}

// Queues reports every peer's outbound queue, in peer id order: a metric
// read at scrape time, so it takes each queue's lock briefly and nothing
// else.
func (t *Transport) Queues() []Queue {
	out := make([]Queue, 0, len(t.peerIDs))
	for _, id := range t.peerIDs {
		q := t.peers[id].q
		q.mu.Lock()
		out = append(out, Queue{Peer: id, Frames: len(q.frames), Bytes: q.bytes})
		q.mu.Unlock()
	}
	return out
}

// track registers a raw socket so Close can close it. It returns false
// (and the caller must close c) if the transport is already closed.
func (t *Transport) track(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.conns[c] = struct{}{}
	return true
}

// drop closes and forgets a raw socket.
func (t *Transport) drop(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
	c.Close()
}

func (t *Transport) acceptLoop(ln net.Listener) {
	defer t.wg.Done()
	var delay time.Duration
	for {
		raw, err := ln.Accept()
		if err != nil {
			if t.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Resource exhaustion (e.g. EMFILE) is transient; back off
			// rather than spin, like net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t.log.Warn("accept failed", "err", err, "retry_in", delay)
			if !sleepCtx(t.ctx, delay) {
				return
			}
			continue
		}
		delay = 0
		select {
		case t.handshake <- struct{}{}:
		default:
			t.stats.busyRejected.Add(1)
			t.log.Warn("too many pending handshakes, dropping connection", "remote", raw.RemoteAddr().String())
			raw.Close()
			continue
		}
		if !t.track(raw) {
			raw.Close()
			<-t.handshake
			return
		}
		t.wg.Add(1)
		go t.serveInbound(raw)
	}
}

// serveInbound authenticates an accepted connection and then either hands
// it to the peer's writer (replicas) or serves it as a client connection.
func (t *Transport) serveInbound(raw net.Conn) {
	defer t.wg.Done()
	remote := raw.RemoteAddr().String()
	tc, br, h, cc, err := t.acceptHandshake(raw)
	if err != nil {
		<-t.handshake
		t.drop(raw)
		if t.ctx.Err() == nil {
			t.log.Warn("rejected inbound connection", "remote", remote, "err", err)
		}
		return
	}
	switch h.role {
	case roleReplica:
		<-t.handshake
		p := t.peers[int(h.id)]
		p.handoff(&peerConn{raw: raw, tc: tc, br: br})
	case roleClient:
		<-t.handshake
		cc.serve(br) // runs the reader on this goroutine
	}
}

// acceptHandshake runs the TLS handshake and hello for an inbound socket
// and authorises the claimed identity, all under HandshakeTimeout.
//
// For clients it also registers the ClientConn before acknowledging, so a
// client that is told "accepted" really has a slot.
func (t *Transport) acceptHandshake(raw net.Conn) (_ *tls.Conn, _ *bufio.Reader, _ hello, cc *ClientConn, err error) {
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.HandshakeTimeout)
	defer cancel()
	if dl, ok := ctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	tc := tls.Server(raw, t.acceptTLS)
	if err := tc.HandshakeContext(ctx); err != nil {
		t.stats.handshakeFailures.Add(1)
		return nil, nil, hello{}, nil, fmt.Errorf("tls handshake: %w", err)
	}
	key, err := peerKey(tc.ConnectionState())
	if err != nil { // unreachable: VerifyConnection already checked
		t.stats.handshakeFailures.Add(1)
		return nil, nil, hello{}, nil, err
	}
	br := bufio.NewReaderSize(tc, readBufSize)
	p, err := ReadFrame(br, maxHelloLen)
	if err != nil {
		t.stats.handshakeFailures.Add(1)
		return nil, nil, hello{}, nil, fmt.Errorf("read hello: %w", err)
	}
	h, err := decodeHello(p)
	if err != nil {
		t.stats.handshakeFailures.Add(1)
		return nil, nil, hello{}, nil, err
	}
	switch h.role {
	case roleReplica:
		pr, ok := t.peers[int(h.id)]
		switch {
		case !ok:
			t.stats.authRejected.Add(1)
			return nil, nil, hello{}, nil, fmt.Errorf("hello from unknown replica %d", h.id)
		case !pr.key.Equal(key):
			t.stats.authRejected.Add(1)
			return nil, nil, hello{}, nil, fmt.Errorf("hello claims replica %d: %w", h.id, ErrKeyMismatch)
		case pr.dialer:
			// Only lower ids dial us; accepting this would create a
			// second connection for the pair.
			t.stats.authRejected.Add(1)
			return nil, nil, hello{}, nil, fmt.Errorf("replica %d dialed us but we dial it", h.id)
		}
	case roleClient:
		if t.onClient == nil {
			t.stats.authRejected.Add(1)
			return nil, nil, hello{}, nil, errors.New("client connections are not served")
		}
		cc, err = t.admitClient(raw, tc, key)
		if err != nil {
			t.stats.busyRejected.Add(1)
			return nil, nil, hello{}, nil, err
		}
		admitted := cc // cc is overwritten by the error returns below
		defer func() {
			if err != nil {
				t.removeClient(admitted)
			}
		}()
	}
	if _, err := tc.Write(encodeAck()); err != nil {
		t.stats.handshakeFailures.Add(1)
		return nil, nil, hello{}, nil, fmt.Errorf("write hello ack: %w", err)
	}
	if err := raw.SetDeadline(time.Time{}); err != nil {
		t.stats.handshakeFailures.Add(1)
		return nil, nil, hello{}, nil, fmt.Errorf("clear deadline: %w", err)
	}
	return tc, br, h, cc, nil
}

// sleepCtx sleeps for d or until ctx is done; it reports whether the full
// delay elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// backoff returns the jittered delay before reconnect attempt number
// attempt (0-based): BackoffMin doubled per attempt, capped at BackoffMax,
// then drawn uniformly from [d/2, d].
func backoff(attempt int, lo, hi time.Duration, rng *rand.Rand) time.Duration {
	d := lo
	for i := 0; i < attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	half := d / 2
	return half + time.Duration(rng.Int64N(int64(d-half)+1))
}
