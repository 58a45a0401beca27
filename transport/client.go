package transport

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
)

// ClientConn is a replica's view of one connected client. The replica
// receives its frames through the client handler passed to New and replies
// with Send. It is safe for concurrent use.
type ClientConn struct {
	t    *Transport
	key  ed25519.PublicKey
	raw  net.Conn
	tc   *tls.Conn
	q    *sendQueue
	stop chan struct{}
	once sync.Once
}

// admitClient registers a new client connection, enforcing MaxClients.
func (t *Transport) admitClient(raw net.Conn, tc *tls.Conn, key ed25519.PublicKey) (*ClientConn, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrClosed
	}
	if len(t.clients) >= t.cfg.MaxClients {
		return nil, fmt.Errorf("transport: client limit %d reached", t.cfg.MaxClients)
	}
	c := &ClientConn{
		t:    t,
		key:  key,
		raw:  raw,
		tc:   tc,
		q:    newSendQueue(t.cfg.ClientQueueFrames, t.cfg.ClientQueueBytes),
		stop: make(chan struct{}),
	}
	t.clients[c] = struct{}{}
	t.stats.clientsConnected.Add(1)
	return c, nil
}

func (t *Transport) removeClient(c *ClientConn) {
	t.mu.Lock()
	_, ok := t.clients[c]
	delete(t.clients, c)
	t.mu.Unlock()
	if ok {
		t.stats.clientsConnected.Add(-1)
	}
	c.shutdown()
}

// serve runs the client's writer goroutine and, on the calling goroutine,
// its reader, until either fails or the transport closes.
func (c *ClientConn) serve(br *bufio.Reader) {
	t := c.t
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		lost, err := writeLoop(c.tc, c.q, c.stop, t.ctx.Done(), func(frames, _ int) {
			t.stats.clientFramesSent.Add(uint64(frames))
		})
		t.stats.droppedUnflushed.Add(uint64(lost))
		if err != nil {
			t.log.Debug("client write ended", "remote", c.raw.RemoteAddr().String(), "err", err)
		}
		c.shutdown()
	}()
	for {
		f, err := ReadFrame(br, t.cfg.MaxFrame)
		if err != nil {
			if errors.Is(err, ErrFrameTooLarge) {
				t.stats.recvTooLarge.Add(1)
				t.log.Warn("client sent oversized frame, closing", "remote", c.raw.RemoteAddr().String(), "err", err)
			}
			break
		}
		t.stats.clientFramesReceived.Add(1)
		t.onClient(c, f)
	}
	t.removeClient(c)
	t.drop(c.raw)
}

// PublicKey is the key the client proved possession of in the TLS
// handshake; it is the client's identity.
func (c *ClientConn) PublicKey() ed25519.PublicKey { return c.key }

// RemoteAddr is the client's network address (informational only).
func (c *ClientConn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }

// Send queues a reply without blocking. It returns ErrQueueFull if the
// client is not reading fast enough and ErrClosed once the connection is
// gone. The caller must not modify frame afterwards.
func (c *ClientConn) Send(frame []byte) error {
	t := c.t
	if len(frame) > t.cfg.MaxFrame {
		t.stats.droppedTooLarge.Add(1)
		return fmt.Errorf("transport: reply of %d bytes: %w", len(frame), ErrFrameTooLarge)
	}
	if err := c.q.push(frame); err != nil {
		t.countDrop(err)
		return fmt.Errorf("transport: reply to client %s: %w", c.raw.RemoteAddr(), err)
	}
	return nil
}

// Close disconnects the client. Queued replies are discarded.
func (c *ClientConn) Close() error {
	c.shutdown()
	return nil
}

func (c *ClientConn) shutdown() {
	c.once.Do(func() {
		c.q.close() // before stop: once stop is observed, Send must fail
		close(c.stop)
		c.raw.Close()
	})
}

