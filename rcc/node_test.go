package rcc

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"

	"github.com/braid-bft/braid/internal/coretest"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/pbft"
)

// cluster drives n paradigm nodes over a FIFO network, executing rounds on
// a hash chain so divergence is visible.
type cluster struct {
	*coretest.Net
	t        *testing.T
	nodes    []*Node
	rounds   [][]Round
	chain    []msg.Digest
	executed []map[msg.RequestKey]bool
	// dupRounds: per replica, one entry per duplicate the layer dropped
	// (Stats.Duplicates), naming the last round of the Ready it came with.
	dupRounds [][]uint64
}

func newCluster(t *testing.T, n, m int) *cluster {
	return newClusterWith(t, n, m, []msg.ClientID{0, 1, 2, 3, 4, 5, 6, 7})
}

// newClusterWith is newCluster with the given admitted clients.
func newClusterWith(t *testing.T, n, m int, clients []msg.ClientID) *cluster {
	c := &cluster{t: t}

	for i := 0; i < n; i++ {
		nd, err := New(Config{ID: msg.ReplicaID(i), N: n, M: m, Clients: clients, Instance: pbft.Config{
			Signer: coretest.Signer{ID: msg.ReplicaID(i)}, MaxBatch: 4, CheckpointInterval: 8, Window: 32,
			RequestTimeout: 30, ProgressTimeout: 30, ViewChangeTimeout: 30, RetransmitTicks: 5,
		}})
		if err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, nd)
		c.executed = append(c.executed, map[msg.RequestKey]bool{})
	}
	c.rounds = make([][]Round, n)
	c.dupRounds = make([][]uint64, n)
	c.chain = make([]msg.Digest, n)
	c.Net = coretest.NetFor(t, c.nodes, c.drain)
	return c
}

func (c *cluster) drain(i int) {
	nd := c.nodes[i]
	for nd.HasReady() {
		rd := nd.Ready()
		if k := len(rd.Rounds); k > 0 {
			for uint64(len(c.dupRounds[i])) < nd.Stats().Duplicates {
				c.dupRounds[i] = append(c.dupRounds[i], rd.Rounds[k-1].Round)
			}
		}
		for _, o := range rd.Messages {
			c.Output(msg.ReplicaID(i), o.Broadcast, o.To, o.Msg)
		}
		if rd.StateTransfer != nil {
			c.t.Fatalf("replica %d needs state transfer; the unit harness does not do that", i)
		}
		for _, r := range rd.Rounds {
			c.rounds[i] = append(c.rounds[i], r)
			for _, e := range r.Entries {
				c.executed[i][e.Request.Key()] = true
			}
			for _, b := range r.Batches {
				c.chain[i] = sha256.Sum256(append(c.chain[i][:], b.Digest[:]...))
			}
			if r.Round%8 == 0 {
				nd.Checkpoint(r.Round, c.chain[i])
			}
		}
	}
}

// submit sends a request to its instance's primary, or (broadcast) to all.
func (c *cluster) submit(r msg.Request, broadcast bool) {
	ref := c.live()
	inst := ref.InstanceFor(r.Client)
	if target, _, ok := msg.ParseInstanceChange(r.Op); ok {
		inst = target
	}
	primary := ref.Instance(int(inst)).Primary()
	for i, nd := range c.nodes {
		if c.Down[msg.ReplicaID(i)] {
			continue
		}
		if broadcast || primary == msg.ReplicaID(i) {
			nd.Request(r)
			c.drain(i)
		}
	}
}

func (c *cluster) live() *Node {
	for i, nd := range c.nodes {
		if !c.Down[msg.ReplicaID(i)] {
			return nd
		}
	}
	return nil
}

func (c *cluster) checkAgreement() {
	c.t.Helper()
	for i := range c.rounds {
		for j := range c.rounds {
			a, b := c.rounds[i], c.rounds[j]
			for k := 0; k < min(len(a), len(b)); k++ {
				if a[k].Round != b[k].Round || a[k].Seed != b[k].Seed || len(a[k].Batches) != len(b[k].Batches) {
					c.t.Fatalf("replicas %d and %d executed round %d differently", i, j, a[k].Round)
				}
				for x := range a[k].Batches {
					if a[k].Batches[x].Digest != b[k].Batches[x].Digest {
						c.t.Fatalf("replicas %d and %d ordered round %d differently", i, j, a[k].Round)
					}
				}
			}
		}
	}
}

