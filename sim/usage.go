package sim

import (
	"time"

	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/shell"
	"github.com/braid-bft/braid/sim/simnet"
)

// Usage is how busy one replica's simulated hardware was over the measured
// window, each figure a fraction of the time available (1 = saturated):
// the model knows where a run's bottleneck is, so it says.
type Usage struct {
	Replica msg.ReplicaID `json:"replica"`
	// Leads is how many instances the replica was primary of at the end
	// of the window.
	Leads   int     `json:"leads"`
	Loop    float64 `json:"loop"`    // the event loop's core: decoding, signing, encoding, TLS records
	Workers float64 `json:"workers"` // the verification cores, all of them together
	NIC     float64 `json:"nic"`     // the network card's egress
	Disk    float64 `json:"disk"`    // the disk, fsyncing
	// ClientLane is the share of the client lanes' time that batch checks
	// of client requests ran: admission allows shell.ClientLanes(cores) at
	// once (shell/ingress.go), so the lanes saturate at 1 even with cores
	// to spare.
	ClientLane float64 `json:"client_lane"`
}

// busy is a replica's busy time per resource within the measured window.
type busy struct {
	loop, workers, disk, clientLane time.Duration
}

// book adds the part of [start, end) inside the measured window to *d.
func (w *world) book(d *time.Duration, start, end simnet.Time) {
	if w.opts.MeasureTo > w.opts.MeasureFrom {
		*d += time.Duration(simnet.Overlap(start, end, simnet.FromDuration(w.opts.MeasureFrom), simnet.FromDuration(w.opts.MeasureTo)))
	}
}

// measureUsage reports, once the window has closed, each replica's busy
// time in it. It only reads state, so the run's trajectory is the same
// with or without it.
func (w *world) measureUsage(from, to time.Duration) {
	w.net.SetUsageWindow(simnet.FromDuration(from), simnet.FromDuration(to))
	w.s.At(simnet.FromDuration(to), func() {
		window := float64(to - from)
		cores := float64(w.machine.Cores)
		w.usage = make([]Usage, len(w.replicas))
		for i, r := range w.replicas {
			u := Usage{
				Replica:    r.id,
				Loop:       float64(r.used.loop) / window,
				Workers:    float64(r.used.workers) / window / cores,
				NIC:        float64(w.net.NICUsed(r.net)) / window,
				Disk:       float64(r.used.disk) / window,
				ClientLane: float64(r.used.clientLane) / window / float64(shell.ClientLanes(w.machine.Cores)),
			}
			if r.up {
				for k := 0; k < r.node().Config().M; k++ {
					if r.node().Instance(k).IsPrimary() {
						u.Leads++
					}
				}
			}
			w.usage[i] = u
		}
	})
}
