package shell

import (
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/braid-bft/braid/app/kv"
	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/internal/testcluster"
	"github.com/braid-bft/braid/msg"
)

// Tests for docs/adversary.md: what a client can send a replica.

// A client request reaches the core only with a valid signature by the
// client the connection authenticated as: a flipped bit, an empty or
// oversized signature, a signature lifted from another request, a request
// in another client's name and one from a client that is not admitted are
// all dropped before the core (the primary proposes none of them); the
// valid request that follows is proposed.
func TestInvalidClientRequestsAreNotProposed(t *testing.T) {
	cfg, ckey := testcluster.Config(t, 4, false)
	net := &recordNet{}
	sh := testShell(t, cfg, 0, Deps{Net: net, Disk: syncDisk{testcluster.MemStore(t)}}) // replica 0 leads client 0's instance 0
	good := put(ckey, 0, 1, "k", "v")
	flipped := good
	flipped.Sig = append([]byte(nil), good.Sig...)
	flipped.Sig[len(flipped.Sig)-1] ^= 1
	empty := good
	empty.Sig = nil
	long := good
	long.Sig = append(append([]byte(nil), good.Sig...), good.Sig...)
	lifted := put(ckey, 0, 1, "other", "value")
	lifted.Sig = good.Sig
	wrongKey := msg.Request{Client: 0, Number: 1, Op: kv.Put([]byte("k"), []byte("v"))}
	_, priv, err := auth.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	wrongKey.Sig = auth.ClientSigner(priv).Sign(wrongKey.SignedBytes())
	unadmitted := put(ckey, 7, 1, "k", "v")
	cases := []struct {
		name string
		conn msg.ClientID
		req  msg.Request
	}{
		{"flipped bit", 0, flipped},
		{"empty signature", 0, empty},
		{"oversized signature", 0, long},
		{"signature lifted from another request", 0, lifted},
		{"signed with another key", 0, wrongKey},
		{"in another client's name", 7, good},
		{"client not admitted", 7, unadmitted},
	}
	proposed := func() int {
		k := 0
		for _, m := range net.sent {
			if pp, ok := m.(*msg.PrePrepare); ok {
				k += len(pp.Batch.Requests)
			}
		}
		return k
	}
	for _, tc := range cases {
		sh.OnClient(&conn{id: tc.conn}, msg.Marshal(&msg.ClientRequest{Request: tc.req}))
		for range 3 {
			sh.Flush()
			sh.Tick()
		}
		if got := proposed(); got != 0 {
			t.Fatalf("%s: the primary proposed %d requests, want none", tc.name, got)
		}
	}
	sh.OnClient(&conn{id: 0}, msg.Marshal(&msg.ClientRequest{Request: good}))
	for range 3 {
		sh.Flush()
		sh.Tick()
	}
	if got := proposed(); got != 1 {
		t.Fatalf("the valid request: proposed %d requests, want 1", got)
	}
}

// A Fetch is unsigned and cheap to send, and its answer is blocks: what
// bounds the amplification is that a replica answers only a Fetch in the
// link peer's own name, only for blocks it has executed, and with at most
// msg.MaxFetchBlocks blocks and half a message's bytes however wide the
// range asked. (How often a peer may ask: TestFetchFloodIsBoundedPerPeer.)
func TestFetchAnswersAreBounded(t *testing.T) {
	cfg, ckey := testcluster.Config(t, 4, false)
	net := &frameNet{}
	src := testShell(t, cfg, 2, Deps{Net: net, Disk: syncDisk{testcluster.MemStore(t)}})
	state := src.node.State()
	const rounds = msg.MaxFetchBlocks + 48 // a checkpoint round: its paradigm state is kept
	for round := uint64(1); round <= rounds; round++ {
		src.execute(roundOf(round, state, put(ckey, 0, round, "a", fmt.Sprint(round))))
	}
	src.Flush()
	net.frames = nil
	for _, tc := range []struct {
		name string
		from msg.ReplicaID
		f    msg.Fetch
	}{
		{"in another replica's name", 1, msg.Fetch{From: 1, To: 10, Sender: 3}},
		{"beyond what it executed", 1, msg.Fetch{From: 1, To: rounds + 1, Sender: 1}},
		{"from height 0", 1, msg.Fetch{From: 0, To: 10, Sender: 1}},
		{"an empty range", 1, msg.Fetch{From: 10, To: 9, Sender: 1}},
	} {
		src.deliver(tc.from, &tc.f)
		src.Flush()
		if k := len(net.frames); k != 0 {
			t.Fatalf("%s: answered with %d messages, want none", tc.name, k)
		}
	}
	src.deliver(1, &msg.Fetch{From: 1, To: rounds, Sender: 1})
	src.Flush()
	if k := len(net.frames); k != 1 {
		t.Fatalf("a valid fetch got %d answers, want 1", k)
	}
	size := len(net.frames[0])
	m, err := msg.Unmarshal(net.frames[0])
	if err != nil {
		t.Fatalf("the answer (%d bytes) does not decode at its receiver: %v", size, err)
	}
	bl := m.(*msg.Blocks)
	t.Logf("fetch of %d blocks: answered %d blocks, %d bytes", rounds, len(bl.Blocks), size)
	if len(bl.Blocks) == 0 || len(bl.Blocks) > msg.MaxFetchBlocks || size > msg.MaxMessageBytes/2+1024 {
		t.Fatalf("answer of %d blocks, %d bytes: want 1..%d blocks within half of %d bytes",
			len(bl.Blocks), size, msg.MaxFetchBlocks, msg.MaxMessageBytes)
	}
}