func TestRoundsExecuteIdenticallyEverywhere(t *testing.T) {
	for _, tc := range []struct{ n, m int }{{4, 1}, {4, 3}, {4, 4}, {7, 5}, {7, 7}} {
		t.Run(fmt.Sprintf("n=%d/m=%d", tc.n, tc.m), func(t *testing.T) {
			c := newCluster(t, tc.n, tc.m)
			var keys []msg.RequestKey
			for num := uint64(1); num <= 10; num++ {
				for cl := msg.ClientID(0); cl < 12; cl++ {
					r := msg.Request{Client: cl, Number: num, Op: []byte("x")}
					keys = append(keys, r.Key())
					c.submit(r, false)
				}
				c.Tick(1)
			}
			c.Tick(5)
			c.checkAgreement()
			for i := range c.nodes {
				for _, k := range keys {
					if !c.executed[i][k] {
						t.Fatalf("replica %d never executed %v (executed %d rounds)", i, k, c.nodes[i].Executed())
					}
				}
			}
		})
	}
}

func TestIdleClusterIsSilent(t *testing.T) {
	c := newCluster(t, 4, 4)
	c.submit(msg.Request{Client: 1, Number: 1, Op: []byte("x")}, false)
	c.Tick(5)
	if c.nodes[0].Executed() == 0 {
		t.Fatal("nothing executed")
	}
	before := c.Sent
	c.Tick(200)
	if c.Sent != before {
		t.Fatalf("idle cluster sent %d messages in 200 ticks", c.Sent-before)
	}
}

// checkPrimaries asserts Invariant 3.6 across the live replicas that
// executed the same number of rounds: identical primary and failed state,
// primary injective, never mapping to a failed replica.
func (c *cluster) checkPrimaries() {
	c.t.Helper()
	ref := c.live()
	for i, nd := range c.nodes {
		if c.Down[msg.ReplicaID(i)] || nd.Executed() != ref.Executed() {
			continue
		}
		if fmt.Sprint(nd.Primaries(), nd.Failed()) != fmt.Sprint(ref.Primaries(), ref.Failed()) {
			c.t.Fatalf("replica %d has primaries %v failed %v; replica %d has %v %v", i, nd.Primaries(), nd.Failed(), ref.cfg.ID, ref.Primaries(), ref.Failed())
		}
	}
	seen := map[msg.ReplicaID]bool{}
	for _, p := range ref.Primaries() {
		if seen[p] {
			c.t.Fatalf("primary %d serves two instances: %v", p, ref.Primaries())
		}
		seen[p] = true
		for _, f := range ref.Failed() {
			if f == p {
				c.t.Fatalf("failed replica %d is a primary: %v / %v", p, ref.Primaries(), ref.Failed())
			}
		}
	}
}

func (c *cluster) mustExecute(keys []msg.RequestKey) {
	c.t.Helper()
	for i := range c.nodes {
		if c.Down[msg.ReplicaID(i)] {
			continue
		}
		for _, k := range keys {
			if !c.executed[i][k] {
				c.t.Fatalf("replica %d never executed %v (executed %d rounds)", i, k, c.nodes[i].Executed())
			}
		}
	}
}

// Unified primary replacement (m ≤ n−f): with instance 0's primary crashed,
// the other instances keep deciding (wait-freedom); instance 0 is suspected
// through the soft-failure rule, its failure decision is executed, Figure 4
// picks replica 3 (the smallest neither failed nor in use), and every
// request — instance 0's clients' too — executes.
func TestCrashedPrimaryIsReplaced(t *testing.T) {
	c := newCluster(t, 4, 3)
	c.Down[0] = true
	var keys []msg.RequestKey
	for num := uint64(1); num <= 10; num++ {
		for cl := msg.ClientID(0); cl < 6; cl++ {
			r := msg.Request{Client: cl, Number: num, Op: []byte("y")}
			keys = append(keys, r.Key())
			c.submit(r, cl%3 == 0) // instance 0's clients are ignored: they broadcast
		}
		c.Tick(1)
	}
	if got := c.nodes[1].Instance(1).LastDecided(); got < 10 {
		t.Fatalf("instance 1 decided only %d rounds while instance 0 was down", got)
	}
	c.Tick(300)
	c.checkAgreement()
	c.checkPrimaries()
	c.mustExecute(keys)
	if got := fmt.Sprint(c.nodes[1].Primaries(), c.nodes[1].Failed()); got != "[3 1 2] [0]" {
		t.Fatalf("primaries/failed = %s, want [3 1 2] [0]", got)
	}
}

