package sim

import (
	"time"

	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/sim/simnet"
)

// A scenario picks which replicas misbehave and how (corrupt, before the
// run) and what happens to the network and to processes over time
// (schedule). Faults are data around unmodified cores.
type scenario struct {
	about    string
	converge bool // at the end, every up replica must reach the same ledger head
	inPlace  bool // rcc: run with m = n (in-place recovery)
	calm     bool // no replica is faulty, so no view may change: a view change means a correct primary was suspected
	clients  int  // closed-loop clients, when the scenario needs a number
	load     *Load
	// bound, when set, is the scenario's liveness bound instead of
	// Options.LivenessBound: for faults that last the whole run (a twin
	// serves half the cluster throughout, and each request of a client on
	// the other side costs a client timeout).
	bound    time.Duration
	corrupt  func(w *world, byz int)
	schedule func(w *world)
}

func none(*world, int) {}
func calm(*world)      {}

// lastK marks the highest-numbered replicas, which lead no early view.
func lastK(b string) func(w *world, byz int) {
	return func(w *world, byz int) {
		for i := 0; i < byz; i++ {
			w.faulty[msg.ReplicaID(w.n-1-i)] = b
		}
	}
}

func at(w *world, d time.Duration, fn func()) { w.s.At(simnet.FromDuration(d), fn) }

var scenarios = map[string]scenario{
	"fault-free": {about: "no faults", corrupt: none, schedule: calm},
	"crash-primary": {
		about:   "view 0's primary crashes at 0.3s and restarts from its disk at 0.8s",
		corrupt: func(w *world, byz int) { w.faulty[0] = "crash" },
		schedule: func(w *world) {
			at(w, 300*time.Millisecond, w.replicas[0].crash)
			at(w, 800*time.Millisecond, w.replicas[0].restart)
			w.minEnd = simnet.FromDuration(1500 * time.Millisecond)
		},
	},
	"silent-primary": {
		about:   "view 0's primary ignores clients but answers the protocol",
		corrupt: func(w *world, byz int) { w.faulty[0] = "silent" }, schedule: calm,
	},
	"equivocating-primary": {
		about:   "view 0's primary sends different, validly signed batches to the two halves",
		corrupt: func(w *world, byz int) { w.faulty[0] = "equivocate" }, schedule: calm,
	},
	"replay": {
		about:   "f replicas replay old messages they saw to random replicas",
		corrupt: lastK("replay"), schedule: calm,
	},
	"forged-sender": {
		about:   "f replicas send messages claiming to come from others",
		corrupt: lastK("forge"), schedule: calm,
	},
	"garbage": {
		about:   "f replicas send random bytes and corrupted encodings",
		corrupt: lastK("garbage"), schedule: calm,
	},
	"lying-checkpoint": {
		about:   "f replicas sign checkpoints with a wrong state digest",
		corrupt: lastK("lie-checkpoint"), schedule: calm,
	},
	"flood": {
		about:   "f replicas re-send bursts of their own recent messages to every peer on every tick (bounded: 8 frames, 64 KiB per peer per tick)",
		corrupt: lastK("flood"), schedule: calm,
	},
	"twin": {
		about: "f replicas (view 0's primary first) run as two copies with the same keys, each serving half the correct replicas",
		corrupt: func(w *world, byz int) {
			for i := 0; i < byz; i++ {
				id := msg.ReplicaID(0)
				if i > 0 {
					id = msg.ReplicaID(w.n - i)
				}
				w.faulty[id] = "twin"
				w.twinB[id] = nil
			}
		},
		schedule: calm,
		bound:    30 * time.Second,
	},
	"partition-heal": {
		about:   "the replicas split in two halves (no quorum) from 0.2s to 1.5s, then a one-way cut from the primary until 2.5s",
		corrupt: none,
		schedule: func(w *world) {
			var a, b []int
			for i := 0; i < w.n; i++ {
				if i < w.n/2 {
					a = append(a, i)
				} else {
					b = append(b, i)
				}
			}
			at(w, 200*time.Millisecond, func() { w.net.Partition(a, b) })
			at(w, 1500*time.Millisecond, func() { w.net.Heal(); w.net.Cut(0, 1); w.net.Cut(0, 2) })
			at(w, 2500*time.Millisecond, w.net.Heal)
			w.minEnd = simnet.FromDuration(2500 * time.Millisecond)
		},
	},
	"lossy": {
		about:   "5% loss, 2% duplication and 20ms jitter on every link until 3s",
		corrupt: none,
		schedule: func(w *world) {
			w.net.SetDefaultLink(simnet.Link{Latency: time.Millisecond, Jitter: 20 * time.Millisecond, Loss: 0.05, Duplicate: 0.02})
			at(w, 3*time.Second, func() {
				w.net.SetDefaultLink(simnet.Link{Latency: time.Millisecond, Jitter: 2 * time.Millisecond})
			})
		},
	},
}

