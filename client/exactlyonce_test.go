package client

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/braid-bft/braid/app"
	"github.com/braid-bft/braid/app/bank"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/transport"
)

// ledger models the replicated execution of a 4-replica in-place cluster
// (m = n, so instance i's primary is replica i) closely enough to show
// double execution: one bank application (all correct replicas hold the
// same one), per-client request numbers with a reply cache on every
// replica, and a primary that only delays one request. Ordering happens
// when the primary of the client's instance receives a request; the
// delaying primary holds the request it delays until the client's instance
// change arrives, and orders it just before the change — the abandoned
// request executes after the client gave up on it.
type ledger struct {
	cl       *fakeCluster
	bank     *bank.Bank
	instance map[msg.ClientID]uint32 // the instance serving each client
	delayer  int                     // the delaying primary
	delay    []byte                  // the op it delays (once)
	held     *msg.Request
	delayed  bool
	drop     bool           // the delaying primary never orders the request at all
	refuse   bool           // instance changes are refused (the op still executes)
	deaf     bool           // instance changes to an instance other than the client's are ignored
	ran      map[string]int // executions per op
}

func newLedger(cl *fakeCluster, delayer int, delay []byte) *ledger {
	lg := &ledger{cl: cl, bank: bank.New(), instance: map[msg.ClientID]uint32{}, delayer: delayer, delay: delay, ran: map[string]int{}}
	for _, fr := range cl.reps {
		fr.mode = custom
		fr.handler = lg.onRequest
	}
	return lg
}

func (lg *ledger) instanceOf(c msg.ClientID) uint32 {
	if i, ok := lg.instance[c]; ok {
		return i
	}
	return uint32(uint64(c) % uint64(len(lg.cl.reps)))
}

// onRequest runs under cl.mu for every request a replica receives.
func (lg *ledger) onRequest(fr *fakeReplica, c *transport.ClientConn, req msg.Request) {
	fr.conns[req.Client] = c
	if req.Number <= fr.last[req.Client] {
		if rep := fr.cache[req.Client]; rep != nil && rep.Number == req.Number {
			fr.send(c, rep)
		}
		return
	}
	if target, _, ok := msg.ParseInstanceChange(req.Op); ok {
		if lg.deaf && target != lg.instanceOf(req.Client) {
			return
		}
		// The target instance orders the change. The delaying primary's
		// proposal lands first.
		if lg.held != nil && !lg.drop {
			lg.order(*lg.held)
			lg.held = nil
		}
		lg.order(req)
		return
	}
	if uint32(fr.id) != lg.instanceOf(req.Client) {
		return // a backup relays to the primary
	}
	if fr.id == lg.delayer && bytes.Equal(req.Op, lg.delay) && (!lg.delayed || lg.held != nil) {
		if lg.held == nil {
			held := req
			lg.held, lg.delayed = &held, true
		}
		return
	}
	lg.order(req)
}

// order executes an ordered request on every replica: skipped if its
// number is not above the client's last executed one.
func (lg *ledger) order(req msg.Request) {
	if req.Number <= lg.cl.reps[0].last[req.Client] {
		return
	}
	op, outcome, instance := req.Op, msg.Executed, lg.instanceOf(req.Client)
	if target, inner, ok := msg.ParseInstanceChange(req.Op); ok {
		// The change executes the operation it carries, moved or not.
		op, outcome, instance = inner, msg.NotMoved, target
		if !lg.refuse || target == lg.instanceOf(req.Client) {
			lg.instance[req.Client] = target
			outcome = msg.Moved
		}
	}
	result := lg.bank.Execute(app.CallerID(uint64(req.Client)), op)
	lg.ran[string(op)]++
	for _, fr := range lg.cl.reps {
		fr.last[req.Client] = req.Number
		rep := &msg.Reply{Client: req.Client, Number: req.Number, Primary: msg.NoReplica, Outcome: outcome, Instance: instance,
			Result: result, From: msg.ReplicaID(fr.id)}
		fr.cache[req.Client] = rep
		if c := fr.conns[req.Client]; c != nil {
			fr.send(c, rep)
		}
	}
}

