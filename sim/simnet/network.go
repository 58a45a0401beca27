package simnet

import (
	"crypto/sha256"
	"fmt"
	"math/bits"
	"time"

	"github.com/braid-bft/braid/internal/enum"
)

// Link describes the behaviour of one directed link. The zero Link delivers
// every message instantly (at the current virtual time, after events already
// scheduled for it), in order, exactly once.
type Link struct {
	// Latency is the fixed propagation delay of every message.
	Latency time.Duration
	// Jitter adds a delay drawn uniformly from [0, Jitter) to each message
	// (and independently to its duplicate). Messages on the same link can
	// therefore be reordered; this is the network's only reordering source.
	Jitter time.Duration
	// Loss is the probability that a message is lost in transit. A lost
	// message still uses the link's bandwidth and is never duplicated.
	Loss float64
	// Duplicate is the probability that a message that was not lost is
	// delivered twice. The copy takes no extra bandwidth but gets its own
	// jitter.
	Duplicate float64
	// Bandwidth, in bytes per second, limits the link's throughput: each
	// message takes len(payload)/Bandwidth seconds to transmit, and a
	// message starts transmitting only when the previous one on the same
	// link has finished (a FIFO queue per directed link). Latency and
	// jitter are added after transmission. 0 means unlimited.
	Bandwidth int64
}

// DropReason says why the network discarded a message.
type DropReason uint8

const (
	// DropLoss: random loss according to Link.Loss.
	DropLoss DropReason = iota
	// DropPartition: the path was blocked by Cut, Partition or Isolate.
	DropPartition
	// DropDown: the destination (or, at send time, the sender) was down,
	// or the destination went down while the message was in flight.
	DropDown
	// DropQueueFull: the sender's queue towards that peer was at its
	// bound (SetSendQueue), as production's transport drops then.
	DropQueueFull
)

var dropReasonNames = []string{
	DropLoss:      "loss",
	DropPartition: "partition",
	DropDown:      "down",
	DropQueueFull: "queue-full",
}

func (r DropReason) String() string { return enum.Name(dropReasonNames, r, "DropReason") }

// Stats counts messages. Every copy of a message ends up either delivered or
// dropped, so at all times
//
//	Sent + Duplicated == Delivered + Dropped() + InFlight.
type Stats struct {
	Sent             uint64 // calls to Send
	Delivered        uint64 // copies handed to the deliver callback
	Duplicated       uint64 // extra copies created by Link.Duplicate
	DroppedLoss      uint64
	DroppedPartition uint64
	DroppedDown      uint64
	DroppedQueueFull uint64
	InFlight         uint64 // copies scheduled for delivery, not yet resolved
}

// Dropped returns the total number of dropped copies.
func (st Stats) Dropped() uint64 {
	return st.DroppedLoss + st.DroppedPartition + st.DroppedDown + st.DroppedQueueFull
}

// Network is a simulated message-passing network between nodes 0..N-1
// (replicas and clients alike). Messages are byte slices; delivery calls the
// callback given to [NewNetwork] from a scheduler event.
//
// Connectivity (cuts, partitions, isolation, down nodes) is checked twice:
// when a message is sent and when it would be delivered. A message is
// delivered only if its path is open at both instants, so creating a
// partition also discards the messages already in flight across it, and a
// node that goes down loses the messages in flight to it even if it comes
// back up before they arrive.
//
// Every send, delivery and drop is folded into the scheduler's trace as
// records "net.send", "net.deliver" and "net.drop" with fields (from, to)
// (plus the DropReason for drops) and the SHA-256 of the payload.
type Network struct {
	s       *Scheduler
	n       int
	deliver func(from, to int, payload []byte)

	def   Link
	links map[int]Link // key from*n+to; lookups only, never iterated

	cut                []bool // n*n, one-way cuts
	group              []int  // partition group per node, -1 = unlisted
	isolated           []bool
	down               []bool
	epoch              []uint64     // incarnation per node, bumped by Down
	busy               map[int]Time // per-link time the transmitter becomes free
	nic                []int64      // per node: egress bytes/s of its one network card, 0 unlimited
	nicBusy            []Time       // per node: when its card is next free
	nicUsed            []Time       // per node: how long its card has been sending within [usageFrom, usageTo)
	usageFrom, usageTo Time
	// Per link, with a NIC: frames still waiting for the card (their
	// departure times and sizes, oldest first) and the bound on them.
	queued                  []sendQueue
	queueFrames, queueBytes int

	stats Stats

	// The digest of the last payload sent, kept with the payload itself (so
	// its memory cannot be reused meanwhile): a broadcast sends one frame
	// to every peer in a row, and hashing it once per peer was a tenth of
	// the simulator's time. Same digests, so the same trace hash.
	cur         [32]byte
	lastPayload []byte
	lastDigest  [32]byte
	// The copy of lastPayload the deliveries share: one per broadcast,
	// not one per peer. A view change at n = 16 is megabytes, and
	// copying it for each of 15 peers is what filled memory in
	// view-change storms.
	lastCopy []byte
}