func init() {
	scenarios["throttling-primary"] = scenario{
		about:   "view 0's / instance 0's primary decides, but releases its proposals 5× slower than the others",
		corrupt: func(w *world, byz int) { w.faulty[0] = "throttle" }, schedule: calm,
		// The throttling lasts the whole run, so the default 10 s "after
		// the faults end" is the run's own length: a run takes ~10 s of
		// virtual time with instance 0 throttled and penalised in turn
		// (seed 27 at n = m = 4 needs 10.6 s, with no stall: the cluster
		// was at round 205 and advancing when 10 s ran out).
		bound: 20 * time.Second,
	}
	scenarios["f-byzantine-primaries"] = scenario{
		about: "f primaries misbehave at once, mixed kinds: crash, silent, equivocate, throttle (in turn)",
		corrupt: func(w *world, byz int) {
			kinds := []string{"crash", "silent", "equivocate", "throttle"}
			for i := 0; i < byz; i++ {
				w.faulty[msg.ReplicaID(i)] = kinds[i%len(kinds)]
			}
		},
		schedule: func(w *world) {
			for id, b := range w.faulty {
				if b == "crash" {
					at(w, 300*time.Millisecond, w.replicas[id].crash)
				}
			}
		},
	}
	scenarios["in-the-dark"] = scenario{
		about: "up to two faulty primaries (instances 0 and 1) each send their proposals only to their own disjoint share of the correct replicas",
		corrupt: func(w *world, byz int) {
			k := min(byz, 2)
			var correct []msg.ReplicaID
			for i := k; i < w.n; i++ {
				correct = append(correct, msg.ReplicaID(i))
			}
			for j := 0; j < k; j++ {
				id := msg.ReplicaID(j)
				w.faulty[id] = "dark"
				w.dark[id] = map[msg.ReplicaID]bool{}
				for x, c := range correct {
					// k=1: the first half only; k=2: even and odd positions.
					if (k == 1 && x < len(correct)/2) || (k == 2 && x%2 == j) {
						w.dark[id][c] = true
					}
				}
			}
		},
		schedule: calm,
	}
	last := func(w *world) *replica { return w.replicas[w.n-1] }
	scenarios["crash-restart"] = scenario{
		about:    "the highest replica crashes at 0.4s losing writes not yet fsynced (blocks since its last checkpoint), restarts at 1.2s from its records, and must catch up",
		converge: true,
		corrupt:  none,
		schedule: func(w *world) {
			at(w, 400*time.Millisecond, last(w).crash) // a crash loses what was not yet durable
			at(w, 1200*time.Millisecond, func() { last(w).restart() })
			w.minEnd = simnet.FromDuration(1500 * time.Millisecond)
		},
	}
	scenarios["wiped-disk"] = scenario{
		about:    "the highest replica loses its disk at 0.4s and rejoins empty at 1.2s: state transfer must bring it to the others' ledger head (counted as faulty while it cannot vouch for its past votes)",
		converge: true,
		corrupt:  func(w *world, byz int) { w.faulty[msg.ReplicaID(w.n-1)] = "wiped" },
		schedule: func(w *world) {
			at(w, 400*time.Millisecond, func() { last(w).crash(); last(w).wipe() })
			at(w, 1200*time.Millisecond, func() { last(w).restart() })
			w.minEnd = simnet.FromDuration(1500 * time.Millisecond)
		},
	}
	scenarios["long-partition"] = scenario{
		about:    "the highest replica is cut off from 0.3s to 3s, longer than its window lasts, then reconnects and must catch up",
		converge: true,
		corrupt:  none,
		schedule: func(w *world) {
			at(w, 300*time.Millisecond, func() { w.net.Isolate(w.n - 1) })
			at(w, 3*time.Second, func() { w.net.Heal(); last(w).announce() })
			w.minEnd = simnet.FromDuration(3 * time.Second)
		},
	}
	scenarios["client-on-failed-instance"] = scenario{
		about:   "replica 0 is down from the start: its clients (instance 0's, or view 0's primary's) must still be served",
		corrupt: func(w *world, byz int) { w.faulty[0] = "crash" },
		schedule: func(w *world) {
			at(w, 0, w.replicas[0].crash)
		},
	}
}

