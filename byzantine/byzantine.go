// Package byzantine is the one home of Braid's deliberately faulty replica
// behaviours: filters on what a replica's runtime (package shell) sends and
// receives. The simulator wraps simulated replicas in them, and `braid
// replica --byzantine KIND` wraps a real process in the very same code, so
// an attack that the simulator checks is also one that real processes face.
//
// The filters are pure in the sense the simulator needs: no goroutines, no
// clocks and no randomness of their own. Randomness comes in through Env.Rand
// (the simulation's seeded generator, or any generator in production) and
// time only as Tick calls, so a simulated run stays a function of its seed.
// A Filter is not safe for concurrent use: call it from the replica's loop.
//
// Test only: a replica running a filter breaks the protocol on purpose.
package byzantine

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/braid-bft/braid/msg"
)

// Kind names a behaviour.
type Kind string

const (
	// Equivocate: as a primary, it sends the higher half of the replicas
	// a different, validly signed batch for the same (view, sequence).
	Equivocate Kind = "equivocate"
	// Silent: it ignores clients — their requests, whether they come on a
	// client connection or relayed by a peer — but answers the protocol.
	Silent Kind = "silent"
	// Dark: as a primary, it sends its proposals only to some replicas
	// (Env.Dark), leaving the others in the dark.
	Dark Kind = "dark"
	// Flood: on every tick it re-sends a bounded burst of its own recent,
	// validly signed messages to every peer: duplicates that cost the
	// receivers work and change nothing.
	Flood Kind = "flood"
	// Replay: on every tick it re-sends three old messages it received to
	// random replicas.
	Replay Kind = "replay"
	// LieCheckpoint: its checkpoints carry a wrong state digest, validly
	// signed.
	LieCheckpoint Kind = "lie-checkpoint"
	// Throttle: as a primary, it releases its non-null proposals only every
	// ThrottleEvery ticks.
	Throttle Kind = "throttle"
	// Forge: after every message it also sends a copy that claims another
	// replica sent it (the signature no longer matches).
	Forge Kind = "forge"
	// Garbage: after every message it also sends random bytes and a
	// corrupted copy of the message.
	Garbage Kind = "garbage"
)

// Kinds lists every behaviour, in the order usage texts show them: the
// six of issue 13 first.
var Kinds = []Kind{Equivocate, Silent, Dark, Flood, Replay, LieCheckpoint, Throttle, Forge, Garbage}

// Names is Kinds as one string, "equivocate|silent|…", for usage texts
// and errors.
func Names() string {
	s := make([]string, len(Kinds))
	for i, k := range Kinds {
		s[i] = string(k)
	}
	return strings.Join(s, "|")
}

// Parse returns the behaviour named s.
func Parse(s string) (Kind, error) {
	if slices.Contains(Kinds, Kind(s)) {
		return Kind(s), nil
	}
	return "", fmt.Errorf("unknown Byzantine behaviour %q (want one of %s)", s, Names())
}

// Bounds on what a filter keeps and sends, so that a faulty process cannot
// take down the machine it is tested on.
const (
	// ThrottleEvery is how many ticks a throttling primary waits between
	// releasing proposals: it still decides, 5× slower than a correct
	// primary proposing every tick.
	ThrottleEvery = 5
	// ReplayHistory is how many received frames a replaying replica keeps
	// (the first ones: it replays old messages).
	ReplayHistory = 512
	// ReplayPerTick is how many frames it replays per tick.
	ReplayPerTick = 3
	// FloodRecent is how many of its own recent frames a flooding replica
	// keeps to re-send.
	FloodRecent = 32
	// FloodPerTick and FloodBytesPerTick bound a flooding replica's burst
	// to each peer per tick: with production's 10 ms tick, at most 800
	// frames and 6.4 MB a second per peer.
	FloodPerTick      = 8
	FloodBytesPerTick = 64 << 10
)

// Rand is the randomness a filter draws from: *math/rand/v2.Rand has it.
type Rand interface {
	IntN(n int) int
	Uint32() uint32
}

