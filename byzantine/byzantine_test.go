package byzantine

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/internal/testseed"
	"github.com/braid-bft/braid/msg"
)

type sent struct {
	to    msg.ReplicaID
	frame []byte
}

// rig is a filter for replica 0 of 4 that records what it puts on the
// wire, signing with a real key so signatures can be checked.
type rig struct {
	f    *Filter
	out  []sent
	pub  auth.PublicKey
	sign msg.Signer
}

func newRig(t *testing.T, kind Kind) *rig {
	t.Helper()
	seed := testseed.New(t)
	pub, priv, err := auth.GenerateKey(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}))
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{pub: pub, sign: auth.ReplicaSigner(priv)}
	r.f, err = New(kind, Env{ID: 0, N: 4, Signer: r.sign, Rand: rand.New(rand.NewPCG(seed, 1)),
		Send: func(to msg.ReplicaID, frame []byte) { r.out = append(r.out, sent{to, frame}) }})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rig) verifies(m msg.Message) bool {
	return auth.Verify(r.pub, auth.ContextReplica, msg.SignedBytes(m), msg.Sig(m))
}

func (r *rig) take() []sent { out := r.out; r.out = nil; return out }

func (r *rig) signed(m msg.Message) []byte {
	msg.SetSig(m, r.sign.Sign(msg.SignedBytes(m)))
	return msg.Marshal(m)
}

func proposal(r *rig) (*msg.PrePrepare, []byte) {
	reqs := []msg.Request{{Client: 1, Number: 1, Op: []byte("a")}, {Client: 2, Number: 1, Op: []byte("b")}}
	pp := &msg.PrePrepare{Instance: 0, View: 0, Seq: 1, Batch: msg.Batch{Requests: reqs}, From: 0}
	pp.Digest = pp.Batch.Digest()
	return pp, r.signed(pp)
}

func TestParseAndOptIn(t *testing.T) {
	for _, k := range Kinds {
		if got, err := Parse(string(k)); err != nil || got != k {
			t.Errorf("Parse(%q) = %q, %v", k, got, err)
		}
	}
	for _, bad := range []string{"", "crash", "twin", "Silent", "equivocate "} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted a behaviour that is no filter", bad)
		}
	}
	if err := OptIn(Silent, false, ""); !errors.Is(err, ErrNotOptedIn) {
		t.Errorf("OptIn without flag or env: %v; want ErrNotOptedIn", err)
	}
	for _, env := range []string{"0", "true", "yes", " 1"} {
		if err := OptIn(Silent, false, env); err == nil {
			t.Errorf("OptIn accepted %s=%q; only 1 opts in", UnsafeEnv, env)
		}
	}
	if OptIn(Silent, true, "") != nil || OptIn(Silent, false, "1") != nil {
		t.Error("OptIn refused the flag or the environment variable")
	}
}

// An equivocating primary sends replicas 3 (> n/2) a different batch for
// the same slot, validly signed; replicas 1 and 2 get the original; the
// other messages pass untouched.
func TestEquivocate(t *testing.T) {
	r := newRig(t, Equivocate)
	pp, frame := proposal(r)
	r.f.Broadcast(frame)
	var alt *msg.PrePrepare
	for _, s := range r.take() {
		got, ok := msg.UnmarshalAs[*msg.PrePrepare](s.frame)
		if !ok {
			t.Fatalf("to %d: not a pre-prepare", s.to)
		}
		switch {
		case s.to <= 2 && !bytes.Equal(s.frame, frame):
			t.Errorf("replica %d got an altered proposal", s.to)
		case s.to == 3:
			alt = got
		}
	}
	if alt == nil || alt.Digest == pp.Digest || alt.Seq != pp.Seq || alt.View != pp.View || !r.verifies(alt) {
		t.Fatalf("replica 3's proposal %+v: want a different, validly signed batch for the same slot", alt)
	}
	if alt.Digest != alt.Batch.Digest() {
		t.Error("the conflicting proposal's digest does not match its batch: it would be dropped as malformed, not as a conflict")
	}
	prep := r.signed(&msg.Prepare{Seq: 1, Digest: pp.Digest, From: 0})
	r.f.Send(3, prep)
	if out := r.take(); len(out) != 1 || !bytes.Equal(out[0].frame, prep) {
		t.Errorf("a prepare was altered: %v", out)
	}
	if r.f.Tampered() != 1 {
		t.Errorf("Tampered = %d; want 1", r.f.Tampered())
	}
}

