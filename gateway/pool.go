package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/braid-bft/braid/app/bank"
	"github.com/braid-bft/braid/app/kv"
	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/client"
	"github.com/braid-bft/braid/config"
	"github.com/braid-bft/braid/msg"
)

// Executor runs one operation on the cluster and returns its result. Pool
// is the real one; tests use a local application.
type Executor interface {
	Execute(ctx context.Context, op []byte) ([]byte, error)
}

// ErrBusy means every client of the pool stayed busy until the request's
// context ended: the gateway has more work than keys to submit it with.
var ErrBusy = errors.New("gateway: every cluster client busy")

// Key is one admitted client identity the pool submits as.
type Key struct {
	ID      msg.ClientID
	Private auth.PrivateKey
}

// Pool submits operations through a set of SDK clients, one request in
// flight per client. The SDK allows one outstanding request per client
// (replicas keep one reply per client for exactly-once), so a gateway with
// one key would serialise all its users; with k keys it has k requests in
// flight. An operation takes a free client, submits, and gives it back;
// waiting operations are served in arrival order (a Go channel queues its
// receivers FIFO), and a client given back goes to the end of the line, so
// load rotates over all keys — and over the m instances, as ids mod m are
// the clients' home instances.
//
// Bank ops whose effect depends on the submitting key (bank.CallerBound:
// open makes the caller the owner, only the owner may transfer) all go
// through the pool's lowest-id key, its owner key. Accounts opened through
// the gateway therefore belong to the gateway as one principal, and a
// transfer out of them works whichever client would have been free.
type Pool struct {
	clients []*client.Client
	free    chan *client.Client // every key but the owner's (or only it, for a pool of one)
	owner   chan *client.Client // the owner key
}

// NewPool opens one SDK client per key (none connects before it is used).
// Keys must be distinct admitted clients of cfg, and no other process may
// use them meanwhile (their request numbers would collide).
func NewPool(cfg *config.Config, keys []Key, opts client.Options) (*Pool, error) {
	if len(keys) == 0 {
		return nil, errors.New("gateway: no client keys for the pool")
	}
	keys = slices.SortedFunc(slices.Values(keys), func(a, b Key) int { return cmp.Compare(a.ID, b.ID) })
	p := &Pool{free: make(chan *client.Client, len(keys)), owner: make(chan *client.Client, 1)}
	for i, k := range keys {
		if i > 0 && keys[i-1].ID == k.ID {
			p.Close()
			return nil, fmt.Errorf("gateway: client id %d given twice", k.ID)
		}
		c, err := client.New(cfg, k.ID, k.Private, opts)
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("gateway: client %d: %w", k.ID, err)
		}
		p.clients = append(p.clients, c)
	}
	p.owner <- p.clients[0]
	if len(p.clients) == 1 {
		p.free = p.owner
	}
	for _, c := range p.clients[1:] {
		p.free <- c
	}
	return p, nil
}

// Size is the number of clients: how many requests can be in flight.
func (p *Pool) Size() int { return len(p.clients) }

// IDs are the pool's client ids, ascending.
func (p *Pool) IDs() []msg.ClientID {
	ids := make([]msg.ClientID, len(p.clients))
	for i, c := range p.clients {
		ids[i] = c.ID()
	}
	return ids
}

// OwnerID is the id of the key that owns the gateway's bank accounts.
func (p *Pool) OwnerID() msg.ClientID { return p.clients[0].ID() }

// Execute submits op through a free client (the owner key for
// caller-bound bank ops) and returns the result f+1 replicas agreed on.
// Waiting for a client counts against ctx; if ctx ends first the error
// wraps ErrBusy and ctx.Err().
func (p *Pool) Execute(ctx context.Context, op []byte) ([]byte, error) {
	q := p.free
	if bank.CallerBound(op) {
		q = p.owner
	}
	var c *client.Client
	select {
	case c = <-q:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w (%d clients): %w", ErrBusy, len(p.clients), ctx.Err())
	}
	defer func() { q <- c }()
	return c.Submit(ctx, op)
}

// Warm sends one read (a kv get) through every client at once and
// returns how many were answered before ctx ended. Replicas answer a
// client only on a connection it has sent a request on, so a client's
// first request, sent to its primary alone, is answered by f+1 replicas
// only after one retransmission timeout; warming at start pays that once
// for all clients in parallel instead of once per client in the first
// commands users send. Commands may run meanwhile: a client's requests
// are serialised by the SDK.
func (p *Pool) Warm(ctx context.Context) (int, error) {
	var (
		mu    sync.Mutex
		ok    int
		first error
		wg    sync.WaitGroup
	)
	for _, c := range p.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Submit(ctx, kv.Get(nil))
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				ok++
			} else if first == nil {
				first = err
			}
		}()
	}
	wg.Wait()
	return ok, first
}

// Close closes every client; Execute calls in flight fail with
// client.ErrClosed.
func (p *Pool) Close() error {
	for _, c := range p.clients {
		c.Close()
	}
	return nil
}
