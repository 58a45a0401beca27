package coretest

import (
	"slices"

	"github.com/braid-bft/braid/msg"
)

// Adversary forges what f Byzantine replicas can send: well-formed
// protocol messages with chosen views, sequence numbers and digests, signed
// with their own keys; certificates assembled from what they saw; and
// replays of anything they saw, to any destination. It holds no other key:
// a correct replica's signed message appears only as it was seen, whole, so
// everything Next returns passes the shell's signature check (Verifier)
// and reaches the core, which is what it is for. The fuzz targets of pbft
// and rcc feed its messages to real cores between honest deliveries.
type Adversary struct {
	cfg   AdversaryConfig
	seen  map[msg.Kind][]msg.Message // the latest maxSeen of each kind
	reqs  []msg.Request              // client requests seen, distinct
	views []uint64                   // per instance: the highest view seen
	seqs  []uint64                   // per instance: the highest sequence number seen
}

// AdversaryConfig describes the cluster the adversary attacks.
type AdversaryConfig struct {
	N, M      int    // replicas, instances (1 for plain pbft)
	K, Window uint64 // checkpoint interval, window
	Byz       []msg.ReplicaID
	// Leader names who sends instance i's NewView for view v, so forged
	// new views and pre-prepares can come from the one replica a core
	// accepts them from.
	Leader func(instance uint32, view uint64) msg.ReplicaID
}

// maxSeen bounds what the adversary remembers per message kind.
const maxSeen = 64

// NewAdversary returns an adversary that has seen nothing.
func NewAdversary(cfg AdversaryConfig) *Adversary {
	return &Adversary{cfg: cfg, seen: map[msg.Kind][]msg.Message{},
		views: make([]uint64, cfg.M), seqs: make([]uint64, cfg.M)}
}

// Observe shows the adversary a message a Byzantine replica received.
// It must not be modified afterwards (the adversary keeps it, and copies
// it before changing anything).
func (a *Adversary) Observe(m msg.Message) {
	inst := msg.InstanceOf(m)
	if int(inst) >= a.cfg.M {
		return
	}
	switch m := m.(type) {
	case *msg.ClientRequest:
		a.request(m.Request)
	case *msg.PrePrepare:
		a.note(inst, m.View, m.Seq)
		for _, r := range m.Batch.Requests {
			a.request(r)
		}
	case *msg.Prepare:
		a.note(inst, m.View, m.Seq)
	case *msg.Commit:
		a.note(inst, m.View, m.Seq)
	case *msg.Checkpoint:
		a.note(inst, 0, m.Seq)
	case *msg.ViewChange:
		a.note(inst, m.NewView, m.StableSeq)
	case *msg.NewView:
		a.note(inst, m.View, 0)
	case *msg.Status:
		// Link-authenticated: worth replaying only to show it is dropped.
	default:
		return
	}
	list := append(a.seen[m.Kind()], m)
	if len(list) > maxSeen {
		list = list[1:]
	}
	a.seen[m.Kind()] = list
}

func (a *Adversary) note(inst uint32, view, seq uint64) {
	a.views[inst] = max(a.views[inst], min(view, 1<<20)) // a far-future forgery is no anchor
	if seq < 1<<20 {
		a.seqs[inst] = max(a.seqs[inst], seq)
	}
}

func (a *Adversary) request(r msg.Request) {
	for _, have := range a.reqs {
		if have.Key() == r.Key() {
			return
		}
	}
	a.reqs = append(a.reqs, r)
	if len(a.reqs) > maxSeen {
		a.reqs = a.reqs[1:]
	}
}

