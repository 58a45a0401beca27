package client

// Connections to the replicas: sending the outstanding request, dialling
// with jittered backoff, reading replies, and marking a replica down.

import (
	"context"
	"crypto/ed25519"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/transport"
)

// sendPrimaryLocked sends the outstanding request to its target, dialing
// it if needed; if the target cannot be tried now, to every replica.
func (c *Client) sendPrimaryLocked() {
	r := c.reps[c.target]
	switch {
	case r.tc != nil:
		c.sendLocked(r)
	case r.dialing:
		// Sent when the connection is up (or broadcast if it fails).
	case !time.Now().Before(r.retryAt):
		c.dialLocked(r)
	default:
		c.curAll = true
		c.sendAllLocked()
	}
}

// sendAllLocked sends the outstanding request to every replica it can,
// starting connection attempts to the others whose backoff has passed (or
// to all of them if no connection is open or pending).
func (c *Client) sendAllLocked() {
	alive := false
	for _, r := range c.reps {
		if r.tc != nil || r.dialing {
			alive = true
			break
		}
	}
	now := time.Now()
	for _, r := range c.reps {
		switch {
		case r.tc != nil:
			c.sendLocked(r)
		case r.dialing:
		case !alive || !now.Before(r.retryAt):
			c.dialLocked(r)
		}
	}
}

// sendLocked queues the outstanding request on r's open connection.
func (c *Client) sendLocked(r *replica) {
	err := r.tc.Send(c.cur)
	if err == nil {
		return
	}
	if errors.Is(err, transport.ErrQueueFull) {
		c.log.Debug("send queue full, dropping", "replica", r.id)
		return
	}
	c.downLocked(r, r.tc, err)
}

// dialLocked starts a connection attempt to r.
func (c *Client) dialLocked(r *replica) {
	if c.closed {
		return
	}
	r.dialing = true
	c.wg.Add(1)
	go c.dial(r)
}

func (c *Client) dial(r *replica) {
	defer c.wg.Done()
	ctx, cancel := context.WithTimeout(c.life, c.opts.DialTimeout)
	tc, err := transport.Dial(ctx, r.addr, ed25519.PublicKey(r.pub), ed25519.PrivateKey(c.key), 0)
	cancel()
	c.mu.Lock()
	r.dialing = false
	if err != nil {
		r.failedIn = c.epoch
		c.failLocked(r, err)
		c.mu.Unlock()
		c.log.Debug("cannot connect to replica", "replica", r.id, "addr", r.addr, "err", err)
		c.poke()
		return
	}
	if c.closed {
		c.mu.Unlock()
		tc.Close()
		return
	}
	c.log.Debug("connected to replica", "replica", r.id, "addr", r.addr)
	r.tc = tc
	c.wg.Add(1)
	go c.read(r, tc)
	if c.cur != nil && (c.curAll || c.target == r.id) {
		c.sendLocked(r)
	}
	c.mu.Unlock()
}

// read delivers r's replies to Submit until the connection ends.
func (c *Client) read(r *replica, tc *transport.Client) {
	defer c.wg.Done()
	defer tc.Close()
	for {
		frame, err := tc.Recv(c.life)
		if err != nil {
			c.mu.Lock()
			c.downLocked(r, tc, err)
			c.mu.Unlock()
			c.poke()
			return
		}
		m, err := msg.Unmarshal(frame)
		if err != nil {
			c.log.Debug("dropped malformed frame", "replica", r.id, "err", err)
			continue
		}
		rep, ok := m.(*msg.Reply)
		if !ok {
			c.log.Debug("dropped unexpected message", "replica", r.id, "kind", m.Kind())
			continue
		}
		if rep.From != r.id {
			c.log.Warn("dropped reply claiming another sender", "replica", r.id, "from", rep.From)
			continue
		}
		select {
		case c.replies <- inbound{from: r.id, rep: rep}:
		case <-c.life.Done():
			return
		}
	}
}

// downLocked forgets r's connection tc after err, if it is still r's.
func (c *Client) downLocked(r *replica, tc *transport.Client, err error) {
	if r.tc != tc {
		return
	}
	r.tc = nil
	if c.closed {
		return
	}
	c.log.Debug("connection to replica lost", "replica", r.id, "err", err)
	c.failLocked(r, err)
	// The connection's reader goroutine closes tc: a failed Send means the
	// transport already shut it down, so its Recv fails too.
}

// failLocked records a failure of r and, if the outstanding request was
// meant for r alone, sends it to everyone instead.
func (c *Client) failLocked(r *replica, err error) {
	r.failures++
	r.lastErr = err
	r.retryAt = time.Now().Add(backoff(r.failures))
	if c.cur != nil && !c.curAll && c.target == r.id {
		c.curAll = true
		c.sendAllLocked()
	}
}

func (c *Client) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// backoff is the jittered delay after k consecutive failures.
func backoff(k int) time.Duration {
	d := backoffMax
	if k < 16 {
		d = min(backoffMin<<max(k-1, 0), backoffMax)
	}
	return d/2 + rand.N(d/2+1)
}
