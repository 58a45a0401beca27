package shell

import (
	"github.com/braid-bft/braid/msg"
)

// Ingress. Frames are decoded and their signatures checked off the loop, on
// the Worker; only messages that verified reach the core. A frame identical
// to one that verified before (a retransmission, a re-broadcast view change
// with its thousands of nested signatures) skips the check: the bytes are
// the same, so are the signatures. Client requests that arrive together are
// checked in one batch verification.

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
	cost := Cost{Verifications: 1, Bytes: len(frame)}
	s.worker.Go(cost, func() { m, ok = s.check(frame) }, func() {
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

// check decodes a frame and verifies every signature in it. It runs off the
// loop: it reads only the frame and the shell's immutable crypto.
func (s *Shell) check(frame []byte) (msg.Message, bool) {
	m, err := msg.Unmarshal(frame)
	if err != nil {
		return nil, false
	}
	switch m.(type) {
	case *msg.Fetch, *msg.Blocks:
		return m, true // unsigned: checked against the request and the checkpoint
	}
	if pp, ok := m.(*msg.PrePrepare); ok && len(pp.Batch.Requests) > 1 {
		return m, s.checkBatch(pp)
	}
	return m, msg.Verify(m, s.crypto) == nil
}

// checkBatch checks a pre-prepare's own signature and its client requests'
// with one batch verification.
func (s *Shell) checkBatch(pp *msg.PrePrepare) bool {
	if !s.crypto.Replica(pp.From, msg.SignedBytes(pp), pp.Sig) {
		return false
	}
	items := make([]ClientSig, len(pp.Batch.Requests))
	for i := range pp.Batch.Requests {
		req := &pp.Batch.Requests[i]
		items[i] = ClientSig{Client: req.Client, Msg: req.SignedBytes(), Sig: req.Sig}
	}
	for _, ok := range s.crypto.VerifyClients(items) {
		if !ok {
			return false
		}
	}
	return true
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
	items := make([]ClientSig, len(batch))
	bytes := 0
	for i := range batch {
		req := &batch[i].req
		items[i] = ClientSig{Client: req.Client, Msg: req.SignedBytes(), Sig: req.Sig}
		bytes += len(items[i].Msg)
	}
	var valid []bool
	s.worker.Go(Cost{Verifications: len(items), Bytes: bytes}, func() { valid = s.crypto.VerifyClients(items) }, func() {
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
