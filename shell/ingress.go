package shell

import (
	"github.com/braid-bft/braid/msg"
)

// Ingress. Frames are decoded and their signatures checked off the loop, on
// the Worker; only messages that verified reach the core. A frame identical
// to one that verified before (a retransmission, a re-broadcast view change
// with its thousands of nested signatures) skips the check: the bytes are
// the same, so are the signatures. A signature verified before, inside any
// message, is not verified again (sigCache). Client requests that arrive
// together are checked in one batch verification.

// clientArrival is a client request waiting for verification.
type clientArrival struct {
	conn ClientConn
	req  msg.Request
}

// maxClientBatch bounds one batch verification of client requests, so a
// burst spreads over several workers.
const maxClientBatch = 256

// OnPeer takes a frame from replica from.
func (s *Shell) OnPeer(from msg.ReplicaID, frame []byte) {
	if s.failed != nil || int(from) >= s.node.Config().N || from == s.id {
		return
	}
	d := frameDigest(frame)
	if s.verified.has(d) {
		if m, err := msg.Unmarshal(frame); err == nil {
			s.deliver(from, m)
		}
		return
	}
	var (
		m  msg.Message
		ok bool
	)
	s.worker.Go(func() Cost {
		var c Cost
		m, ok, c = s.check(frame)
		return c
	}, func() {
		if s.failed != nil {
			return
		}
		if !ok {
			if m != nil {
				s.charge(from, m)
			}
			return
		}
		s.verified.add(d)
		s.deliver(from, m)
	})
}

// check decodes a frame and verifies every signature in it, skipping those
// verified before. It runs off the loop: it reads only the frame, the
// shell's immutable crypto and the signature cache (which locks).
func (s *Shell) check(frame []byte) (msg.Message, bool, Cost) {
	cost := Cost{Bytes: len(frame)}
	m, err := msg.Unmarshal(frame)
	if err != nil {
		return nil, false, cost
	}
	switch m.(type) {
	case *msg.Fetch, *msg.Blocks:
		return m, true, cost // unsigned: checked against the request and the checkpoint
	}
	ok, n := s.sigs.verify(s.crypto, msg.Signatures(m))
	cost.Verifications = n
	return m, ok, cost
}

// charge counts an invalid signature against the replica that sent it.
func (s *Shell) charge(from msg.ReplicaID, m msg.Message) {
	s.charged[from]++
	if pp, ok := m.(*msg.PrePrepare); ok && len(pp.Batch.Requests) > 1 {
		s.log.Warn("pre-prepare carries an invalid signature; dropped and charged to the sender",
			"from", from, "charged", s.charged[from])
		return
	}
	s.log.Debug("dropped message with an invalid signature", "from", from, "kind", m.Kind())
}

// deliver hands a verified peer message to the core or the transfer code.
func (s *Shell) deliver(from msg.ReplicaID, m msg.Message) {
	switch x := m.(type) {
	case *msg.Fetch:
		s.serveFetch(from, x)
	case *msg.Blocks:
		s.onBlocks(from, x)
	default:
		s.node.Step(from, m)
	}
}

// OnClient takes a frame from a client connection. A request is admitted
// only for the client id the connection authenticated as; its signature is
// checked with the others that arrived in the same pass.
func (s *Shell) OnClient(c ClientConn, frame []byte) {
	if s.failed != nil {
		return
	}
	m, err := msg.Unmarshal(frame)
	if err != nil {
		return
	}
	cr, ok := m.(*msg.ClientRequest)
	if !ok || cr.Request.Client != c.Client() {
		s.log.Debug("dropped client frame: not a request for the connection's client id", "client", c.Client())
		return
	}
	s.clientQueue = append(s.clientQueue, clientArrival{conn: c, req: cr.Request})
	if len(s.clientQueue) >= maxClientBatch {
		s.verifyClients()
	}
}

// verifyClients submits the queued client requests for one batch check.
func (s *Shell) verifyClients() {
	if len(s.clientQueue) == 0 {
		return
	}
	batch := s.clientQueue
	s.clientQueue = nil
	items := make([]msg.Signature, len(batch))
	bytes := 0
	for i := range batch {
		req := &batch[i].req
		items[i] = msg.Signature{Client: true, ClientID: req.Client, Kind: msg.KindRequest, Payload: req.SignedBytes(), Sig: req.Sig}
		bytes += len(items[i].Payload)
	}
	var valid []bool
	s.worker.Go(func() Cost {
		valid = s.crypto.VerifyAll(items)
		s.sigs.remember(items, valid) // the same requests come back inside pre-prepares and view changes
		return Cost{Verifications: len(items), Bytes: bytes}
	}, func() {
		if s.failed != nil {
			return
		}
		for i, a := range batch {
			if i < len(valid) && valid[i] {
				s.onRequest(a.conn, a.req)
			}
		}
	})
}

// onRequest answers a duplicate from the reply cache and hands a new
// request to the core.
func (s *Shell) onRequest(c ClientConn, req msg.Request) {
	s.conns[req.Client] = c
	if req.Number <= s.table.last(req.Client) {
		if rep := s.table[req.Client]; rep != nil && rep.Number == req.Number {
			s.send(output{reply: rep, frame: msg.Marshal(rep)})
		}
		return
	}
	s.node.Request(req)
}