// Env is what a filter needs from its replica.
type Env struct {
	ID msg.ReplicaID
	N  int
	// Signer signs as this replica: an equivocating or lying replica's
	// messages carry its own valid signature.
	Signer msg.Signer
	// Rand is drawn from by forge, garbage and replay.
	Rand Rand
	// Send puts one frame on the wire to one peer, bypassing the filter.
	Send func(to msg.ReplicaID, frame []byte)
	// Dark says which replicas a dark primary sends its proposals to; nil
	// means DefaultDark.
	Dark func(to msg.ReplicaID) bool
}

// Filter is one replica's behaviour. Its Send and Broadcast make it a
// shell.Network around Env.Send. A nil *Filter is a correct replica's:
// the methods that decide what a replica accepts are safe to call on it.
type Filter struct {
	kind Kind
	env  Env

	history [][]byte // replay: frames received
	held    []held   // throttle: proposals not yet released
	recent  [][]byte // flood: own frames sent, a ring
	next    int      // flood: the ring's next slot
	ticks   int

	// tampered counts what the behaviour did: frames altered, withheld,
	// added or dropped (atomic: AcceptClient runs on production's
	// transport goroutines).
	tampered atomic.Uint64
}

type held struct {
	to      msg.ReplicaID
	payload []byte
}

// New makes kind's filter.
func New(kind Kind, env Env) (*Filter, error) {
	if _, err := Parse(string(kind)); err != nil {
		return nil, err
	}
	if env.N < 1 || int(env.ID) >= env.N {
		return nil, fmt.Errorf("byzantine: replica %d of n=%d", env.ID, env.N)
	}
	if env.Send == nil || env.Rand == nil || env.Signer == nil {
		return nil, fmt.Errorf("byzantine: Env needs Send, Rand and Signer")
	}
	if env.Dark == nil {
		env.Dark = DefaultDark(env.ID, env.N)
	}
	return &Filter{kind: kind, env: env}, nil
}

// Kind is the filter's behaviour ("" for nil: a correct replica).
func (f *Filter) Kind() Kind {
	if f == nil {
		return ""
	}
	return f.kind
}

// Tampered is how many frames the behaviour has altered, withheld, added
// or dropped so far: tests check an attack really ran. Safe to call from
// any goroutine.
func (f *Filter) Tampered() uint64 {
	if f == nil {
		return 0
	}
	return f.tampered.Load()
}

// DefaultDark is the dark set a real process uses, the simulator's rule
// for one dark primary: of the other replicas, the first half (rounded
// down) gets its proposals; the rest are left in the dark.
func DefaultDark(id msg.ReplicaID, n int) func(to msg.ReplicaID) bool {
	var others []msg.ReplicaID
	for i := 0; i < n; i++ {
		if msg.ReplicaID(i) != id {
			others = append(others, msg.ReplicaID(i))
		}
	}
	lit := map[msg.ReplicaID]bool{}
	for x, c := range others {
		if x < len(others)/2 {
			lit[c] = true
		}
	}
	return func(to msg.ReplicaID) bool { return lit[to] }
}

// Broadcast sends frame to every other replica through the filter.
func (f *Filter) Broadcast(frame []byte) {
	for i := 0; i < f.env.N; i++ {
		if msg.ReplicaID(i) != f.env.ID {
			f.Send(msg.ReplicaID(i), frame)
		}
	}
}

// Send sends one frame to one peer through the behaviour.
func (f *Filter) Send(to msg.ReplicaID, payload []byte) {
	var m msg.Message
	switch f.kind {
	case Dark, Throttle, Equivocate, Forge, LieCheckpoint: // the filters that read the message
		m, _ = msg.Unmarshal(payload)
	}
	p := payload
	if pp, ok := m.(*msg.PrePrepare); ok && pp.From == f.env.ID {
		switch f.kind {
		case Dark:
			if !f.env.Dark(to) {
				f.tampered.Add(1)
				return
			}
		case Throttle:
			if !pp.Null {
				f.held = append(f.held, held{to: to, payload: payload})
				f.tampered.Add(1)
				return
			}
		case Equivocate:
			if int(to) > f.env.N/2 {
				p = msg.Marshal(f.equivocate(pp))
				f.tampered.Add(1)
			}
		}
	}
	if cp, ok := m.(*msg.Checkpoint); ok && f.kind == LieCheckpoint && cp.From == f.env.ID {
		p = msg.Marshal(f.lie(cp))
		f.tampered.Add(1)
	}
	f.env.Send(to, p)
	switch f.kind {
	case Forge:
		f.forge(to, m)
	case Garbage:
		f.garbage(to, payload)
	case Flood:
		f.remember(payload)
	}
}

