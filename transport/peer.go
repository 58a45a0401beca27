package transport

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// peer is our side of the relationship with one other replica: its send
// queue, which survives reconnections, and the goroutine that owns the
// current connection.
type peer struct {
	t       *Transport
	id      int
	key     ed25519.PublicKey
	addr    string
	dialer  bool        // we dial this peer (our id is lower)
	tlsConf *tls.Config // dial side only
	q       *sendQueue
	rng     *rand.Rand // backoff jitter; used only by run's goroutine
	attempt int        // consecutive reconnect attempts; used only by run

	// Accept side: the listener hands authenticated connections over via
	// pending + connNotify.
	connNotify chan struct{}
	mu         sync.Mutex
	pending    *peerConn
	cur        net.Conn // raw socket being served, closed to supersede it
	everUp     bool
}

// peerConn is an authenticated connection. br may hold bytes already read
// past the hello, so the reader must continue from it.
type peerConn struct {
	raw net.Conn
	tc  *tls.Conn
	br  *bufio.Reader
}

// run owns the peer's connection for the life of the transport: it obtains
// a connection (dialing or waiting for the peer to dial), serves it until
// it breaks, and repeats.
func (p *peer) run() {
	defer p.t.wg.Done()
	for {
		var c *peerConn
		if p.dialer {
			c = p.redial()
		} else {
			c = p.awaitInbound()
		}
		if c == nil {
			return // closing
		}
		up := time.Now()
		p.serve(c)
		if p.t.ctx.Err() != nil {
			return
		}
		// A connection that stayed up for a while resets the backoff; one
		// that dies right away (flapping peer) keeps escalating it.
		if time.Since(up) >= p.t.cfg.BackoffMax {
			p.attempt = 0
		}
	}
}

// redial dials until a connection is authenticated, sleeping with backoff
// between attempts. It returns nil when the transport closes.
func (p *peer) redial() *peerConn {
	for {
		if p.attempt > 0 {
			d := backoff(p.attempt-1, p.t.cfg.BackoffMin, p.t.cfg.BackoffMax, p.rng)
			if !sleepCtx(p.t.ctx, d) {
				return nil
			}
		}
		p.attempt++
		c, err := p.dialOnce()
		if err == nil {
			return c
		}
		if p.t.ctx.Err() != nil {
			return nil
		}
		p.t.log.Debug("dial peer failed", "peer", p.id, "addr", p.addr, "attempt", p.attempt, "err", err)
	}
}

// dialOnce connects, runs TLS with the peer's key pinned, sends our hello
// and waits for the ack, all within HandshakeTimeout.
func (p *peer) dialOnce() (*peerConn, error) {
	t := p.t
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.HandshakeTimeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		t.stats.dialFailures.Add(1)
		return nil, fmt.Errorf("transport: dial replica %d at %s: %w", p.id, p.addr, err)
	}
	if !t.track(raw) {
		raw.Close()
		return nil, ErrClosed
	}
	c, err := clientHandshake(ctx, raw, p.tlsConf, hello{role: roleReplica, id: uint32(t.cfg.ID)})
	if err != nil {
		t.drop(raw)
		if errors.Is(err, ErrKeyMismatch) {
			t.stats.authRejected.Add(1)
			t.log.Warn("peer presented wrong key", "peer", p.id, "addr", p.addr)
		} else {
			t.stats.handshakeFailures.Add(1)
		}
		return nil, fmt.Errorf("transport: handshake with replica %d: %w", p.id, err)
	}
	p.mu.Lock()
	p.cur = raw
	p.mu.Unlock()
	return c, nil
}

// clientHandshake performs the dialing side of TLS + hello on raw. ctx
// bounds the whole exchange: its deadline becomes the socket deadline, and
// cancelling it interrupts a pending read or write.
func clientHandshake(ctx context.Context, raw net.Conn, conf *tls.Config, h hello) (*peerConn, error) {
	if dl, ok := ctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	tc := tls.Client(raw, conf)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	if _, err := tc.Write(encodeHello(h)); err != nil {
		return nil, fmt.Errorf("write hello: %w", err)
	}
	br := bufio.NewReaderSize(tc, readBufSize)
	if err := readAck(br); err != nil {
		return nil, err
	}
	if !stop() {
		return nil, fmt.Errorf("hello: %w", context.Cause(ctx))
	}
	if err := raw.SetDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("clear deadline: %w", err)
	}
	return &peerConn{raw: raw, tc: tc, br: br}, nil
}

// handoff gives an authenticated inbound connection to the peer's run
// goroutine. The newest connection wins: any connection being served or
// waiting is closed, because a peer only dials again when it believes the
// old connection is gone (e.g. it restarted and ours is half open).
func (p *peer) handoff(c *peerConn) {
	p.mu.Lock()
	if p.pending != nil {
		p.t.drop(p.pending.raw)
	}
	p.pending = c
	if p.cur != nil {
		p.cur.Close()
	}
	p.mu.Unlock()
	select {
	case p.connNotify <- struct{}{}:
	default:
	}
}

// awaitInbound waits for the peer to dial us. It returns nil when the
// transport closes.
func (p *peer) awaitInbound() *peerConn {
	for {
		p.mu.Lock()
		if c := p.pending; c != nil {
			p.pending = nil
			p.cur = c.raw
			p.mu.Unlock()
			return c
		}
		p.mu.Unlock()
		select {
		case <-p.connNotify:
		case <-p.t.ctx.Done():
			return nil
		}
	}
}

// serve runs one connection: a reader goroutine delivering inbound frames
// and, on this goroutine, the writer draining the send queue. Whichever
// side fails first closes the socket, which stops the other.
func (p *peer) serve(c *peerConn) {
	t := p.t
	p.mu.Lock()
	reconnect := p.everUp
	p.everUp = true
	p.mu.Unlock()
	t.stats.connects.Add(1)
	if reconnect {
		t.stats.reconnects.Add(1)
	}
	t.log.Info("peer connected", "peer", p.id, "remote", c.raw.RemoteAddr().String(), "reconnect", reconnect)

	readerDone := make(chan struct{})
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		defer close(readerDone)
		defer c.raw.Close()
		p.readLoop(c.br)
	}()
	lost, err := writeLoop(c.tc, p.q, readerDone, t.ctx.Done(), func(frames, bytes int) {
		t.stats.framesSent.Add(uint64(frames))
		t.stats.bytesSent.Add(uint64(bytes))
	})
	t.stats.droppedUnflushed.Add(uint64(lost))
	c.raw.Close()
	<-readerDone
	p.mu.Lock()
	if p.cur == c.raw {
		p.cur = nil
	}
	p.mu.Unlock()
	t.drop(c.raw)
	t.stats.disconnects.Add(1)
	if t.ctx.Err() == nil {
		t.log.Info("peer disconnected", "peer", p.id, "err", err)
	}
}

func (p *peer) readLoop(br *bufio.Reader) {
	t := p.t
	for {
		f, err := ReadFrame(br, t.cfg.MaxFrame)
		if err != nil {
			if errors.Is(err, ErrFrameTooLarge) {
				t.stats.recvTooLarge.Add(1)
				t.log.Warn("peer sent oversized frame, closing", "peer", p.id, "err", err)
			} else if t.ctx.Err() == nil {
				t.log.Debug("peer read ended", "peer", p.id, "err", err)
			}
			return
		}
		t.stats.framesReceived.Add(1)
		t.stats.bytesReceived.Add(uint64(len(f)))
		t.onPeer(p.id, f)
	}
}