// NewNetwork creates a network of n nodes, ids 0..n-1, all up and fully
// connected, with the zero Link as default. deliver is called for every
// delivered message; the payload is the network's copy, shared by the
// deliveries of one buffer sent to several nodes in a row: the receiver may
// keep it but must not modify it.
func NewNetwork(s *Scheduler, n int, deliver func(from, to int, payload []byte)) *Network {
	if n <= 0 {
		panic("simnet: NewNetwork with n <= 0")
	}
	if deliver == nil {
		panic("simnet: NewNetwork with nil deliver")
	}
	nw := &Network{
		s:        s,
		n:        n,
		deliver:  deliver,
		links:    make(map[int]Link),
		cut:      make([]bool, n*n),
		group:    make([]int, n),
		isolated: make([]bool, n),
		down:     make([]bool, n),
		epoch:    make([]uint64, n),
		busy:     make(map[int]Time),
		nic:      make([]int64, n),
		nicBusy:  make([]Time, n),
		nicUsed:  make([]Time, n),
		queued:   make([]sendQueue, n*n),
	}
	for i := range nw.group {
		nw.group[i] = -1
	}
	return nw
}

// SetNIC gives node one network card of bytesPerSec for everything it
// sends (0: unlimited): its messages to all peers queue for it in send
// order before each link's own bandwidth and latency apply. A primary
// sending a batch to n−1 replicas pays n−1 transmissions on it.
func (nw *Network) SetNIC(node int, bytesPerSec int64) {
	nw.checkNode(node)
	if bytesPerSec < 0 {
		panic("simnet: negative NIC bandwidth")
	}
	nw.nic[node] = bytesPerSec
}

// N returns the number of nodes.
func (nw *Network) N() int { return nw.n }

// Stats returns the message counters.
func (nw *Network) Stats() Stats { return nw.stats }

// SetSendQueue bounds, per link, what may wait for the sender's NIC: at
// most frames messages and bytes bytes not yet on the wire; a message
// beyond either is dropped (DropQueueFull). Production's transport bounds
// its per-peer send queues the same way, so a cluster pushed past its NIC
// loses messages instead of growing without bound. 0: no bound.
func (nw *Network) SetSendQueue(frames, bytes int) {
	nw.queueFrames, nw.queueBytes = frames, bytes
}

// sendQueue is one link's frames waiting for the NIC.
type sendQueue struct {
	departs []Time
	sizes   []int
	bytes   int
}

// admit drops the frames that have left by now and reports whether one
// more of size bytes, leaving at departs, fits under the bounds.
func (nw *Network) admit(k int, size int, departs Time) bool {
	q := &nw.queued[k]
	i := 0
	for i < len(q.departs) && q.departs[i] <= nw.s.now {
		q.bytes -= q.sizes[i]
		i++
	}
	if i > 0 {
		q.departs, q.sizes = q.departs[i:], q.sizes[i:]
		if len(q.departs) == 0 {
			q.departs, q.sizes = nil, nil
		}
	}
	if (nw.queueFrames > 0 && len(q.departs) >= nw.queueFrames) || (nw.queueBytes > 0 && q.bytes+size > nw.queueBytes) {
		return false
	}
	if departs > nw.s.now {
		q.departs = append(q.departs, departs)
		q.sizes = append(q.sizes, size)
		q.bytes += size
	}
	return true
}

// SetUsageWindow sets the window NICUsed counts (default: none, so
// NICUsed stays 0).
func (nw *Network) SetUsageWindow(from, to Time) { nw.usageFrom, nw.usageTo = from, to }

// Overlap is how much of [start, end) lies within [from, to).
func Overlap(start, end, from, to Time) Time {
	lo, hi := max(start, from), min(end, to)
	if hi <= lo {
		return 0
	}
	return hi - lo
}

// NICUsed is how long node's network card has spent sending within the
// usage window (0 without SetNIC): the utilisation a bottleneck report
// needs.
func (nw *Network) NICUsed(node int) Time {
	nw.checkNode(node)
	return nw.nicUsed[node]
}

// SetDefaultLink sets the model used by every link without its own SetLink.
func (nw *Network) SetDefaultLink(l Link) {
	checkLink(l)
	nw.def = l
}