// Received records a frame the replica received, from a peer or a client
// (replay's history). Call it for every frame, before Accept.
func (f *Filter) Received(frame []byte) {
	if f != nil && f.kind == Replay && len(f.history) < ReplayHistory {
		f.history = append(f.history, frame)
	}
}

// AcceptClient says whether the replica hands what arrives on a client
// connection to its runtime: a silent replica drops it. Safe to call from
// any goroutine.
func (f *Filter) AcceptClient() bool {
	if f == nil || f.kind != Silent {
		return true
	}
	f.tampered.Add(1)
	return false
}

// AcceptPeer says whether the replica hands a peer's frame to its runtime:
// a silent replica drops the client requests peers relay to it.
func (f *Filter) AcceptPeer(frame []byte) bool {
	if f == nil || f.kind != Silent {
		return true
	}
	if m, err := msg.Unmarshal(frame); err == nil {
		if _, ok := m.(*msg.ClientRequest); ok {
			f.tampered.Add(1)
			return false
		}
	}
	return true
}

// Tick is the replica's timer: throttle releases, replay and flood send.
func (f *Filter) Tick() {
	if f == nil {
		return
	}
	f.ticks++
	if f.kind == Throttle && len(f.held) > 0 && f.ticks%ThrottleEvery == 0 {
		// Release one proposal, to everyone it was meant for.
		first := f.held[0].payload
		k := 0
		for k < len(f.held) && string(f.held[k].payload) == string(first) {
			f.env.Send(f.held[k].to, f.held[k].payload)
			k++
		}
		f.held = f.held[k:]
	}
	if f.kind == Replay && len(f.history) > 0 {
		for k := 0; k < ReplayPerTick; k++ {
			p := f.history[f.env.Rand.IntN(len(f.history))]
			to := msg.ReplicaID(f.env.Rand.IntN(f.env.N))
			if to != f.env.ID {
				f.env.Send(to, p)
				f.tampered.Add(1)
			}
		}
	}
	if f.kind == Flood {
		f.flood()
	}
}

// equivocate gives the second half of the replicas a different batch for
// the same (view, seq), properly signed: a conflicting proposal.
func (f *Filter) equivocate(pp *msg.PrePrepare) *msg.PrePrepare {
	alt := *pp
	reqs := pp.Batch.Requests
	if len(reqs) > 0 {
		alt.Batch = msg.Batch{Requests: append([]msg.Request(nil), reqs[:len(reqs)-1]...)}
	} else {
		alt.Batch = msg.Batch{}
	}
	alt.Digest = alt.Batch.Digest()
	if alt.Digest == pp.Digest { // both empty: make one distinguishable
		alt.Batch = msg.Batch{Requests: nil}
		alt.Null = false
	}
	alt.Sig = nil
	alt.Sig = f.env.Signer.Sign(msg.SignedBytes(&alt))
	return &alt
}

// lie is the checkpoint with its state digest changed, signed anew: a
// replica vouching for a state no correct replica has.
func (f *Filter) lie(cp *msg.Checkpoint) *msg.Checkpoint {
	alt := *cp
	for i := range alt.State {
		alt.State[i] ^= 0x5a
	}
	alt.Sig = nil
	alt.Sig = f.env.Signer.Sign(msg.SignedBytes(&alt))
	return &alt
}