// The soft-failure detector judges a primary by what it proposed, not by
// what its instance decided: a primary that proposes promptly has done its
// part, and rounds that then decide slowly (every instance shares the
// replicas' cores and disks) are the replicas' delay. Under overload,
// suspecting by decisions replaced correct primaries in a storm (braid
// bench with 1024 clients: 207 lagging-instance view changes in 10 s).
func TestProposingPrimaryIsNotTakenForThrottling(t *testing.T) {
	var clients []msg.ClientID
	for id := msg.ClientID(0); id < 200; id++ {
		clients = append(clients, id)
	}
	c := newClusterWith(t, 4, 2, clients)
	c.Tick(31) // past the first view's grace period
	c.Drop = func(e coretest.Envelope) bool {
		cm, ok := e.Msg.(*msg.Commit)
		return ok && cm.Instance == 0 // instance 0's rounds are proposed but do not decide
	}
	ref := c.nodes[1]
	sigma := ref.cfg.Sigma
	sent := uint64(0)
	for _, id := range clients {
		if ref.InstanceFor(id) == 1 && sent < 4*(sigma+4) { // full batches of 4 are cut at once
			c.submit(msg.Request{Client: id, Number: 1, Op: []byte("w")}, false)
			c.Settle()
			sent++
		}
	}
	c.Tick(1)
	i0, i1 := ref.Instance(0), ref.Instance(1)
	if i1.LastDecided() < i0.LastDecided()+sigma {
		t.Fatalf("instance 1 decided %d, instance 0 %d: no gap of σ = %d, the test shows nothing", i1.LastDecided(), i0.LastDecided(), sigma)
	}
	if i0.ProposedThrough()+sigma <= i1.LastDecided() {
		t.Fatalf("instance 0's primary proposed only through %d; its fills should have kept up with %d", i0.ProposedThrough(), i1.LastDecided())
	}
	for i, nd := range c.nodes {
		if st := nd.Stats(); st.SoftFailures != 0 {
			t.Errorf("replica %d suspected a primary that proposed every round %d times", i, st.SoftFailures)
		}
	}
}

// A healthy instance whose window is full because execution waits on a
// stuck one is not suspected: its primary has proposed all it may, and the
// requests backups relay to it wait for the window, not for the primary.
// Suspecting it — the request timer firing on every backup — turned one
// faulty instance into view changes of every correct instance at once (sim
// f-byzantine-primaries, n = 16: the view-change storm that grew the
// simulator's heap past 8 GB). Instance 0's commits are lost, so it never
// decides and execution never starts; instance 1 fills its window and
// queues the rest.
func TestFullWindowBehindStuckInstanceIsNotSuspected(t *testing.T) {
	var clients []msg.ClientID
	for id := msg.ClientID(0); id < 400; id++ {
		clients = append(clients, id)
	}
	c := newClusterWith(t, 4, 2, clients)
	c.Drop = func(e coretest.Envelope) bool {
		cm, ok := e.Msg.(*msg.Commit)
		return ok && cm.Instance == 0
	}
	ref := c.nodes[1]
	w := uint64(32) // the cluster's window
	sent := uint64(0)
	for _, id := range clients {
		if ref.InstanceFor(id) == 1 && sent < 4*w+16 { // a window of full batches of 4, and more
			c.submit(msg.Request{Client: id, Number: 1, Op: []byte("w")}, true) // broadcast: the backups watch it
			sent++
		}
	}
	c.Tick(100) // RequestTimeout is 30
	if got := ref.Instance(1).LastDecided(); got != w {
		t.Fatalf("instance 1 decided %d rounds, want its window of %d: the test shows nothing", got, w)
	}
	if ref.Executed() != 0 {
		t.Fatalf("executed %d rounds with instance 0 stuck: the test shows nothing", ref.Executed())
	}
	for i, nd := range c.nodes {
		if v, _ := nd.Instance(1).View(); v != 0 {
			t.Fatalf("replica %d moved healthy instance 1 to view %d (%s) while its window waited on instance 0", i, v, nd.Instance(1).ViewChangeReason())
		}
	}
}

