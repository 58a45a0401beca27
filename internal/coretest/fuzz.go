package coretest

import (
	"fmt"

	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/quorum"
)

// FuzzCluster is what a harness's cluster of real cores offers the fuzz
// interpreter (Fuzz). Each call runs the core and drains its Ready into the
// network, checking the invariants on what correct replicas decide and
// sign as it goes.
type FuzzCluster interface {
	// Request hands replica i a request its client sent it.
	Request(i int, r msg.Request)
	// Tick advances replica i's clock by one tick: its timers fire.
	Tick(i int)
	// Transfer completes replica i's pending state transfer, if any.
	Transfer(i int)
	// Pass ends a pass of the shell's loop (ProposeQueued).
	Pass()
}

// FuzzConfig is the cluster under Fuzz.
type FuzzConfig struct {
	N       int
	Byz     []msg.ReplicaID
	Clients int // client ids 0 … Clients−1
	// Op, if set, makes a client's operation (an rcc harness makes some of
	// them instance changes); default a distinct plain one.
	Op func(choice int, client msg.ClientID, number uint64) []byte
	// Retry, if set, may make a client's retry of r another request under
	// the same number (an rcc client's instance change carrying it); ok
	// false: resend r itself.
	Retry func(choice int, r msg.Request) (again msg.Request, ok bool)
}

// ChooseByz picks f = ⌊(n−1)/3⌋ consecutive replicas, from one the input
// chooses (so view 0's primary is Byzantine in some runs, not in others).
func ChooseByz(c Chooser, n int) []msg.ReplicaID {
	start := c.Intn(n)
	var byz []msg.ReplicaID
	for k := 0; k < quorum.Faults(n); k++ {
		byz = append(byz, msg.ReplicaID((start+k)%n))
	}
	return byz
}

// FuzzOp is one step of a fuzz program: its first byte (mod the number of
// ops). The arguments that follow are one byte each.
type FuzzOp uint8

// The steps of a fuzz program, and their argument bytes.
const (
	OpDeliver   FuzzOp = iota // [log2 k]: deliver the first k queued messages, in order
	OpSettle                  // []: deliver up to 400 in order
	OpReorder                 // [i]: deliver the i-th queued message now
	OpDrop                    // [i]: lose the i-th queued message
	OpDuplicate               // [i]: deliver a copy of the i-th queued message now
	OpDropFrom                // [r]: lose every message queued from replica r
	OpDropTo                  // [r]: lose every message queued to replica r
	OpTick                    // [r, k−1]: replica r ticks k times
	OpTickAll                 // []: every replica ticks once
	OpSubmit                  // [client, retry (1 in 4), op choice, to (n: all)]
	OpInject                  // [InjectBytes]: a Byzantine replica's message (Adversary.Next)
	OpTransfer                // [r]: replica r's pending state transfer completes
	OpIsolate                 // [r]: cut replica r off (nothing to or from it), or reconnect it
	opEnd
)

// InjectBytes is how many input bytes one injection's choices take.
const InjectBytes = 48

// Budgets of one fuzz input, so every input runs in milliseconds: the
// interpreter stops at whichever comes first.
const (
	fuzzMaxSteps      = 1500
	fuzzMaxDeliveries = 40_000
	fuzzHealRounds    = 16
	fuzzHealBurst     = 400
)

// FuzzStats says what one input made happen, for tests of the seeds.
type FuzzStats struct {
	Steps, Delivered, Dropped, Injected, Rejected, Requests int
}