func (lg *ledger) balance(t *testing.T, acct string) uint64 {
	t.Helper()
	lg.cl.mu.Lock()
	defer lg.cl.mu.Unlock()
	v, err := bank.DecodeBalance(lg.bank.Execute(app.CallerID(0), bank.Balance(acct)))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A primary that only delays a bank transfer makes the client (in-place
// recovery) time out and change instance. The delayed transfer is ordered
// after the client gave up on it; the transfer must still be paid exactly
// once, and Submit must return its result.
func TestInstanceChangeDelayedTransferPaidOnce(t *testing.T) {
	cl, lg, c, transfer := bankFixture(t, nil)
	if !c.inPlace {
		t.Fatal("the fake cluster (m = n) should be under in-place recovery")
	}
	submitTransferOnce(t, cl, lg, c, transfer)
	// Later requests are served (by the new instance or the old one).
	if _, err := c.Submit(guardCtx(t), bank.Deposit("bob", 1)); err != nil {
		t.Fatal(err)
	}
	if b := lg.balance(t, "bob"); b != 31 {
		t.Fatalf("bob has %d after a deposit of 1, want 31", b)
	}
}

// A primary that never orders the request: the instance change executes the
// operation it carries, once, and moves the client (or, refused, leaves it
// where it was — the operation executed all the same).
func TestInstanceChangeCarriesOperation(t *testing.T) {
	for _, refuse := range []bool{false, true} {
		t.Run(map[bool]string{false: "granted", true: "refused"}[refuse], func(t *testing.T) {
			cl, lg, c, transfer := bankFixture(t, func(lg *ledger) { lg.drop, lg.refuse = true, refuse })
			submitTransferOnce(t, cl, lg, c, transfer)
			want := uint32(2) // the first instance asked: the next one
			if refuse {
				want = primary
			}
			if c.instance != want {
				t.Fatalf("client believes instance %d serves it, want %d", c.instance, want)
			}
			// Some replica received each request before the result came
			// back (replies are sent only once a request is ordered).
			received := func() []msg.Request {
				var all []msg.Request
				for i := range cl.reps {
					all = append(all, cl.requests(i)...)
				}
				return all
			}
			var change msg.Request
			for _, q := range received() {
				if _, _, ok := msg.ParseInstanceChange(q.Op); ok {
					change = q
				}
			}
			if change.Number == 0 || lg.held == nil || change.Number != lg.held.Number {
				t.Fatalf("the instance change went out as request %d, the operation as %v: want the same number", change.Number, lg.held)
			}
			// After a refusal the next operation goes straight out as an
			// instance change to the next instance (the old one ignores us).
			deposit := bank.Deposit("bob", 1)
			if _, err := c.Submit(guardCtx(t), deposit); err != nil {
				t.Fatal(err)
			}
			asChange := false
			for _, q := range received() {
				if target, inner, ok := msg.ParseInstanceChange(q.Op); ok && bytes.Equal(inner, deposit) && target == 3 {
					asChange = true
				}
			}
			cl.mu.Lock()
			ran := lg.ran[string(deposit)]
			cl.mu.Unlock()
			if ran != 1 || asChange != refuse {
				t.Fatalf("deposit executed %d times, sent as an instance change to instance 3: %v (want once, %v)", ran, asChange, refuse)
			}
		})
	}
}

// After a refused instance change the client asks other instances; if they
// all ignore it from then on, it must come back to its own instance, which
// serves it again (its primary only dropped one request). Before the fix the
// rotation skipped the client's own instance and asked the deaf ones
// forever.
func TestInstanceChangeRotationComesHome(t *testing.T) {
	cl, lg, c, transfer := bankFixture(t, func(lg *ledger) { lg.drop, lg.refuse = true, true })
	submitTransferOnce(t, cl, lg, c, transfer)
	cl.mu.Lock()
	lg.deaf = true
	cl.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	deposit := bank.Deposit("bob", 1)
	if _, err := c.Submit(ctx, deposit); err != nil {
		t.Fatalf("Submit(deposit) with every other instance ignoring the client: %v (want its own instance, %d, asked again)", err, primary)
	}
	if b := lg.balance(t, "bob"); b != 31 {
		t.Fatalf("bob has %d after a deposit of 1, want 31", b)
	}
	if c.instance != primary {
		t.Fatalf("client believes instance %d serves it, want its own, %d", c.instance, primary)
	}
}

// bankFixture is a fake cluster running the bank, whose primary holds back
// a transfer of 30 from alice to bob (tweak adjusts how), and a client that
// has opened both accounts and deposited 100 for alice.
func bankFixture(t *testing.T, tweak func(*ledger)) (*fakeCluster, *ledger, *Client, []byte) {
	t.Helper()
	cl := newFakeCluster(t, 4, nil)
	transfer := bank.Transfer("alice", "bob", 0, 30)
	lg := newLedger(cl, primary, transfer)
	if tweak != nil {
		tweak(lg)
	}
	c := cl.client(cid, Options{Timeout: 50 * time.Millisecond, Broadcast: true})
	for _, o := range [][]byte{bank.Open("alice"), bank.Open("bob"), bank.Deposit("alice", 100)} {
		if _, err := c.Submit(guardCtx(t), o); err != nil {
			t.Fatal(err)
		}
	}
	return cl, lg, c, transfer
}

// submitTransferOnce submits the fixture's transfer and checks that Submit
// reports it executed and that it was paid exactly once.
func submitTransferOnce(t *testing.T, cl *fakeCluster, lg *ledger, c *Client, transfer []byte) {
	t.Helper()
	res, err := c.Submit(guardCtx(t), transfer)
	if err != nil {
		t.Fatalf("Submit(transfer): %v", err)
	}
	if executed, err := bank.DecodeTransfer(res); err != nil || !executed {
		t.Fatalf("Submit(transfer) = %x (executed %v, %v), want an executed transfer", res, executed, err)
	}
	if a, b := lg.balance(t, "alice"), lg.balance(t, "bob"); a != 70 || b != 30 {
		cl.mu.Lock()
		n := lg.ran[string(transfer)]
		cl.mu.Unlock()
		t.Fatalf("after one transfer of 30: alice %d, bob %d (transfer executed %d times), want 70 and 30", a, b, n)
	}
}
