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
			w.inject(Fault{Kind: FaultCrash, Replica: 0, From: 300 * time.Millisecond, Until: 800 * time.Millisecond})
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
				id := 0
				if i > 0 {
					id = w.n - i
				}
				w.corrupt(Fault{Kind: FaultTwin, Replica: id})
			}
		},
		schedule: calm,
		bound:    twinBound,
	},
	"partition-heal": {
		about:   "the replicas split in two halves (no quorum) from 0.2s to 1.5s, then a one-way cut from the primary until 2.5s",
		corrupt: none,
		schedule: func(w *world) {
			var half []int
			for i := 0; i < w.n/2; i++ {
				half = append(half, i)
			}
			w.inject(Fault{Kind: FaultPartition, Replica: -1, Group: half, From: 200 * time.Millisecond, Until: 1500 * time.Millisecond})
			w.inject(Fault{Kind: FaultCut, Replica: 0, Group: []int{1, 2}, From: 1500 * time.Millisecond, Until: 2500 * time.Millisecond})
		},
	},
	"lossy": {
		about:   "5% loss, 2% duplication and 20ms jitter on every link until 3s",
		corrupt: none,
		schedule: func(w *world) {
			w.inject(Fault{Kind: FaultLossy, Replica: -1, From: 0, Until: 3 * time.Second,
				Link: &simnet.Link{Latency: time.Millisecond, Jitter: 20 * time.Millisecond, Loss: 0.05, Duplicate: 0.02}})
		},
	},
}

func init() {
	scenarios["throttling-primary"] = scenario{
		about:   "view 0's / instance 0's primary decides, but releases its proposals 5× slower than the others",
		corrupt: func(w *world, byz int) { w.faulty[0] = "throttle" }, schedule: calm,
		// The throttling lasts the whole run, so the default 10 s "after
		// the faults end" is the run's own length.
		bound: throttleBound,
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
					w.inject(Fault{Kind: FaultCrash, Replica: int(id), From: 300 * time.Millisecond})
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
	scenarios["crash-restart"] = scenario{
		about:    "the highest replica crashes at 0.4s losing writes not yet fsynced (blocks since its last checkpoint), restarts at 1.2s from its records, and must catch up",
		converge: true,
		corrupt:  none,
		schedule: func(w *world) {
			// A crash loses what was not yet durable.
			w.inject(Fault{Kind: FaultCrash, Replica: w.n - 1, From: 400 * time.Millisecond, Until: 1200 * time.Millisecond})
			w.minEnd = simnet.FromDuration(1500 * time.Millisecond)
		},
	}
	scenarios["wiped-disk"] = scenario{
		about:    "the highest replica loses its disk at 0.4s and rejoins empty at 1.2s: state transfer must bring it to the others' ledger head (counted as faulty while it cannot vouch for its past votes)",
		converge: true,
		corrupt:  func(w *world, byz int) { w.corrupt(wipeLast(w)) },
		schedule: func(w *world) {
			w.inject(wipeLast(w))
			w.minEnd = simnet.FromDuration(1500 * time.Millisecond)
		},
	}
	scenarios["long-partition"] = scenario{
		about:    "the highest replica is cut off from 0.3s to 3s, longer than its window lasts, then reconnects and must catch up",
		converge: true,
		corrupt:  none,
		schedule: func(w *world) {
			w.inject(Fault{Kind: FaultIsolate, Replica: w.n - 1, From: 300 * time.Millisecond, Until: 3 * time.Second})
		},
	}
	scenarios["client-on-failed-instance"] = scenario{
		about:   "replica 0 is down from the start: its clients (instance 0's, or view 0's primary's) must still be served",
		corrupt: func(w *world, byz int) { w.faulty[0] = "crash" },
		schedule: func(w *world) {
			w.inject(Fault{Kind: FaultCrash, Replica: 0, From: 0})
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
			w.inject(Fault{Kind: FaultCrash, Replica: 0, From: 300 * time.Millisecond, Until: 800 * time.Millisecond})
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
			w.inject(Fault{Kind: FaultCrash, Replica: 0, From: 300 * time.Millisecond, Until: time.Second})
			w.minEnd = simnet.FromDuration(1500 * time.Millisecond)
		},
	}
	scenarios["one-way-primary"] = scenario{
		about:    "view 0's / instance 0's primary can send but not receive from 0.2s to 2s",
		converge: true,
		corrupt:  none,
		schedule: func(w *world) {
			w.inject(Fault{Kind: FaultOneWay, Replica: 0, From: 200 * time.Millisecond, Until: 2 * time.Second})
		},
	}
	diskFault := func(about string, kind string) scenario {
		return scenario{
			about:    about,
			converge: true,
			corrupt:  none,
			schedule: func(w *world) {
				w.inject(Fault{Kind: kind, Replica: w.n - 1, From: 300 * time.Millisecond, Until: 1200 * time.Millisecond})
				w.minEnd = simnet.FromDuration(1500 * time.Millisecond)
			},
		}
	}
	scenarios["disk-full"] = diskFault("the highest replica's disk fills at 0.3s: its next write fails and it stops (fail-stop); restarted at 1.2s with space again, it must catch up",
		FaultDiskFull)
	scenarios["fsync-error"] = diskFault("the highest replica's fsyncs fail from 0.3s: it stops (fail-stop) losing what was not durable; restarted at 1.2s on a good disk, it must catch up",
		FaultFsync)
}

// About describes a scenario.
func About(name string) string { return scenarios[name].about }

// wipeLast is the wiped-disk scenario's fault: the highest replica loses
// its disk at 0.4s and rejoins empty at 1.2s.
func wipeLast(w *world) Fault {
	return Fault{Kind: FaultWipe, Replica: w.n - 1, From: 400 * time.Millisecond, Until: 1200 * time.Millisecond}
}