// Client is a client's connection to one replica.
type Client struct {
	raw      net.Conn
	tc       *tls.Conn
	maxFrame int
	q        *sendQueue
	recv     chan []byte
	stop     chan struct{}
	wg       sync.WaitGroup

	once sync.Once
	mu   sync.Mutex
	err  error // why the connection ended
}

// Client-side queue bounds. A client has one connection, so these can be
// generous relative to the replica's per-client budget.
const (
	clientSendFrames = 1024
	clientRecvFrames = 256
)

// Dial connects to the replica at addr, whose key is pinned to serverKey,
// authenticating as clientKey. maxFrame caps frames in both directions
// (zero means DefaultMaxFrame). ctx bounds only connection setup, which is
// additionally capped at DefaultHandshakeTimeout.
func Dial(ctx context.Context, addr string, serverKey ed25519.PublicKey, clientKey ed25519.PrivateKey, maxFrame int) (*Client, error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultHandshakeTimeout)
	defer cancel()
	if len(serverKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("transport: server key has %d bytes, want %d", len(serverKey), ed25519.PublicKeySize)
	}
	if len(clientKey) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("transport: client key has %d bytes, want %d", len(clientKey), ed25519.PrivateKeySize)
	}
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	cert, err := newCertificate(clientKey)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("transport: dial %s: %w", addr, err)
	}
	pc, err := clientHandshake(ctx, raw, dialTLSConfig(cert, serverKey), hello{role: roleClient})
	if err != nil {
		raw.Close()
		return nil, fmt.Errorf("transport: handshake with %s: %w", addr, err)
	}
	c := &Client{
		raw:      raw,
		tc:       pc.tc,
		maxFrame: maxFrame,
		q:        newSendQueue(clientSendFrames, max(2*(maxFrame+frameHeaderLen), 1<<20)),
		recv:     make(chan []byte, clientRecvFrames),
		stop:     make(chan struct{}),
	}
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		_, err := writeLoop(c.tc, c.q, c.stop, nil, nil)
		if err == nil {
			err = ErrClosed
		}
		c.shutdown(err)
	}()
	go func() {
		defer c.wg.Done()
		for {
			f, err := ReadFrame(pc.br, c.maxFrame)
			if err != nil {
				c.shutdown(fmt.Errorf("transport: read from %s: %w", addr, err))
				return
			}
			select {
			case c.recv <- f:
			case <-c.stop:
				return
			}
		}
	}()
	return c, nil
}

// Send queues frame without blocking; it returns ErrQueueFull if the
// replica is not keeping up. The caller must not modify frame afterwards.
func (c *Client) Send(frame []byte) error {
	if len(frame) > c.maxFrame {
		return fmt.Errorf("transport: send %d bytes: %w", len(frame), ErrFrameTooLarge)
	}
	if err := c.q.push(frame); err != nil {
		if errors.Is(err, ErrClosed) {
			return c.closeErr()
		}
		return fmt.Errorf("transport: send: %w", err)
	}
	return nil
}

// Recv returns the next frame from the replica, blocking until one
// arrives, ctx is done, or the connection ends (then it returns the reason,
// e.g. wrapping io.EOF, or ErrClosed after Close). Frames that arrived
// before the connection ended are still returned first.
func (c *Client) Recv(ctx context.Context) ([]byte, error) {
	select {
	case f := <-c.recv:
		return f, nil
	default:
	}
	select {
	case f := <-c.recv:
		return f, nil
	case <-c.stop:
		select {
		case f := <-c.recv:
			return f, nil
		default:
			return nil, c.closeErr()
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close disconnects and waits for the client's goroutines to exit.
func (c *Client) Close() error {
	c.shutdown(ErrClosed)
	c.wg.Wait()
	return nil
}

func (c *Client) shutdown(err error) {
	c.once.Do(func() {
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		c.q.close() // before stop: once stop is observed, Send must fail
		close(c.stop)
		c.raw.Close()
	})
}

func (c *Client) closeErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}