// In-place recovery (m = n): the crashed primary keeps its instance, which
// skips rounds with a doubling penalty; its clients move to another instance
// with an instance-change request and get served there.
func TestInPlaceRecoveryAndInstanceChange(t *testing.T) {
	c := newCluster(t, 4, 4)
	if c.nodes[1].Config().Policy != InPlace {
		t.Fatalf("m=n should default to in-place, got %v", c.nodes[1].Config().Policy)
	}
	c.Down[0] = true
	var keys []msg.RequestKey
	for num := uint64(1); num <= 5; num++ {
		for cl := msg.ClientID(1); cl < 4; cl++ {
			r := msg.Request{Client: cl, Number: num, Op: []byte("z")}
			keys = append(keys, r.Key())
			c.submit(r, false)
		}
		c.Tick(1)
	}
	// Client 4 is served by instance 0, whose primary is dead: it asks
	// instance 1 to take it over, then keeps sending.
	c.submit(msg.Request{Client: 4, Number: 1, Op: msg.InstanceChangeOp(1, []byte("change"))}, false)
	c.Tick(1000)
	if got := c.nodes[1].InstanceFor(4); got != 1 {
		t.Fatalf("client 4 served by instance %d after its instance change, want 1", got)
	}
	for num := uint64(2); num <= 6; num++ {
		r := msg.Request{Client: 4, Number: num, Op: []byte("moved")}
		keys = append(keys, r.Key())
		c.submit(r, false)
		c.Tick(2)
	}
	c.Tick(200)
	c.checkAgreement()
	c.mustExecute(keys)
	if f := c.nodes[1].Stats().Failures; f == 0 {
		t.Fatal("instance 0 never failed")
	}
	if got := c.nodes[1].Primaries()[0]; got != 0 {
		t.Fatalf("in-place recovery handed instance 0 to %d, want its own primary 0", got)
	}
}

// The load cap: an instance refuses an instance change once it serves
// ⌈|C|/(m−f)⌉ clients.
func TestInstanceChangeLoadCap(t *testing.T) {
	a := newAssignment(4, []msg.ClientID{0, 1, 2, 3, 4, 5, 6, 7}, 1) // cap ⌈8/3⌉ = 3; instance 1 serves clients 1 and 5
	if moved, why := a.change(0, 1, 1, 10, 20); !moved {
		t.Fatalf("first move refused: %v", why)
	}
	if moved, why := a.change(4, 1, 1, 10, 20); moved || why != RefusedFull {
		t.Fatalf("move beyond the cap: moved %v (%v), want refused at the cap", moved, why)
	}
	if a.instanceOf(0, 19) != 0 || a.instanceOf(0, 20) != 1 {
		t.Fatal("move not effective exactly at its round")
	}
	if moved, why := a.change(2, 3, 1, 10, 20); moved || why != RefusedWrongInstance {
		t.Fatalf("instance change ordered by the wrong instance: moved %v (%v)", moved, why)
	}
	if moved, why := a.change(0, 1, 1, 11, 21); !moved || why != NotRefused {
		t.Fatalf("instance change to where the client already is: moved %v (%v), want granted", moved, why)
	}
	if moved, why := a.change(99, 2, 2, 11, 21); moved || why != RefusedUnknownClient {
		t.Fatalf("instance change of an unadmitted client: moved %v (%v)", moved, why)
	}
	if moved, why := a.change(3, 4, 4, 11, 21); moved || why != RefusedNoInstance {
		t.Fatalf("instance change to instance 4 of 4: moved %v (%v)", moved, why)
	}
	if moved, why := newAssignment(4, nil, 1).change(0, 1, 1, 1, 2); moved || why != RefusedDisabled {
		t.Fatalf("instance change without admitted clients: moved %v (%v)", moved, why)
	}
}

func TestStateRoundTrip(t *testing.T) {
	c := newCluster(t, 4, 3)
	nd := c.nodes[1]
	nd.prim.fail(0, 1)
	nd.clients.change(0, 1, 1, 5, 9)
	b := nd.State()
	other := c.nodes[2]
	if err := other.SetState(b); err != nil {
		t.Fatal(err)
	}
	if other.StateDigest() != nd.StateDigest() {
		t.Fatal("state differs after SetState")
	}
	before := other.StateDigest()
	for _, bad := range [][]byte{nil, b[:len(b)-1], append(append([]byte(nil), b...), 0), []byte("garbage")} {
		if err := other.SetState(bad); err == nil {
			t.Fatalf("SetState accepted %d bad bytes", len(bad))
		}
		if other.StateDigest() != before {
			t.Fatal("failed SetState changed the state")
		}
	}
}

// With f = 0 and m = n every replica leads an instance: a failure must keep
// the primary rather than run out of candidates.
func TestReplacementWithoutSpares(t *testing.T) {
	pr := newPrimaries(3, 3, Replace)
	if p := pr.fail(0, 1); p != 0 {
		t.Fatalf("new primary %d, want the only possible one, 0", p)
	}
	if p := pr.fail(0, 2); p != 0 {
		t.Fatalf("second failure: new primary %d, want 0", p)
	}
}