// Next makes one message from a Byzantine replica to another replica.
func (a *Adversary) Next(c Chooser) Envelope {
	b := a.cfg.Byz[c.Intn(len(a.cfg.Byz))]
	to := msg.ReplicaID(c.Intn(a.cfg.N - 1))
	if to >= b {
		to++ // never to itself: the link would be a loop
	}
	inst := uint32(c.Intn(a.cfg.M))
	var m msg.Message
	switch c.Intn(12) {
	case 0, 1:
		m = a.replay(c)
	case 11:
		m = a.equivocate(c, inst)
	case 2:
		m = a.prePrepare(c, b, inst)
	case 3:
		m = a.prepare(c, b, inst)
	case 4:
		m = a.commit(c, b, inst)
	case 5:
		m = a.checkpoint(c, b, inst)
	case 6:
		m = a.viewChange(c, b, inst, a.view(c, inst, b))
	case 7:
		m = a.newView(c, b, inst)
	case 8:
		m = a.mutate(c, b)
	case 9:
		m = &msg.Status{Instance: inst, View: a.view(c, inst, b), StableSeq: a.ckptSeq(c, inst),
			NextSeq: a.seq(c, inst), Accepted: a.seq(c, inst), From: b}
	default:
		if len(a.reqs) > 0 {
			m = &msg.ClientRequest{Instance: inst, Request: a.reqs[c.Intn(len(a.reqs))]}
		}
	}
	if m == nil { // nothing seen to build it from yet
		m = a.prepare(c, b, inst)
	}
	return Envelope{From: b, To: to, Msg: m}
}

// replay is any message seen, unchanged.
func (a *Adversary) replay(c Chooser) msg.Message {
	kinds := []msg.Kind{msg.KindRequest, msg.KindPrePrepare, msg.KindPrepare, msg.KindCommit,
		msg.KindCheckpoint, msg.KindViewChange, msg.KindNewView, msg.KindStatus}
	list := a.seen[kinds[c.Intn(len(kinds))]]
	if len(list) == 0 {
		return nil
	}
	return list[c.Intn(len(list))]
}

// view picks a view of instance inst: current, next, further ahead, one
// that from leads, earlier, or far in the future.
func (a *Adversary) view(c Chooser, inst uint32, from msg.ReplicaID) uint64 {
	v := a.views[inst]
	switch c.Intn(8) {
	case 0, 1:
		return v
	case 2:
		return v + 1
	case 3:
		return v + 2 + uint64(c.Intn(4))
	case 4, 5:
		return a.led(inst, v, from)
	case 6:
		return uint64(c.Intn(int(v) + 1))
	default:
		return v + 1<<(8+c.Intn(48))
	}
}

// led is the first view from v on that from leads (v if none soon).
func (a *Adversary) led(inst uint32, v uint64, from msg.ReplicaID) uint64 {
	for w := v; w < v+uint64(2*a.cfg.N); w++ {
		if a.cfg.Leader(inst, w) == from {
			return w
		}
	}
	return v
}

// seq picks a sequence number of instance inst: the front, just past it,
// anywhere in or at the edge of a window above it, below it, or absurd.
func (a *Adversary) seq(c Chooser, inst uint32) uint64 {
	s := a.seqs[inst]
	switch c.Intn(8) {
	case 0, 1:
		return s
	case 2, 3:
		return s + 1
	case 4:
		return s + 1 + uint64(c.Intn(int(a.cfg.Window)+2))
	case 5:
		return uint64(c.Intn(int(s) + 2))
	case 6:
		return 0
	default:
		return s + 1<<(8+c.Intn(55))
	}
}

// ckptSeq picks a checkpoint's sequence number: a multiple of K near the
// front, usually.
func (a *Adversary) ckptSeq(c Chooser, inst uint32) uint64 {
	k := a.cfg.K
	base := a.seqs[inst] / k * k
	switch c.Intn(6) {
	case 0:
		return a.seq(c, inst) // whatever it is
	case 1:
		return base + k*uint64(1+c.Intn(int(a.cfg.Window/k)+2))
	default:
		if back := k * uint64(c.Intn(3)); base+k > back {
			return base + k - back
		}
		return k
	}
}