// A lying replica's checkpoints carry another state digest under a valid
// signature.
func TestLieCheckpoint(t *testing.T) {
	r := newRig(t, LieCheckpoint)
	cp := &msg.Checkpoint{Seq: 16, State: msg.Digest{1, 2, 3}, From: 0}
	r.f.Send(2, r.signed(cp))
	out := r.take()
	if len(out) != 1 {
		t.Fatalf("sent %d frames; want 1", len(out))
	}
	got, ok := msg.UnmarshalAs[*msg.Checkpoint](out[0].frame)
	if !ok || got.State == cp.State || got.Seq != cp.Seq || !r.verifies(got) {
		t.Fatalf("checkpoint %+v: want a validly signed one for seq 16 with another state", got)
	}
}

// A dark primary withholds its proposals from the replicas DefaultDark
// leaves out (for 0 of 4: replica 1 is lit, 2 and 3 dark), and sends them
// everything else.
func TestDark(t *testing.T) {
	r := newRig(t, Dark)
	_, frame := proposal(r)
	r.f.Broadcast(frame)
	out := r.take()
	if len(out) != 1 || out[0].to != 1 {
		t.Fatalf("proposal went to %v; want replica 1 only", out)
	}
	r.f.Broadcast(r.signed(&msg.Commit{Seq: 1, From: 0}))
	if out := r.take(); len(out) != 3 {
		t.Fatalf("a commit went to %d replicas; want 3", len(out))
	}
}

// A silent replica drops what clients send, directly or relayed, and
// keeps the protocol's messages.
func TestSilent(t *testing.T) {
	r := newRig(t, Silent)
	relayed := msg.Marshal(&msg.ClientRequest{Request: msg.Request{Client: 1, Number: 1}})
	if r.f.AcceptClient() || r.f.AcceptPeer(relayed) {
		t.Error("a silent replica accepted a client's request")
	}
	if !r.f.AcceptPeer(r.signed(&msg.Prepare{Seq: 1, From: 1})) {
		t.Error("a silent replica dropped a prepare")
	}
	var correct *Filter
	if !correct.AcceptClient() || !correct.AcceptPeer(relayed) {
		t.Error("the nil filter (a correct replica) dropped a client request")
	}
}

// A flooding replica re-sends its own recent frames every tick, within
// FloodPerTick frames and FloodBytesPerTick bytes per peer.
func TestFloodIsBounded(t *testing.T) {
	r := newRig(t, Flood)
	small := r.signed(&msg.Commit{Seq: 1, From: 0})
	for i := 0; i < 3; i++ {
		r.f.Broadcast(small)
	}
	big := make([]byte, FloodBytesPerTick/3) // three fit in a tick's bytes, not four
	for i := 0; i < 2*FloodRecent; i++ {
		r.f.Broadcast(big)
	}
	r.take()
	for tick := 0; tick < 5; tick++ {
		r.f.Tick()
		per := map[msg.ReplicaID][2]int{}
		for _, s := range r.take() {
			c := per[s.to]
			per[s.to] = [2]int{c[0] + 1, c[1] + len(s.frame)}
		}
		if len(per) != 3 || per[0] != [2]int{} {
			t.Fatalf("tick %d: flooded %v; want replicas 1–3 only", tick, per)
		}
		for to, c := range per {
			if c[0] == 0 || c[0] > FloodPerTick || c[1] > FloodBytesPerTick {
				t.Fatalf("tick %d: %d frames, %d bytes to replica %d; want 1..%d frames within %d bytes", tick, c[0], c[1], to, FloodPerTick, FloodBytesPerTick)
			}
		}
	}
}

// A replaying replica keeps the first ReplayHistory frames it received
// and re-sends ReplayPerTick of them (fewer when one is drawn for itself)
// each tick.
func TestReplay(t *testing.T) {
	r := newRig(t, Replay)
	for i := 0; i < ReplayHistory+10; i++ {
		r.f.Received([]byte{byte(i), byte(i >> 8)})
	}
	if len(r.f.history) != ReplayHistory {
		t.Fatalf("kept %d frames; want %d", len(r.f.history), ReplayHistory)
	}
	total := 0
	for tick := 0; tick < 20; tick++ {
		r.f.Tick()
		out := r.take()
		if len(out) > ReplayPerTick {
			t.Fatalf("tick %d: replayed %d frames; want at most %d", tick, len(out), ReplayPerTick)
		}
		for _, s := range out {
			if s.to == 0 || s.to > 3 {
				t.Fatalf("replayed to replica %d", s.to)
			}
			if n := int(s.frame[0]) | int(s.frame[1])<<8; n >= ReplayHistory {
				t.Fatalf("replayed frame %d, received after the history was full", n)
			}
		}
		total += len(out)
	}
	if total == 0 {
		t.Fatal("nothing replayed in 20 ticks")
	}
}