// SetLink sets the model of the directed link from→to, overriding the
// default. Messages already in flight keep the delays they were given.
func (nw *Network) SetLink(from, to int, l Link) {
	nw.checkNode(from)
	nw.checkNode(to)
	checkLink(l)
	nw.links[from*nw.n+to] = l
}

// LinkOf returns the model in effect for the directed link from→to.
func (nw *Network) LinkOf(from, to int) Link {
	nw.checkNode(from)
	nw.checkNode(to)
	if l, ok := nw.links[from*nw.n+to]; ok {
		return l
	}
	return nw.def
}

// Cut blocks the directed link from→to: messages from→to are dropped while
// to→from still flow. It is undone by Restore or Heal.
func (nw *Network) Cut(from, to int) {
	nw.checkNode(from)
	nw.checkNode(to)
	nw.cut[from*nw.n+to] = true
}

// Restore undoes Cut(from, to). It does not affect partitions or isolation.
func (nw *Network) Restore(from, to int) {
	nw.checkNode(from)
	nw.checkNode(to)
	nw.cut[from*nw.n+to] = false
}

// Partition splits the network into groups: messages between nodes of
// different groups are dropped in both directions. Nodes not listed in any
// group stay connected to everyone (isolate them explicitly with Isolate if
// that is wanted). Partition replaces any previous partition but leaves
// cuts and isolation alone. Listing a node twice panics.
func (nw *Network) Partition(groups ...[]int) {
	group := make([]int, nw.n)
	for i := range group {
		group[i] = -1
	}
	for g, members := range groups {
		for _, id := range members {
			nw.checkNode(id)
			if group[id] != -1 {
				panic(fmt.Sprintf("simnet: node %d listed twice in Partition", id))
			}
			group[id] = g
		}
	}
	nw.group = group
}

// Isolate blocks all links to and from node (except its link to itself)
// until Heal. The node stays up: it keeps running and can message itself.
func (nw *Network) Isolate(node int) {
	nw.checkNode(node)
	nw.isolated[node] = true
}

// Heal removes all partitions, cuts and isolation. It does not bring down
// nodes back up.
func (nw *Network) Heal() {
	clear(nw.cut)
	clear(nw.isolated)
	for i := range nw.group {
		nw.group[i] = -1
	}
}

// Down marks node as crashed: messages to it are dropped, including those
// already in flight (even if the node is back up when they arrive).
// Messages it sent before crashing are still delivered. Down on a down node
// is a no-op.
func (nw *Network) Down(node int) {
	nw.checkNode(node)
	if !nw.down[node] {
		nw.down[node] = true
		nw.epoch[node]++
	}
}

// Up marks node as running again.
func (nw *Network) Up(node int) {
	nw.checkNode(node)
	nw.down[node] = false
}

// IsDown reports whether node is down.
func (nw *Network) IsDown(node int) bool {
	nw.checkNode(node)
	return nw.down[node]
}

// Send sends payload from→to through the link model. The payload is copied,
// so the caller may reuse it — but not change it between sends of the same
// buffer to several nodes in a row, which share one copy (and one digest).
// Send never calls deliver synchronously, even on a zero-delay link.
//
// Send draws from the scheduler's PRNG a number of values that depends only
// on the link's configuration: one for Loss if Loss > 0, one for Duplicate
// if Duplicate > 0, and if Jitter > 0 one jitter (two if Duplicate > 0).
// They are drawn whether or not the message is then dropped.
func (nw *Network) Send(from, to int, payload []byte) {
	nw.checkNode(from)
	nw.checkNode(to)
	l := nw.LinkOf(from, to)

	r := nw.s.rng
	lost := l.Loss > 0 && r.Float64() < l.Loss
	dup := l.Duplicate > 0 && r.Float64() < l.Duplicate
	var j1, j2 time.Duration
	if l.Jitter > 0 {
		j1 = time.Duration(r.Int64N(int64(l.Jitter)))
		if l.Duplicate > 0 {
			j2 = time.Duration(r.Int64N(int64(l.Jitter)))
		}
	}

	nw.stats.Sent++
	digest := nw.digest(payload)
	nw.s.Trace("net.send", digest[:], uint64(from), uint64(to))

	switch {
	case nw.down[from] || nw.down[to]:
		nw.drop(from, to, DropDown, &digest)
		return
	case nw.blocked(from, to):
		nw.drop(from, to, DropPartition, &digest)
		return
	}

	sent := nw.s.now
	if bw := nw.nic[from]; bw > 0 {
		d := transmitTime(len(payload), bw)
		start := max(sent, nw.nicBusy[from])
		if (nw.queueFrames > 0 || nw.queueBytes > 0) && !nw.admit(from*nw.n+to, len(payload), start) {
			nw.drop(from, to, DropQueueFull, &digest)
			return
		}
		sent = start + d
		nw.nicBusy[from] = sent
		nw.nicUsed[from] += Overlap(start, sent, nw.usageFrom, nw.usageTo)
	}
	if l.Bandwidth > 0 {
		k := from*nw.n + to
		start := max(sent, nw.busy[k])
		sent = start + transmitTime(len(payload), l.Bandwidth)
		nw.busy[k] = sent
	}
	if lost {
		nw.drop(from, to, DropLoss, &digest)
		return
	}
	arrive := sent.Add(l.Latency)
	buf := nw.copyOf(payload)
	nw.schedule(from, to, arrive.Add(j1), buf, digest)
	if dup {
		nw.stats.Duplicated++
		nw.schedule(from, to, arrive.Add(j2), buf, digest)
	}
}