// digest picks a digest: one seen in a message of instance inst, a no-op
// or failure marker, or one nobody proposed.
func (a *Adversary) digest(c Chooser, inst uint32, view uint64) msg.Digest {
	switch c.Intn(6) {
	case 0:
		return msg.NullDigest
	case 1:
		return msg.FailureDigest(view)
	case 2:
		return msg.Digest{0xf0, byte(c.Intn(256))}
	}
	var ds []msg.Digest
	for _, k := range []msg.Kind{msg.KindPrePrepare, msg.KindPrepare, msg.KindCommit} {
		for _, m := range a.seen[k] {
			if msg.InstanceOf(m) == inst {
				ds = append(ds, voteDigest(m))
			}
		}
	}
	if len(ds) == 0 {
		var empty msg.Batch
		return empty.Digest()
	}
	return ds[c.Intn(len(ds))]
}

func voteDigest(m msg.Message) msg.Digest {
	switch m := m.(type) {
	case *msg.PrePrepare:
		return m.Digest
	case *msg.Prepare:
		return m.Digest
	case *msg.Commit:
		return m.Digest
	}
	return msg.Digest{}
}

// batch picks up to three requests seen (maybe one twice).
func (a *Adversary) batch(c Chooser) msg.Batch {
	var b msg.Batch
	if len(a.reqs) == 0 {
		return b
	}
	for k := c.Intn(4); k > 0; k-- {
		b.Requests = append(b.Requests, a.reqs[c.Intn(len(a.reqs))])
	}
	return b
}

func sign(m msg.Message, by msg.ReplicaID) {
	msg.SetSig(m, Signer{ID: by}.Sign(msg.SignedBytes(m)))
}

// prePrepare proposes a batch of seen requests for a chosen view and
// sequence number, under its digest, another one, or as a no-op.
func (a *Adversary) prePrepare(c Chooser, b msg.ReplicaID, inst uint32) *msg.PrePrepare {
	v := a.view(c, inst, b)
	pp := &msg.PrePrepare{Instance: inst, View: v, Seq: a.seq(c, inst), Batch: a.batch(c), From: b}
	pp.Digest = pp.Batch.Digest()
	switch c.Intn(6) {
	case 0:
		pp.Digest = a.digest(c, inst, v) // lying about its own batch
	case 1:
		pp.Batch, pp.Null, pp.Digest = msg.Batch{}, true, msg.NullDigest
	case 2:
		pp.Batch, pp.Null, pp.Failure = msg.Batch{}, true, true
		pp.FailureView = uint64(c.Intn(int(v) + 2))
		pp.Digest = msg.FailureDigest(pp.FailureView)
	}
	sign(pp, b)
	return pp
}

func (a *Adversary) prepare(c Chooser, b msg.ReplicaID, inst uint32) *msg.Prepare {
	v := a.view(c, inst, b)
	p := &msg.Prepare{Instance: inst, View: v, Seq: a.seq(c, inst), Digest: a.digest(c, inst, v), From: b}
	sign(p, b)
	return p
}

func (a *Adversary) commit(c Chooser, b msg.ReplicaID, inst uint32) *msg.Commit {
	v := a.view(c, inst, b)
	m := &msg.Commit{Instance: inst, View: v, Seq: a.seq(c, inst), Digest: a.digest(c, inst, v), From: b}
	sign(m, b)
	return m
}

// checkpoint claims a state at a checkpoint: one seen there (its own
// vote for the truth, or for another replica's lie) or a made-up one.
func (a *Adversary) checkpoint(c Chooser, b msg.ReplicaID, inst uint32) *msg.Checkpoint {
	cp := &msg.Checkpoint{Instance: inst, Seq: a.ckptSeq(c, inst), State: msg.Digest{0xc4, byte(c.Intn(4))}, From: b}
	if seen := a.ofInstance(msg.KindCheckpoint, inst); len(seen) > 0 && c.Intn(3) > 0 {
		s := seen[c.Intn(len(seen))].(*msg.Checkpoint)
		cp.Seq, cp.State = s.Seq, s.State
	}
	sign(cp, b)
	return cp
}

func (a *Adversary) ofInstance(k msg.Kind, inst uint32) []msg.Message {
	var out []msg.Message
	for _, m := range a.seen[k] {
		if msg.InstanceOf(m) == inst {
			out = append(out, m)
		}
	}
	return out
}

