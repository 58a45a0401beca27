package transport

import "testing"

// Queues reports each peer's outbound queue: frames sent before Start wait
// there, counted with their length headers.
func TestQueuesReportPerPeerDepth(t *testing.T) {
	k0, k1, k2 := newKey(t), newKey(t), newKey(t)
	tr, err := New(Config{ID: 0, Listen: "127.0.0.1:0", Key: k0, Peers: map[int]Peer{
		0: {Addr: "127.0.0.1:1", PublicKey: pub(k0)},
		1: {Addr: "127.0.0.1:1", PublicKey: pub(k1)},
		2: {Addr: "127.0.0.1:1", PublicKey: pub(k2)},
	}}, func(int, []byte) {}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for range 3 {
		if err := tr.Send(2, make([]byte, 10)); err != nil {
			t.Fatal(err)
		}
	}
	q := tr.Queues()
	if len(q) != 2 || q[0] != (Queue{Peer: 1}) || q[1] != (Queue{Peer: 2, Frames: 3, Bytes: 3 * (10 + frameHeaderLen)}) {
		t.Fatalf("queues %+v", q)
	}
}
