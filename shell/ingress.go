package shell

import (
	"github.com/braid-bft/braid/msg"
)

// Ingress. Frames are decoded and their signatures checked off the loop, on
// the Worker, the frames of one pass in one batch; only messages that
// verified reach the core. A frame identical
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

// Client admission. Clients can offer more than the cluster verifies; what
// it cannot verify must wait where it does not stand in front of the
// replicas' own messages. At most ClientLanes(cores) client batches are on
// the workers at once — the rest of the workers' time goes to peer frames,
// which carry the decisions that drain the backlog — and at most
// maxClientBacklog requests wait for a batch; beyond that a request is shed
// (counted in Stats) and its client retries. Without this an overloaded
// replica queued every client request ahead of the pre-prepares and
// commits, decided nothing for seconds, and every instance changed view at
// once: throughput fell from capacity to a third (docs/benchmarks.md,
// overload). Two kinds of request skip verification altogether: one the
// replica has answered (answered again from the reply cache; the
// connection authenticated its client) and one whose signature verified
// before (a client's retry).
const maxClientBacklog = 8 * maxClientBatch

// ClientLanes is how many client batches a replica with this many
// verification cores checks at once: half its cores, at least one, so
// the other half is always free for its peers' votes. With one lane on
// 16 cores a primary verified its clients on one core while fifteen
// idled, and PBFT's single primary was bound by that lane
// (docs/benchmarks.md, session 11); a 2-core replica keeps the one lane
// the overload scenario was tuned with.
func ClientLanes(cores int) int { return max(1, cores/2) }

// Stats counts what ingress did with client requests, and the peers'
// Fetches it dropped.
type Stats struct {
	ClientShed     uint64 // dropped unverified: the backlog was full
	ClientAnswered uint64 // answered from the reply cache without verification
	ClientKnown    uint64 // signature verified before: not verified again
	// FetchOverBudget counts Fetches dropped because their peer had spent
	// its answer budget (transfer.go, fetchBudget).
	FetchOverBudget uint64
}

// peerArrival is a peer frame waiting for verification.
type peerArrival struct {
	from  msg.ReplicaID
	frame []byte
	d     [32]byte
}

// Verification jobs wait in the shell, in arrival order, for a free core:
// at most Worker.Cores() of them are on the workers at once. Peer frames
// that arrive while the cores are busy join the last waiting job if it is
// a batch of peer frames, so a busy replica checks its peers' votes in
// batches of dozens — a batch verification costs about half as much per
// signature as checking one alone (docs/costs) — and an idle one checks a
// lone frame at once. The order of jobs is what the workers' own queue
// gave before (client batches keep their place among the peers' frames);
// only frames merge. Before, every pass of the loop made a job of its one
// or two frames: at n = 32 most peer signatures were checked alone, and
// the workers' queue held 80 ms of single checks ahead of every vote
// (docs/benchmarks.md, session 10). Tried and dropped: limiting only the
// peer jobs (client batches then took a core of their own whenever one
// completed, and an overloaded cluster's votes waited past the progress
// timeout), and a lane that checks votes before pre-prepares (pre-prepares
// starved until an instance lagged σ rounds).
//
// maxPeerBatch and maxPeerBatchBytes bound one batch of peer frames — the
// bytes so that a batch of pre-prepares does not hold a core for tens of
// milliseconds (and batches of about a hundred signatures are the cheapest
// per signature, docs/costs); past maxWaitingJobs jobs go to the workers
// regardless, whose own bounded queue then pushes back on the loop.
const (
	maxPeerBatch      = 64
	maxPeerBatchBytes = 32 << 10
	maxWaitingJobs    = 1024
)

// waitingJob is a verification waiting for a core: a batch of peer frames
// (open to more while it waits) or a client batch.
type waitingJob struct {
	peers  []peerArrival
	bytes  int
	client []clientArrival
}

// OnPeer takes a frame from replica from; it is checked with the frames
// that arrive with it or while the cores are busy (dispatch).
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
	a := peerArrival{from: from, frame: frame, d: d}
	if k := len(s.waiting) - 1; k >= 0 && s.waiting[k].client == nil && len(s.waiting[k].peers) < maxPeerBatch &&
		s.waiting[k].bytes+len(frame) <= maxPeerBatchBytes {
		s.waiting[k].peers = append(s.waiting[k].peers, a)
		s.waiting[k].bytes += len(frame)
		return
	}
	s.waiting = append(s.waiting, waitingJob{peers: []peerArrival{a}, bytes: len(frame)})
	if len(s.waiting) >= maxWaitingJobs {
		s.dispatch()
	}
}

// peerFramesWaiting counts the peer frames in waiting jobs (Status).
func (s *Shell) peerFramesWaiting() int {
	k := 0
	for _, j := range s.waiting {
		k += len(j.peers)
	}
	return k
}