// forge re-sends the message claiming another replica sent it.
func (f *Filter) forge(to msg.ReplicaID, m msg.Message) {
	victim := msg.ReplicaID(f.env.Rand.IntN(f.env.N))
	var out msg.Message
	switch x := m.(type) {
	case *msg.Prepare:
		out = forged(x, func(c *msg.Prepare) { c.From = victim; c.Digest[0] ^= 0xff })
	case *msg.Commit:
		out = forged(x, func(c *msg.Commit) { c.From = victim; c.Digest[0] ^= 0xff })
	case *msg.Checkpoint:
		out = forged(x, func(c *msg.Checkpoint) { c.From = victim; c.State[0] ^= 0xff })
	case *msg.ViewChange:
		out = forged(x, func(c *msg.ViewChange) { c.From = victim; c.NewView += 3 })
	default:
		return
	}
	f.env.Send(to, msg.Marshal(out))
	f.tampered.Add(1)
}

// forged is a copy of m with lie applied; the original, which the
// replica's own runtime may still hold, is untouched.
func forged[T any, P interface {
	*T
	msg.Message
}](m P, lie func(P)) msg.Message {
	c := P(new(T))
	*c = *m
	lie(c)
	return c
}

// garbage sends random bytes and a corrupted copy of a real message.
func (f *Filter) garbage(to msg.ReplicaID, real []byte) {
	rnd := f.env.Rand
	junk := make([]byte, rnd.IntN(64))
	for i := range junk {
		junk[i] = byte(rnd.Uint32())
	}
	f.env.Send(to, junk)
	f.tampered.Add(1)
	if len(real) > 0 {
		bad := append([]byte(nil), real...)
		bad[rnd.IntN(len(bad))] ^= byte(1 + rnd.IntN(255))
		f.env.Send(to, bad)
		f.tampered.Add(1)
	}
}

// remember keeps one of the replica's own frames for flooding.
func (f *Filter) remember(frame []byte) {
	if len(frame) > FloodBytesPerTick {
		return
	}
	if len(f.recent) < FloodRecent {
		f.recent = append(f.recent, frame)
		return
	}
	f.recent[f.next] = frame
	f.next = (f.next + 1) % FloodRecent
}

// flood sends each peer a burst of the remembered frames, oldest first,
// within FloodPerTick frames and FloodBytesPerTick bytes.
func (f *Filter) flood() {
	if len(f.recent) == 0 {
		return
	}
	for i := 0; i < f.env.N; i++ {
		to := msg.ReplicaID(i)
		if to == f.env.ID {
			continue
		}
		bytes := 0
		for k := 0; k < FloodPerTick; k++ {
			p := f.recent[(f.next+f.ticks*FloodPerTick+k)%len(f.recent)]
			if bytes+len(p) > FloodBytesPerTick {
				break
			}
			bytes += len(p)
			f.env.Send(to, p)
			f.tampered.Add(1)
		}
	}
}

// UnsafeEnv is the environment variable that, set to 1, opts a process in
// to running a Byzantine behaviour (as `braid replica --unsafe-byzantine`
// does).
const UnsafeEnv = "BRAID_UNSAFE_BYZANTINE"

// ErrNotOptedIn is wrapped by OptIn's refusal.
var ErrNotOptedIn = errors.New("a Byzantine behaviour needs an explicit unsafe opt-in")

// OptIn checks the opt-in for running kind: the unsafe flag, or env (the
// value of UnsafeEnv) being "1". A behaviour nobody asked for twice is
// refused, so that no production replica runs one by a slip of a flag.
func OptIn(kind Kind, flag bool, env string) error {
	if flag || env == "1" {
		return nil
	}
	return fmt.Errorf("--byzantine %s: %w: it makes this replica break the protocol on purpose, for tests only; "+
		"add --unsafe-byzantine or set %s=1 to run it anyway", kind, ErrNotOptedIn, UnsafeEnv)
}

// Warning is what a Byzantine process logs, loudly and often.
func Warning(kind Kind) string {
	return fmt.Sprintf("THIS REPLICA IS DELIBERATELY BYZANTINE (--byzantine %s): it breaks the protocol on purpose, for tests only; never run it in a real cluster", kind)
}
