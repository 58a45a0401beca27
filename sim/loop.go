package sim

import (
	"time"

	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/shell"
	"github.com/braid-bft/braid/sim/simnet"
)

// The replica's event loop as a core of its own, when the machine gives the
// loop's work a cost (Machine.loopModelled): decoding each frame that
// arrives, signing, encoding each message and sealing it into a TLS record
// for every peer it goes to. The loop is busy until loopAt; a frame that
// arrives meanwhile waits in the inbox, in order, and what the loop sends
// leaves when the loop has produced it. Timer ticks and completions of
// worker jobs and fsyncs are not delayed (they are cheap), but what they
// send is charged the same way. Without loop costs none of this runs and a
// run is exactly what it was before the model existed.

type inbound struct {
	from    int
	payload []byte
}

// spend keeps the loop busy for d more.
func (r *replica) spend(d time.Duration) {
	if d <= 0 {
		return
	}
	start := max(r.loopAt, r.w.s.Now())
	r.loopAt = start + simnet.FromDuration(d)
	r.w.book(&r.used.loop, start, r.loopAt)
}

// deliver is the network's hand-off to the replica: through the loop.
func (r *replica) deliver(from int, payload []byte) {
	if !r.w.machine.loopModelled() {
		r.receive(from, payload)
		return
	}
	if !r.up {
		return
	}
	r.inbox = append(r.inbox, inbound{from, payload})
	if len(r.inbox) == 1 {
		r.drainAt(max(r.loopAt, r.w.s.Now()))
	}
}

func (r *replica) drainAt(t simnet.Time) {
	epoch := r.epoch
	r.w.s.At(t, func() {
		if r.epoch != epoch || !r.up || len(r.inbox) == 0 {
			return
		}
		// One pass of the loop: every frame that waited (up to
		// shell.LoopPass), each decoded and opened in turn, then one flush,
		// so frames that arrive together are one batch (replica.Run).
		k := min(len(r.inbox), shell.LoopPass)
		m := r.w.machine
		for i := 0; i < k && r.up && r.epoch == epoch; i++ {
			in := r.inbox[i]
			r.inbox[i] = inbound{}
			r.spend(m.Message + m.Record + time.Duration(len(in.payload))*(m.PerByte+m.RecordByte))
			r.handle(in.from, in.payload)
		}
		if r.epoch != epoch {
			return // a frame crashed it (fail-stop): the inbox is gone
		}
		r.inbox = r.inbox[k:]
		r.flush()
		if len(r.inbox) > 0 {
			r.drainAt(max(r.loopAt, r.w.s.Now()))
		} else {
			r.inbox = nil
		}
	})
}

// encoded charges encoding one message of size bytes.
func (r *replica) encoded(size int) {
	m := r.w.machine
	r.spend(m.Message + time.Duration(size)*m.PerByte)
}

// transmit sends a frame from node from to node to once the loop has sealed
// it into a record.
func (r *replica) transmit(from, to int, frame []byte) {
	m := r.w.machine
	if !m.loopModelled() {
		r.w.net.Send(from, to, frame)
		return
	}
	r.spend(m.Record + time.Duration(len(frame))*m.RecordByte)
	if r.loopAt <= r.w.s.Now() {
		r.w.net.Send(from, to, frame)
		return
	}
	epoch := r.epoch
	r.w.s.At(r.loopAt, func() {
		if r.epoch == epoch && r.up {
			r.w.net.Send(from, to, frame)
		}
	})
}

// loopSigner charges each replica signature to the loop.
type loopSigner struct {
	inner msg.Signer
	r     *replica
}

func (s loopSigner) Sign(p []byte) []byte {
	s.r.spend(s.r.w.machine.Sign)
	return s.inner.Sign(p)
}