func init() {
	scenarios["restart-under-load"] = scenario{
		about:    "an open-loop load (150 requests/s on every instance, on top of the closed-loop clients) while view 0's / instance 0's primary is killed at 0.3s and restarted from its disk at 0.8s",
		converge: true,
		corrupt:  func(w *world, byz int) { w.faulty[0] = "crash" },
		load:     &Load{Rate: 150, Until: 1500 * time.Millisecond},
		schedule: func(w *world) {
			if w.load != nil && w.opts.Protocol == "rcc" { // load every instance (Run starts the load after this)
				w.load.spec.Instances = nil
				for i := 0; i < w.opts.M; i++ {
					w.load.spec.Instances = append(w.load.spec.Instances, uint32(i))
				}
			}
			at(w, 300*time.Millisecond, w.replicas[0].crash)
			at(w, 800*time.Millisecond, w.replicas[0].restart)
			w.minEnd = simnet.FromDuration(1500 * time.Millisecond)
		},
	}
	scenarios["overload"] = scenario{
		about: "open-loop clients offer about twice what the cluster can verify (8,000 requests/s in all, spread over the instances, for 0.3s; " +
			"signature checks cost 300µs on each replica's 2 cores) on top of the closed-loop clients; no faults: shedding and " +
			"patience, not view changes, must absorb it, and every request completes once the load stops",
		converge: true,
		calm:     true,
		corrupt:  none,
		load:     &Load{Until: 300 * time.Millisecond},
		schedule: func(w *world) {
			w.machine.Verification = 300 * time.Microsecond
			w.load.spec.Instances = nil
			m := 1
			if w.opts.Protocol == "rcc" {
				m = w.opts.M
			}
			for i := 0; i < m; i++ {
				w.load.spec.Instances = append(w.load.spec.Instances, uint32(i))
			}
			w.load.spec.Rate = 8000 / float64(m)
			w.minEnd = simnet.FromDuration(300 * time.Millisecond)
		},
	}
	scenarios["in-place-light-load"] = scenario{
		about:    "rcc with m = n, one client with one request at a time; instance 0's primary crashes at 0.3s and returns at 1.0s",
		converge: true,
		inPlace:  true,
		clients:  1,
		corrupt:  func(w *world, byz int) { w.faulty[0] = "crash" },
		schedule: func(w *world) {
			at(w, 300*time.Millisecond, w.replicas[0].crash)
			at(w, time.Second, w.replicas[0].restart)
			w.minEnd = simnet.FromDuration(1500 * time.Millisecond)
		},
	}
	scenarios["one-way-primary"] = scenario{
		about:    "view 0's / instance 0's primary can send but not receive from 0.2s to 2s",
		converge: true,
		corrupt:  none,
		schedule: func(w *world) {
			at(w, 200*time.Millisecond, func() {
				for i := 1; i < w.net.N(); i++ {
					w.net.Cut(i, 0)
				}
			})
			at(w, 2*time.Second, func() { w.net.Heal(); w.replicas[0].announce() })
			w.minEnd = simnet.FromDuration(2 * time.Second)
		},
	}
	diskFault := func(about string, fault func(d *simDisk)) scenario {
		return scenario{
			about:    about,
			converge: true,
			corrupt:  none,
			schedule: func(w *world) {
				r := w.replicas[w.n-1]
				at(w, 300*time.Millisecond, func() { fault(r.disk) })
				// A supervisor restarts it once the disk is fixed; a
				// replica that stopped itself restarts from what it kept.
				at(w, 1200*time.Millisecond, func() {
					if r.up {
						r.crash()
					}
					r.restart()
				})
				w.minEnd = simnet.FromDuration(1500 * time.Millisecond)
			},
		}
	}
	scenarios["disk-full"] = diskFault("the highest replica's disk fills at 0.3s: its next write fails and it stops (fail-stop); restarted at 1.2s with space again, it must catch up",
		func(d *simDisk) { d.full = true })
	scenarios["fsync-error"] = diskFault("the highest replica's fsyncs fail from 0.3s: it stops (fail-stop) losing what was not durable; restarted at 1.2s on a good disk, it must catch up",
		func(d *simDisk) { d.badFsync = true })
}

// About describes a scenario.
func About(name string) string { return scenarios[name].about }