// frameNet keeps the frames the shell sent, undecoded.
type frameNet struct{ frames [][]byte }

func (n *frameNet) Send(to msg.ReplicaID, frame []byte) { n.frames = append(n.frames, frame) }
func (n *frameNet) Broadcast(frame []byte)              { n.frames = append(n.frames, frame) }

// A Fetch is a few dozen bytes and its answer up to half a message: a
// peer that sends a thousand of them in one period gets answers only up to
// its budget (Config.FetchAnswerBytes), the rest are counted as dropped,
// and another peer's Fetch is still answered from its own budget. The
// latest Fetch over budget waits for the refill instead of being dropped,
// so a correct replica that hits the budget is slowed, not stalled.
func TestFetchFloodIsBoundedPerPeer(t *testing.T) {
	cfg, ckey := testcluster.Config(t, 4, false)
	scfg, keyring, err := FromConfig(cfg, 2)
	if err != nil {
		t.Fatal(err)
	}
	const budget = 64 << 10
	scfg.FetchAnswerBytes = budget
	net := &peerNet{}
	src, err := New(scfg, Deps{Net: net, Disk: syncDisk{testcluster.MemStore(t)}, Crypto: testCrypto{keyring},
		Worker: inline{}, Logger: testcluster.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	state := src.node.State()
	for round := uint64(1); round <= 40; round++ {
		src.execute(roundOf(round, state, put(ckey, 0, round, "a", fmt.Sprint(round))))
	}
	src.Flush()
	net.reset()
	const flood = 1000
	fetch := msg.Fetch{From: 1, To: 16, Sender: 1} // to a checkpoint, as a correct replica asks
	for range flood {
		f := fetch
		src.deliver(1, &f)
	}
	src.Flush()
	answers, bytes, largest := net.blocks(t, 1)
	t.Logf("%d fetches: %d answers, %d bytes (budget %d, largest answer %d bytes)", flood, answers, bytes, budget, largest)
	if answers == 0 || bytes > budget+largest {
		t.Fatalf("%d fetches in one period: %d answers, %d bytes; want 1 or more, at most the budget %d plus one answer",
			flood, answers, bytes, budget)
	}
	if got, want := src.Stats().FetchOverBudget, uint64(flood-answers-1); got != want {
		t.Fatalf("counted %d fetches over budget, want %d (all but the answered and the one waiting)", got, want)
	}
	src.deliver(3, &msg.Fetch{From: 1, To: 16, Sender: 3})
	src.Flush()
	if k, _, _ := net.blocks(t, 3); k != 1 {
		t.Fatalf("another peer's fetch got %d answers, want 1", k)
	}
	net.reset()
	for range scfg.Core.Instance.RetransmitTicks + 10 {
		src.Tick()
		src.Flush()
	}
	if k, _, _ := net.blocks(t, 1); k != 1 {
		t.Fatalf("after the refill the flooding peer got %d answers, want 1 (the fetch that waited)", k)
	}
}

// peerNet keeps the frames the shell sent to each peer.
type peerNet struct{ sent map[msg.ReplicaID][][]byte }

func (n *peerNet) Send(to msg.ReplicaID, frame []byte) {
	if n.sent == nil {
		n.sent = map[msg.ReplicaID][][]byte{}
	}
	n.sent[to] = append(n.sent[to], frame)
}
func (n *peerNet) Broadcast(frame []byte) {}
func (n *peerNet) reset()                 { n.sent = nil }

// blocks counts the Blocks answers sent to peer, their encoded bytes and
// the largest one's.
func (n *peerNet) blocks(t *testing.T, peer msg.ReplicaID) (answers, bytes, largest int) {
	t.Helper()
	for _, frame := range n.sent[peer] {
		m, err := msg.Unmarshal(frame)
		if err != nil {
			t.Fatalf("a frame to peer %d does not decode: %v", peer, err)
		}
		if _, ok := m.(*msg.Blocks); ok {
			answers++
			bytes += len(frame)
			largest = max(largest, len(frame))
		}
	}
	return answers, bytes, largest
}