// dispatch submits waiting jobs in order, one per free core (all of them
// once maxWaitingJobs wait).
func (s *Shell) dispatch() {
	for len(s.waiting) > 0 && (s.running < s.cores || len(s.waiting) >= maxWaitingJobs) {
		j := s.waiting[0]
		s.waiting[0] = waitingJob{}
		s.waiting = s.waiting[1:]
		if len(s.waiting) == 0 {
			s.waiting = nil // let the backing array go
		}
		s.running++
		if j.client != nil {
			s.verifyClientBatch(j.client)
		} else {
			s.verifyPeerBatch(j.peers)
		}
	}
}

func (s *Shell) verifyPeerBatch(batch []peerArrival) {
	var (
		ms []msg.Message
		ok []bool
	)
	s.worker.Go(func() Cost {
		var c Cost
		ms, ok, c = s.checkAll(batch)
		return c
	}, func() {
		s.running--
		if s.failed != nil {
			return
		}
		for i, a := range batch {
			if !ok[i] {
				if ms[i] != nil {
					s.charge(a.from, ms[i])
				}
				continue
			}
			s.verified.add(a.d)
			s.deliver(a.from, ms[i])
		}
	})
}

// checkAll decodes frames and verifies every signature in them, skipping
// those verified before, in one batch: a frame is good when all of its
// signatures hold. It runs off the loop: it reads only the frames, the
// shell's immutable crypto and the signature cache (which locks).
func (s *Shell) checkAll(batch []peerArrival) ([]msg.Message, []bool, Cost) {
	var cost Cost
	ms := make([]msg.Message, len(batch))
	ok := make([]bool, len(batch))
	var sigs []msg.Signature
	var keys [][32]byte
	span := make([][2]int, len(batch)) // frame i's signatures are sigs[span[i][0]:span[i][1]]
	for i, a := range batch {
		cost.Bytes += len(a.frame)
		m, err := msg.Unmarshal(a.frame)
		if err != nil {
			continue
		}
		ms[i] = m
		switch m.(type) {
		case *msg.Fetch, *msg.Blocks:
			ok[i] = true // unsigned: checked against the request and the checkpoint
			continue
		}
		fresh, k := s.sigs.fresh(msg.Signatures(m))
		span[i] = [2]int{len(sigs), len(sigs) + len(fresh)}
		sigs, keys = append(sigs, fresh...), append(keys, k...)
		ok[i] = true // until one of its signatures fails below
	}
	if len(sigs) == 0 {
		return ms, ok, cost
	}
	valid := s.crypto.VerifyAll(sigs)
	cost.Verifications = len(sigs)
	for i := range batch {
		if !ok[i] || ms[i] == nil {
			continue
		}
		lo, hi := span[i][0], span[i][1]
		for j := lo; j < hi; j++ {
			if !valid[j] {
				ok[i] = false
				break
			}
		}
		if ok[i] {
			// Only a message whose signatures all hold warms the cache,
			// so a forged one does not vouch for its accomplices.
			s.sigs.add(keys[lo:hi])
		}
	}
	return ms, ok, cost
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
	req := cr.Request
	if s.obs.Received != nil {
		s.obs.Received(&req)
	}
	if req.Number <= s.table.last(req.Client) {
		s.stats.ClientAnswered++
		s.onRequest(c, req)
		return
	}
	if fresh, _ := s.sigs.fresh([]msg.Signature{clientSignature(&req)}); len(fresh) == 0 {
		s.stats.ClientKnown++
		s.onRequest(c, req)
		return
	}
	if len(s.clientQueue) >= maxClientBacklog {
		s.stats.ClientShed++
		return
	}
	s.clientQueue = append(s.clientQueue, clientArrival{conn: c, req: req})
	if len(s.clientQueue) >= maxClientBatch {
		s.verifyClients()
	}
}

func clientSignature(req *msg.Request) msg.Signature {
	return msg.Signature{Client: true, ClientID: req.Client, Kind: msg.KindRequest, Payload: req.SignedBytes(), Sig: req.Sig}
}

// verifyClients queues client requests for batch checks, as many batches
// as admission allows (ClientLanes, waiting or on the workers).
func (s *Shell) verifyClients() {
	for len(s.clientQueue) > 0 && s.clientJobs < ClientLanes(s.cores) {
		k := min(len(s.clientQueue), maxClientBatch)
		batch := s.clientQueue[:k:k]
		s.clientQueue = s.clientQueue[k:]
		if len(s.clientQueue) == 0 {
			s.clientQueue = nil // let the backing array go
		}
		s.clientJobs++
		s.waiting = append(s.waiting, waitingJob{client: batch})
	}
}

func (s *Shell) verifyClientBatch(batch []clientArrival) {
	items := make([]msg.Signature, len(batch))
	bytes := 0
	for i := range batch {
		items[i] = clientSignature(&batch[i].req)
		bytes += len(items[i].Payload)
	}
	var valid []bool
	s.worker.Go(func() Cost {
		valid = s.crypto.VerifyAll(items)
		s.sigs.remember(items, valid) // the same requests come back inside pre-prepares and view changes
		return Cost{Verifications: len(items), Bytes: bytes, ClientLane: true}
	}, func() {
		s.clientJobs--
		s.running--
		if s.failed != nil {
			return
		}
		for i, a := range batch {
			if i < len(valid) && valid[i] {
				s.onRequest(a.conn, a.req)
			}
		}
		s.verifyClients()
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