// transmitTime is the time to push size bytes through a link of bw bytes/s,
// rounded up to a whole nanosecond so that a non-empty message always takes
// time.
func transmitTime(size int, bw int64) Time {
	// 128-bit intermediate so that size*1e9 cannot overflow.
	hi, lo := bits.Mul64(uint64(size), uint64(time.Second))
	q, rem := bits.Div64(hi, lo, uint64(bw))
	if rem != 0 {
		q++
	}
	return Time(q)
}

func (nw *Network) schedule(from, to int, at Time, buf []byte, digest [32]byte) {
	nw.stats.InFlight++
	epoch := nw.epoch[to]
	nw.s.At(at, func() {
		nw.stats.InFlight--
		switch {
		case nw.down[to] || nw.epoch[to] != epoch:
			nw.drop(from, to, DropDown, &digest)
		case nw.blocked(from, to):
			nw.drop(from, to, DropPartition, &digest)
		default:
			nw.stats.Delivered++
			nw.s.Trace("net.deliver", digest[:], uint64(from), uint64(to))
			nw.cur = digest
			nw.deliver(from, to, buf)
		}
	})
}

func (nw *Network) drop(from, to int, reason DropReason, digest *[32]byte) {
	switch reason {
	case DropLoss:
		nw.stats.DroppedLoss++
	case DropPartition:
		nw.stats.DroppedPartition++
	case DropDown:
		nw.stats.DroppedDown++
	case DropQueueFull:
		nw.stats.DroppedQueueFull++
	}
	nw.s.Trace("net.drop", digest[:], uint64(from), uint64(to), uint64(reason))
}

// blocked reports whether cuts, isolation or the partition block from→to.
func (nw *Network) blocked(from, to int) bool {
	if nw.cut[from*nw.n+to] {
		return true
	}
	if from == to {
		return false
	}
	if nw.isolated[from] || nw.isolated[to] {
		return true
	}
	gf, gt := nw.group[from], nw.group[to]
	return gf >= 0 && gt >= 0 && gf != gt
}

func (nw *Network) checkNode(id int) {
	if id < 0 || id >= nw.n {
		panic(fmt.Sprintf("simnet: node id %d out of range [0, %d)", id, nw.n))
	}
}

func checkLink(l Link) {
	if l.Latency < 0 || l.Jitter < 0 || l.Bandwidth < 0 ||
		!(l.Loss >= 0 && l.Loss <= 1) || !(l.Duplicate >= 0 && l.Duplicate <= 1) {
		panic(fmt.Sprintf("simnet: invalid link %+v", l))
	}
}

// digest is SHA-256 of payload, computed once for a payload sent to
// several nodes in a row.
func (nw *Network) digest(payload []byte) [32]byte {
	if len(payload) > 0 && len(payload) == len(nw.lastPayload) && &payload[0] == &nw.lastPayload[0] {
		return nw.lastDigest
	}
	nw.lastPayload, nw.lastDigest, nw.lastCopy = payload, sha256.Sum256(payload), nil
	return nw.lastDigest
}

// copyOf is the network's copy of payload, made once for a payload sent to
// several nodes in a row (digest has just seen it).
func (nw *Network) copyOf(payload []byte) []byte {
	if nw.lastCopy == nil || len(nw.lastCopy) != len(payload) {
		nw.lastCopy = append([]byte(nil), payload...)
	}
	return nw.lastCopy
}

// Delivering is the SHA-256 of the payload being delivered (valid inside the deliver callback).
func (nw *Network) Delivering() [32]byte { return nw.cur }
