package shell

import (
	"testing"

	"github.com/braid-bft/braid/internal/testcluster"
	"github.com/braid-bft/braid/msg"
)

type fakeConn struct{ id msg.ClientID }

func (c fakeConn) Client() msg.ClientID { return c.id }
func (c fakeConn) Send([]byte)          {}

// Status reports what the replica executed, per instance that ordered it,
// and the instances' own state; Received sees a client's request as it
// arrives, before admission (production's latency clock starts there).
func TestStatusReportsExecution(t *testing.T) {
	cfg, ckey := testcluster.Config(t, 4, false)
	var received []msg.Request
	r := testShell(t, cfg, 1, Deps{Disk: syncDisk{testcluster.MemStore(t)},
		Observer: Observer{Received: func(req *msg.Request) { received = append(received, *req) }}})
	state := r.node.State()
	executeDurably(r, roundOf(1, state, put(ckey, 0, 1, "a", "1")))
	two := roundOf(2, state, put(ckey, 0, 2, "b", "2"), put(ckey, 0, 3, "c", "3"))
	two.Entries[1].Instance = 2
	executeDurably(r, two)

	st := r.Status()
	if st.ID != 1 || st.N != 4 || st.M != cfg.M || st.Round != 2 || st.Head != r.Head() || st.Failed != "" || st.Transferring {
		t.Fatalf("status %+v", st)
	}
	if st.Applied < 2 || st.Durable != st.Applied || st.Held != 0 {
		t.Fatalf("pipeline: applied %d durable %d held %d", st.Applied, st.Durable, st.Held)
	}
	if len(st.Instances) != cfg.M {
		t.Fatalf("%d instances, want %d", len(st.Instances), cfg.M)
	}
	for i, want := range []uint64{2, 0, 1} {
		in := st.Instances[i]
		if in.Instance != i || in.Executed != want || in.Primary != msg.ReplicaID(i) || in.Changing || in.Skipping {
			t.Errorf("instance %d: %+v, want %d executed", i, in, want)
		}
	}

	req := put(ckey, 0, 4, "d", "4")
	r.OnClient(fakeConn{0}, msg.Marshal(&msg.ClientRequest{Request: req}))
	if len(received) != 1 || received[0].Number != 4 {
		t.Fatalf("Received saw %+v", received)
	}
}