// Fuzz runs the program in in against a cluster, one FuzzOp per step:
// deliver pending messages (in order, or one out of order), drop or
// duplicate one, drop everything queued from or to a replica, fire a
// replica's or everyone's timers, submit a client request (fresh or a
// retry) to one replica or to all, inject a message from a Byzantine
// replica (Adversary), complete a pending state transfer, or cut a
// replica off or reconnect it. Injected
// messages pass what the shell checks first (they decode from their own
// encoding, and their signatures verify); the adversary sees every message
// sent to or by a Byzantine replica. When the input is used up, the network heals
// (everyone reconnected, no more drops or injections) for a few rounds of ticks and deliveries.
//
// Fuzz itself checks nothing: the harness checks its invariants as the
// cores produce output, so a violation fails at the step that caused it.
func Fuzz(in *Bytes, net *Net, adv *Adversary, safety *Safety, cl FuzzCluster, cfg FuzzConfig) FuzzStats {
	var st FuzzStats
	byz := map[msg.ReplicaID]bool{}
	for _, b := range cfg.Byz {
		byz[b] = true
	}
	net.Filter = func(e Envelope) []Envelope {
		if byz[e.To] || byz[e.From] { // what they receive, and what their own cores send
			adv.Observe(e.Msg)
		}
		return []Envelope{e}
	}
	numbers := make([]uint64, cfg.Clients)
	latest := make([]*msg.Request, cfg.Clients)
	limit := fuzzMaxDeliveries
	deliver := func(k int) {
		for ; k > 0 && len(net.Queue) > 0 && st.Delivered < limit; k-- {
			st.Delivered++
			e := net.Queue[0]
			net.Queue = net.Queue[1:]
			net.Deliver(e)
		}
	}
	for ; !in.Done() && st.Steps < fuzzMaxSteps && st.Delivered < limit; st.Steps++ {
		switch op := FuzzOp(in.Intn(int(opEnd))); op {
		case OpDeliver:
			deliver(1 << in.Intn(7))
		case OpSettle:
			deliver(fuzzHealBurst)
		case OpReorder:
			if k, ok := pick(in, len(net.Queue)); ok {
				st.Delivered++
				net.DeliverAt(k)
			}
		case OpDrop:
			if k, ok := pick(in, len(net.Queue)); ok {
				st.Dropped++
				net.DropAt(k)
			}
		case OpDuplicate:
			if k, ok := pick(in, len(net.Queue)); ok {
				st.Delivered++
				net.Deliver(net.Queue[k])
			}
		case OpDropFrom, OpDropTo:
			r := msg.ReplicaID(in.Intn(cfg.N))
			kept := net.Queue[:0]
			for _, e := range net.Queue {
				if (op == OpDropFrom && e.From != r) || (op == OpDropTo && e.To != r) {
					kept = append(kept, e)
				}
			}
			st.Dropped += len(net.Queue) - len(kept)
			net.Queue = kept
		case OpTick:
			i := in.Intn(cfg.N)
			for k := 1 + in.Intn(8); k > 0; k-- {
				cl.Tick(i)
			}
		case OpTickAll:
			for i := 0; i < cfg.N; i++ {
				cl.Tick(i)
			}
		case OpSubmit:
			c, retry, choice, to := in.Intn(cfg.Clients), in.Intn(4) == 0, in.Intn(256), in.Intn(cfg.N+1)
			r := latest[c]
			if r != nil && retry && cfg.Retry != nil {
				if again, ok := cfg.Retry(choice, *r); ok {
					SignRequest(&again)
					safety.Submit(again)
					r = &again
				}
			}
			if r == nil || !retry { // a fresh request, or the client retries its latest
				numbers[c]++
				r = &msg.Request{Client: msg.ClientID(c), Number: numbers[c]}
				if cfg.Op != nil {
					r.Op = cfg.Op(choice, r.Client, r.Number)
				} else {
					r.Op = []byte(fmt.Sprintf("op-%d-%d", c, r.Number))
				}
				SignRequest(r)
				safety.Submit(*r)
				latest[c] = r
			}
			st.Requests++
			for i := 0; i < cfg.N; i++ { // to == cfg.N: to every replica
				if to == cfg.N || to == i {
					if byz[msg.ReplicaID(i)] {
						adv.Observe(&msg.ClientRequest{Request: *r})
					}
					cl.Request(i, *r)
				}
			}
		case OpInject:
			// The adversary reads a chunk of its own, so that what it
			// chooses does not shift the rest of the program.
			e := adv.Next(NewBytes(in.Take(InjectBytes)))
			if m, ok := ShellCheck(e.Msg); ok {
				st.Injected++
				adv.Observe(e.Msg) // it knows what it said, and can say it again
				e.Msg = m
				net.Deliver(e)
			} else {
				st.Rejected++
			}
		case OpTransfer:
			cl.Transfer(in.Intn(cfg.N))
		case OpIsolate:
			r := msg.ReplicaID(in.Intn(cfg.N))
			net.Down[r] = !net.Down[r]
		}
		cl.Pass()
	}
	limit = st.Delivered + fuzzHealRounds*fuzzHealBurst
	clear(net.Down)
	for range fuzzHealRounds {
		for i := 0; i < cfg.N; i++ {
			cl.Transfer(i)
			cl.Tick(i)
		}
		cl.Pass()
		deliver(fuzzHealBurst)
		cl.Pass()
	}
	return st
}

// pick chooses one of n queued messages with one byte, wherever the byte
// falls, so an index never shifts the rest of the program.
func pick(in *Bytes, n int) (int, bool) {
	b := int(in.Byte())
	return b * n / 256, n > 0
}

// ShellCheck is what the shell does to a peer's message before a core
// sees it: decode it from its encoding (a fresh copy, bounded) and verify
// every signature it carries. ok is false if the shell would drop it.
func ShellCheck(m msg.Message) (msg.Message, bool) {
	out, err := msg.Unmarshal(msg.Marshal(m))
	if err != nil || msg.Verify(out, Verifier{}) != nil {
		return nil, false
	}
	return out, true
}

// Program writes a fuzz input by hand (a seed for the corpus): the config
// bytes the harness reads first, then steps.
type Program struct{ b []byte }

// NewProgram starts a program with the harness's config bytes.
func NewProgram(config ...byte) *Program { return &Program{b: append([]byte(nil), config...)} }

// Op appends a step with its argument bytes.
func (p *Program) Op(op FuzzOp, args ...byte) *Program {
	p.b = append(append(p.b, byte(op)), args...)
	return p
}

// Submit appends a fresh request of client c to replica to (n: all).
func (p *Program) Submit(c, to byte) *Program { return p.Op(OpSubmit, c, 1, 0, to) }

// Inject appends a Byzantine message made from the choices in chunk.
func (p *Program) Inject(chunk ...byte) *Program {
	c := make([]byte, InjectBytes)
	copy(c, chunk)
	return p.Op(OpInject, c...)
}

// Repeat appends the steps body adds, k times.
func (p *Program) Repeat(k int, body func(*Program)) *Program {
	for range k {
		body(p)
	}
	return p
}

// Bytes is the input.
func (p *Program) Bytes() []byte { return p.b }