// viewChange asks for view v, carrying a stable checkpoint (a proof
// assembled from seen checkpoints, perhaps short of a quorum, or none) and
// prepared proofs built from seen pre-prepares and the prepares seen to
// match them (perhaps too few), or its own forged pre-prepares.
func (a *Adversary) viewChange(c Chooser, b msg.ReplicaID, inst uint32, v uint64) *msg.ViewChange {
	vc := &msg.ViewChange{Instance: inst, NewView: v, From: b, Resume: uint64(c.Intn(3)) * a.seq(c, inst)}
	if cps := a.ofInstance(msg.KindCheckpoint, inst); len(cps) > 0 && c.Intn(3) > 0 {
		pick := cps[c.Intn(len(cps))].(*msg.Checkpoint)
		vc.StableSeq = pick.Seq
		from := map[msg.ReplicaID]bool{}
		want := 1 + c.Intn(a.cfg.N)
		for _, m := range cps {
			cp := m.(*msg.Checkpoint)
			if cp.Seq == pick.Seq && cp.State == pick.State && !from[cp.From] && len(vc.CheckpointProof) < want {
				from[cp.From] = true
				vc.CheckpointProof = append(vc.CheckpointProof, *cp)
			}
		}
	} else if c.Intn(2) == 0 {
		vc.StableSeq = a.ckptSeq(c, inst) // claimed without proof
	}
	pps := a.ofInstance(msg.KindPrePrepare, inst)
	for k := c.Intn(4); k > 0; k-- {
		var pp msg.PrePrepare
		if len(pps) > 0 && c.Intn(4) > 0 {
			pp = *pps[c.Intn(len(pps))].(*msg.PrePrepare)
		} else {
			pp = *a.prePrepare(c, b, inst)
		}
		proof := msg.PreparedProof{PrePrepare: pp}
		want := c.Intn(a.cfg.N + 1)
		for _, m := range a.ofInstance(msg.KindPrepare, inst) {
			p := m.(*msg.Prepare)
			if p.View == pp.View && p.Seq == pp.Seq && p.Digest == pp.Digest && len(proof.Prepares) < want {
				proof.Prepares = append(proof.Prepares, *p)
			}
		}
		if c.Intn(3) == 0 { // and its own vote, for whatever it is worth
			p := msg.Prepare{Instance: inst, View: pp.View, Seq: pp.Seq, Digest: pp.Digest, From: b}
			sign(&p, b)
			proof.Prepares = append(proof.Prepares, p)
		}
		vc.Prepared = append(vc.Prepared, proof)
	}
	sign(vc, b)
	return vc
}

// newView starts a view: the view changes seen for it (perhaps too few,
// perhaps with its own forged one) and pre-prepares of its choosing for the
// sequence numbers after a stable checkpoint, signed as the view's leader
// when it is one (otherwise as itself, which a core must refuse).
func (a *Adversary) newView(c Chooser, b msg.ReplicaID, inst uint32) *msg.NewView {
	v := a.led(inst, a.view(c, inst, b), b)
	nv := &msg.NewView{Instance: inst, View: v, From: b}
	from := map[msg.ReplicaID]bool{}
	want := c.Intn(a.cfg.N + 1)
	var low uint64
	for _, m := range a.ofInstance(msg.KindViewChange, inst) {
		vc := m.(*msg.ViewChange)
		if vc.NewView == v && !from[vc.From] && len(nv.ViewChanges) < want {
			from[vc.From] = true
			nv.ViewChanges = append(nv.ViewChanges, *vc)
			low = max(low, vc.StableSeq)
		}
	}
	if !from[b] && c.Intn(2) == 0 {
		nv.ViewChanges = append(nv.ViewChanges, *a.viewChange(c, b, inst, v))
	}
	if c.Intn(4) == 0 {
		low = a.ckptSeq(c, inst)
	}
	for s := low + 1; s <= low+uint64(c.Intn(4)); s++ {
		pp := msg.PrePrepare{Instance: inst, View: v, Seq: s, Null: true, Digest: msg.NullDigest, From: b}
		if c.Intn(2) == 0 {
			pp.Null, pp.Batch = false, a.batch(c)
			pp.Digest = pp.Batch.Digest()
		}
		sign(&pp, b)
		nv.PrePrepares = append(nv.PrePrepares, pp)
	}
	sign(nv, b)
	return nv
}