// Admitted client ids need not be 0…|C|−1: the configuration lists keys with
// explicit ids. Instance changes work for any admitted id, and the load cap
// counts the admitted clients wherever their ids fall.
func TestInstanceChangeSparseClientIDs(t *testing.T) {
	// |C| = 3, m−f = 3: cap 1. Initially 1000 → instance 0, 17 → 1, 3 → 3.
	c := newClusterWith(t, 4, 4, []msg.ClientID{1000, 17, 3, 17})
	change := func(cl msg.ClientID, target uint32) {
		c.submit(msg.Request{Client: cl, Number: 1, Op: msg.InstanceChangeOp(target, []byte("op"))}, true)
		c.Tick(300)
	}
	change(1000, 2)
	if got := c.nodes[1].InstanceFor(1000); got != 2 {
		t.Fatalf("client 1000 served by instance %d after its instance change to 2, want 2", got)
	}
	change(3, 1) // instance 1 serves 17: at the cap
	if got := c.nodes[1].InstanceFor(3); got != 3 {
		t.Fatalf("client 3 moved to instance %d beyond the cap, want it to stay at 3", got)
	}
	change(17, 0) // instance 0 is empty since 1000 left
	if got := c.nodes[1].InstanceFor(17); got != 0 {
		t.Fatalf("client 17 served by instance %d after its instance change to 0, want 0", got)
	}
	c.checkAgreement()
}

// With m < n the paper's cap ⌈|C|/(n−f)⌉ can hold fewer clients than the
// m−f instances that are sure to have correct primaries must take between
// them: at n = 4, m = 2 and eight clients it is 3, so once instance 0's
// primary stops serving, its four clients cannot all move to instance 1,
// which already serves four — they would wait forever. The cap counts the
// instances that are sure to work, m−f.
func TestInstanceChangeLoadCapFewerInstances(t *testing.T) {
	clients := []msg.ClientID{0, 1, 2, 3, 4, 5, 6, 7} // even ids → instance 0, odd → 1
	a := newClusterWith(t, 4, 2, clients).nodes[1].clients
	for _, c := range []msg.ClientID{0, 2, 4, 6} {
		if moved, why := a.change(c, 1, 1, 10, 20); !moved {
			t.Fatalf("client %d could not leave instance 0 for instance 1 (n = 4, m = 2, f = 1): %v", c, why)
		}
	}
	if got := a.load(1); got != 8 {
		t.Fatalf("instance 1 serves %d clients, want all 8", got)
	}
	// m ≤ f: no instance is sure to work, so no cap applies.
	b := newClusterWith(t, 4, 1, clients).nodes[1].clients
	if b.cap != len(clients) {
		t.Fatalf("cap with m = 1, f = 1: %d, want |C| = %d", b.cap, len(clients))
	}
}

// In-place recovery hands a failed instance back to its own primary, so
// with m ≤ f the f faulty replicas can be every instance's primary for
// good and nothing is ever ordered (swarm seeds 2065, 2265, 3491: two
// instances, both primaries Byzantine, no request completed). The
// configuration is refused; replace (valid at any m ≤ n − f) is the choice.
func TestInPlaceNeedsMoreInstancesThanFaults(t *testing.T) {
	for _, tc := range []struct{ n, m int }{{4, 1}, {7, 2}, {10, 3}} {
		_, err := New(Config{ID: 0, N: tc.n, M: tc.m, Policy: InPlace, Instance: pbft.Config{Signer: coretest.Signer{ID: 0}}})
		if err == nil || !strings.Contains(err.Error(), "in-place needs m > f") {
			t.Errorf("n=%d m=%d in-place: err %v; want a refusal", tc.n, tc.m, err)
		}
		if _, err := New(Config{ID: 0, N: tc.n, M: tc.m, Policy: Replace, Instance: pbft.Config{Signer: coretest.Signer{ID: 0}}}); err != nil {
			t.Errorf("n=%d m=%d replace: %v", tc.n, tc.m, err)
		}
		if _, err := New(Config{ID: 0, N: tc.n, M: tc.m + 1, Policy: InPlace, Instance: pbft.Config{Signer: coretest.Signer{ID: 0}}}); err != nil {
			t.Errorf("n=%d m=%d in-place: %v", tc.n, tc.m+1, err)
		}
	}
}
