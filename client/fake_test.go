package client

import (
	"crypto/ed25519"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/config"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/transport"
)

// guard bounds every wait in these tests; it is a failure guard only.
const guard = 20 * time.Second

// mode is how a fake replica treats client requests.
type mode int

const (
	// honest: registers the client's connection, orders new requests for
	// the whole fake cluster (every honest replica executes them and replies
	// on the connection it has for the client), and answers duplicates from
	// its one-entry reply cache — the replica-side protocol.
	honest mode = iota
	// silent: records requests, never answers.
	silent
	// custom: records requests, then calls the replica's handler.
	custom
)

// received is a request a fake replica got, in global arrival order.
type received struct {
	replica int
	req     msg.Request
	seq     int
}

// fakeCluster is n in-process "replicas": transport listeners that speak the
// client protocol. Agreement is modelled by a cluster-wide lock.
type fakeCluster struct {
	t       testing.TB
	cfg     *config.Config
	reps    []*fakeReplica
	clients map[msg.ClientID]auth.PrivateKey

	mu      sync.Mutex
	seq     int
	hint    msg.ReplicaID // Primary hint in honest replies
	arrived chan received // every received request (buffered)
}

type fakeReplica struct {
	id   int
	cl   *fakeCluster
	tr   *transport.Transport
	key  auth.PrivateKey
	mode mode
	// handler is called for custom replicas (under cl.mu).
	handler func(fr *fakeReplica, c *transport.ClientConn, req msg.Request)

	// Under cl.mu.
	conns    map[msg.ClientID]*transport.ClientConn
	last     map[msg.ClientID]uint64
	cache    map[msg.ClientID]*msg.Reply
	got      []msg.Request
	executed []uint64
}

// resultOf is the deterministic result honest replicas compute.
func resultOf(op []byte) []byte { return append([]byte("result:"), op...) }

// newFakeCluster starts n fake replicas with the given modes (missing
// entries are honest) and a configuration admitting clients ids 0..9.
func newFakeCluster(t testing.TB, n int, modes map[int]mode) *fakeCluster {
	t.Helper()
	cl := &fakeCluster{
		t:       t,
		cfg:     config.Default(n, n),
		clients: map[msg.ClientID]auth.PrivateKey{},
		hint:    msg.NoReplica,
		arrived: make(chan received, 4096),
	}
	for i := range n {
		_, key, err := auth.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		fr := &fakeReplica{
			id: i, cl: cl, key: key, mode: modes[i],
			conns: map[msg.ClientID]*transport.ClientConn{},
			last:  map[msg.ClientID]uint64{},
			cache: map[msg.ClientID]*msg.Reply{},
		}
		tr, err := transport.New(transport.Config{ID: i, Listen: "127.0.0.1:0", Key: ed25519.PrivateKey(key)},
			func(int, []byte) {}, fr.onClient)
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		fr.tr = tr
		cl.reps = append(cl.reps, fr)
		cl.cfg.Replicas[i].ClientAddr = tr.Addr().String()
		cl.cfg.Replicas[i].PublicKey = auth.MarshalPublicKey(key.Public())
	}
	for j := range 10 {
		pub, priv, err := auth.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		cl.clients[msg.ClientID(j)] = priv
		cl.cfg.Clients.Keys = append(cl.cfg.Clients.Keys, config.ClientKey{ID: uint64(j), PublicKey: auth.MarshalPublicKey(pub)})
	}
	if err := cl.cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cl
}

// client returns a Client with id id on the cluster, closed at cleanup.
func (cl *fakeCluster) client(id msg.ClientID, opts Options) *Client {
	cl.t.Helper()
	c, err := New(cl.cfg, id, cl.clients[id], opts)
	if err != nil {
		cl.t.Fatal(err)
	}
	cl.t.Cleanup(func() { c.Close() })
	return c
}

func (fr *fakeReplica) onClient(c *transport.ClientConn, frame []byte) {
	cr, ok := msg.UnmarshalAs[*msg.ClientRequest](frame)
	if !ok {
		return
	}
	req := cr.Request
	cl := fr.cl
	priv, ok := cl.clients[req.Client]
	if !ok || !ed25519.PublicKey(c.PublicKey()).Equal(ed25519.PublicKey(priv.Public())) ||
		!auth.Verify(priv.Public(), auth.ContextClient, req.SignedBytes(), req.Sig) {
		cl.t.Errorf("replica %d: request from client %d with a bad key or signature", fr.id, req.Client)
		return
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	fr.got = append(fr.got, req)
	cl.seq++
	select {
	case cl.arrived <- received{replica: fr.id, req: req, seq: cl.seq}:
	default:
		cl.t.Errorf("arrival log full")
	}
	switch fr.mode {
	case silent:
	case custom:
		fr.handler(fr, c, req)
	case honest:
		fr.conns[req.Client] = c
		if req.Number <= fr.last[req.Client] {
			if rep := fr.cache[req.Client]; rep != nil && rep.Number == req.Number {
				fr.send(c, rep)
			}
			return
		}
		for _, o := range cl.reps {
			if o.mode == honest {
				o.executeLocked(req)
			}
		}
	}
}

// executeLocked executes req if new and replies on the client's connection.
func (fr *fakeReplica) executeLocked(req msg.Request) {
	if req.Number <= fr.last[req.Client] {
		return
	}
	fr.last[req.Client] = req.Number
	fr.executed = append(fr.executed, req.Number)
	rep := &msg.Reply{Client: req.Client, Number: req.Number, Primary: fr.cl.hint, Result: resultOf(req.Op), From: msg.ReplicaID(fr.id)}
	fr.cache[req.Client] = rep
	if c := fr.conns[req.Client]; c != nil {
		fr.send(c, rep)
	}
}

func (fr *fakeReplica) send(c *transport.ClientConn, m msg.Message) {
	if err := c.Send(msg.Marshal(m)); err != nil {
		fr.cl.t.Logf("replica %d: send: %v", fr.id, err)
	}
}

// requests returns the requests replica i received so far.
func (cl *fakeCluster) requests(i int) []msg.Request {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return append([]msg.Request(nil), cl.reps[i].got...)
}

// waitArrival waits until a request arrives at a replica for which match
// holds, and returns it.
func (cl *fakeCluster) waitArrival(what string, match func(received) bool) received {
	cl.t.Helper()
	timeout := time.After(guard)
	for {
		select {
		case r := <-cl.arrived:
			if match(r) {
				return r
			}
		case <-timeout:
			cl.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// blackhole returns the address of a listener that accepts TCP connections
// and never answers, so a TLS handshake with it stalls.
func blackhole(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

func op(format string, args ...any) []byte { return fmt.Appendf(nil, format, args...) }