// equivocate proposes again, with another batch, for a slot a Byzantine
// primary's own core proposed lately (in instance inst): the correct
// replicas that get this one and those that got the first must not decide
// differently.
func (a *Adversary) equivocate(c Chooser, inst uint32) msg.Message {
	var own []*msg.PrePrepare
	for _, m := range a.seen[msg.KindPrePrepare] {
		if pp := m.(*msg.PrePrepare); pp.Instance == inst && slices.Contains(a.cfg.Byz, pp.From) && !pp.Null {
			own = append(own, pp)
		}
	}
	if len(own) == 0 {
		return nil
	}
	orig := own[len(own)-1-c.Intn(min(len(own), 4))]
	pp := *orig
	pp.Batch = a.batch(c)
	if pp.Batch.Digest() == orig.Digest {
		pp.Batch = msg.Batch{}
		if pp.Batch.Digest() == orig.Digest && len(a.reqs) > 0 {
			pp.Batch.Requests = a.reqs[:1]
		}
	}
	pp.Digest = pp.Batch.Digest()
	sign(&pp, pp.From)
	return &pp
}

// mutate takes a message seen, copies it, changes one field, and signs it
// as a Byzantine replica: an equivocation of its own if it sent the
// original, a look-alike of someone else's otherwise.
func (a *Adversary) mutate(c Chooser, b msg.ReplicaID) msg.Message {
	m := a.replay(c)
	if m == nil {
		return nil
	}
	cp, err := msg.Unmarshal(msg.Marshal(m))
	if err != nil {
		return nil
	}
	inst := msg.InstanceOf(cp)
	bump := func(x *uint64) {
		switch c.Intn(3) {
		case 0:
			*x++
		case 1:
			if *x > 0 {
				*x--
			}
		default:
			*x += uint64(c.Intn(int(a.cfg.Window) + 1))
		}
	}
	switch m := cp.(type) {
	case *msg.PrePrepare:
		switch c.Intn(4) {
		case 0:
			bump(&m.View)
		case 1:
			bump(&m.Seq)
		case 2:
			m.Batch = a.batch(c)
			m.Digest = m.Batch.Digest()
		default:
			m.Digest = a.digest(c, inst, m.View)
		}
		m.From = b
	case *msg.Prepare:
		if c.Intn(2) == 0 {
			bump(&m.Seq)
		} else {
			m.Digest = a.digest(c, inst, m.View)
		}
		m.From = b
	case *msg.Commit:
		if c.Intn(2) == 0 {
			bump(&m.View)
		} else {
			m.Digest = a.digest(c, inst, m.View)
		}
		m.From = b
	case *msg.Checkpoint:
		m.State[0] ^= byte(1 + c.Intn(255))
		m.From = b
	case *msg.ViewChange:
		if len(m.Prepared) > 0 && c.Intn(2) == 0 {
			m.Prepared = m.Prepared[:c.Intn(len(m.Prepared))] // hide a prepared proof
		} else {
			bump(&m.NewView)
		}
		m.From = b
	case *msg.NewView:
		switch {
		case len(m.PrePrepares) > 0 && c.Intn(2) == 0:
			i := c.Intn(len(m.PrePrepares))
			pp := &m.PrePrepares[i]
			pp.Batch, pp.Null, pp.Failure, pp.FailureView = a.batch(c), false, false, 0
			pp.Digest = pp.Batch.Digest()
		case len(m.ViewChanges) > 0:
			m.ViewChanges = m.ViewChanges[:c.Intn(len(m.ViewChanges))]
		}
		m.From = b
		for i := range m.PrePrepares {
			m.PrePrepares[i].From = b
			sign(&m.PrePrepares[i], b)
		}
	case *msg.Status:
		m.From = b
		bump(&m.View)
		bump(&m.NextSeq)
		return m
	default:
		return cp // a relayed client request: nothing of its own to change
	}
	sign(cp, b)
	return cp
}
