package sim

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/braid-bft/braid/byzantine"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/quorum"
	"github.com/braid-bft/braid/sim/simnet"
)

// The simulator's fault catalogue, once: the named scenarios (scenarios.go)
// and fault plans (Options.Faults, which the swarm draws) inject faults
// through the same pieces, so a crash or a partition means the same thing
// wherever it is used.

// Fault kinds that are not package byzantine's message filters (those are
// faults too: Kind is then the filter's name, e.g. "equivocate").
const (
	// FaultCrash stops the replica at From, losing what its disk had not
	// synced, and restarts it from its disk at Until (0: it stays down).
	FaultCrash = "crash"
	// FaultWipe crashes the replica at From and loses its whole disk; it
	// rejoins empty at Until. It counts as faulty for the whole run: with
	// its records gone it cannot vouch for what it voted before.
	FaultWipe = "wipe"
	// FaultDiskFull fills the replica's disk at From (its next write fails
	// and it stops itself); a supervisor restarts it at Until with space.
	FaultDiskFull = "disk-full"
	// FaultFsync makes the replica's fsyncs fail from From; restarted at
	// Until on a good disk.
	FaultFsync = "fsync-error"
	// FaultIsolate cuts the replica off from every node from From to Until.
	FaultIsolate = "isolate"
	// FaultOneWay lets the replica send but not receive from From to Until.
	FaultOneWay = "one-way"
	// FaultCut drops what the replica sends to the replicas of Group from
	// From to Until (one-way cuts; the other direction still flows).
	FaultCut = "cut"
	// FaultPartition splits the replicas into Group and the rest from From
	// to Until (clients still reach both sides). Replica is -1.
	FaultPartition = "partition"
	// FaultLossy makes every link behave as Link from From to Until.
	// Replica is -1.
	FaultLossy = "lossy"
	// FaultTwin runs the replica as two copies with the same keys, each
	// serving half of the correct replicas, for the whole run.
	FaultTwin = "twin"
)

// Liveness bounds for faults that last the whole run (the time allowed
// after the other faults end includes the run itself).
const (
	// throttleBound: a run takes ~10 s of virtual time with instance 0
	// throttled and penalised in turn (seed 27 at n = m = 4 needs 10.6 s,
	// with no stall: the cluster was at round 205 and advancing when 10 s
	// ran out).
	throttleBound = 20 * time.Second
	// twinBound: a twin serves half the cluster throughout, and each
	// request of a client on the other side costs a client timeout.
	twinBound = 30 * time.Second
)

// Fault is one entry of a fault plan: what happens to which replica, from
// when until when.
type Fault struct {
	Kind    string        `json:"kind"`
	Replica int           `json:"replica"` // -1 for the network-wide kinds
	From    time.Duration `json:"from"`
	// Until is when the fault ends; 0: never (a Byzantine behaviour or a
	// twin lasts the whole run, a crash without restart stays down).
	Until time.Duration `json:"until,omitempty"`
	// Group: the replicas a partition separates from the rest, or a cut's
	// targets.
	Group []int `json:"group,omitempty"`
	// Link: a lossy period's link model.
	Link *simnet.Link `json:"link,omitempty"`
}

// byzantineKind reports whether kind is a whole-run Byzantine behaviour:
// one of package byzantine's filters, or a twin.
func byzantineKind(kind string) bool {
	if kind == FaultTwin {
		return true
	}
	_, err := byzantine.Parse(kind)
	return err == nil
}

// network reports whether the fault hits the network as a whole.
func (x Fault) network() bool { return x.Kind == FaultPartition || x.Kind == FaultLossy }

// String is the fault as one short line, e.g. "crash r2 0.3s–1.1s".
func (x Fault) String() string {
	var b strings.Builder
	b.WriteString(x.Kind)
	if !x.network() {
		fmt.Fprintf(&b, " r%d", x.Replica)
	}
	if len(x.Group) > 0 {
		fmt.Fprintf(&b, " %v", x.Group)
	}
	if x.Link != nil {
		fmt.Fprintf(&b, " (loss %.0f%%, dup %.0f%%, jitter %v)", x.Link.Loss*100, x.Link.Duplicate*100, x.Link.Jitter)
	}
	switch {
	case byzantineKind(x.Kind):
		b.WriteString(" whole run")
	case x.Until == 0:
		fmt.Fprintf(&b, " at %v, for good", x.From)
	default:
		fmt.Fprintf(&b, " %v–%v", x.From, x.Until)
	}
	return b.String()
}

// end is when the fault is over for liveness: its Until, or when a
// permanent crash happened (from then on the cluster runs without it).
func (x Fault) end() time.Duration {
	if byzantineKind(x.Kind) {
		return 0
	}
	return max(x.From, x.Until)
}

// faultsOver is when the plan's last fault ends.
func faultsOver(plan []Fault) time.Duration {
	var t time.Duration
	for _, f := range plan {
		t = max(t, f.end())
	}
	return t
}

// planBound is the liveness bound a plan needs: longer when a fault lasts
// the whole run and slows every request.
func planBound(plan []Fault) time.Duration {
	var b time.Duration
	for _, f := range plan {
		switch f.Kind {
		case string(byzantine.Throttle):
			b = max(b, throttleBound)
		case FaultTwin:
			b = max(b, twinBound)
		}
	}
	return b
}

// faultyDuring is the interval [from, until) in which the fault makes its
// replica count against f (until 0: to the end of the run), and whether it
// counts at all.
func (x Fault) faultyDuring() (from, until time.Duration, counts bool) {
	switch {
	case x.network():
		return 0, 0, false
	case byzantineKind(x.Kind), x.Kind == FaultWipe:
		return 0, 0, true // cannot vouch for its votes: faulty throughout
	}
	return x.From, x.Until, true
}

// CheckPlan checks that a plan is well formed for n replicas and within
// the fault budget: at no instant are more than f replicas faulty
// (Byzantine, twinned or wiped for the whole run; crashed, cut off or with
// a failing disk while that lasts), no replica has two faults at once, and
// every fault that must end does. Partitions and lossy periods hit no
// replica in particular and are not counted; they must end.
func CheckPlan(n int, plan []Fault) error {
	f := quorum.Faults(n)
	var errs []error
	for i, x := range plan {
		if err := x.check(n); err != nil {
			errs = append(errs, fmt.Errorf("fault %d (%s): %w", i, x, err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// Count at every instant a fault starts (counts only rise there).
	type span struct {
		id          int
		from, until time.Duration // until 0: forever
	}
	var spans []span
	for _, x := range plan {
		if from, until, counts := x.faultyDuring(); counts {
			spans = append(spans, span{x.Replica, from, until})
		}
	}
	in := func(s span, t time.Duration) bool { return t >= s.from && (s.until == 0 || t < s.until) }
	for _, s := range spans {
		faulty := map[int]int{}
		for _, o := range spans {
			if in(o, s.from) {
				faulty[o.id]++
			}
		}
		if faulty[s.id] > 1 {
			errs = append(errs, fmt.Errorf("at %v replica %d has %d faults at once", s.from, s.id, faulty[s.id]))
		}
		if len(faulty) > f {
			ids := slices.Sorted(maps.Keys(faulty))
			errs = append(errs, fmt.Errorf("at %v replicas %v are faulty at once: more than f=%d", s.from, ids, f))
		}
	}
	return errors.Join(errs...)
}

func (x Fault) check(n int) error {
	switch {
	case x.From < 0 || x.Until < 0:
		return errors.New("negative time")
	case x.network() && x.Replica != -1:
		return errors.New("a network-wide fault hits no replica: want replica -1")
	case !x.network() && (x.Replica < 0 || x.Replica >= n):
		return fmt.Errorf("replica %d outside 0…%d", x.Replica, n-1)
	case byzantineKind(x.Kind):
		if x.From != 0 || x.Until != 0 {
			return errors.New("a Byzantine behaviour lasts the whole run: want from and until 0")
		}
		return nil
	}
	switch x.Kind {
	case FaultCrash:
		if x.Until != 0 && x.Until <= x.From {
			return errors.New("the restart must come after the crash")
		}
		return nil
	case FaultWipe, FaultDiskFull, FaultFsync, FaultIsolate, FaultOneWay, FaultCut, FaultPartition, FaultLossy:
		if x.Until <= x.From {
			return errors.New("must end after it starts")
		}
	default:
		return fmt.Errorf("unknown fault kind %q", x.Kind)
	}
	switch x.Kind {
	case FaultPartition, FaultCut:
		if len(x.Group) == 0 || len(x.Group) >= n {
			return fmt.Errorf("group %v: want 1…%d replicas", x.Group, n-1)
		}
		seen := map[int]bool{}
		for _, id := range x.Group {
			if id < 0 || id >= n || seen[id] || (x.Kind == FaultCut && id == x.Replica) {
				return fmt.Errorf("group %v: replica %d out of range, repeated or the sender", x.Group, id)
			}
			seen[id] = true
		}
	case FaultLossy:
		if x.Link == nil {
			return errors.New("a lossy period needs a link model")
		}
		if x.Link.Loss < 0 || x.Link.Loss >= 1 || x.Link.Duplicate < 0 || x.Link.Duplicate >= 1 || x.Link.Latency < 0 || x.Link.Jitter < 0 {
			return fmt.Errorf("link %+v: want loss and duplication in [0, 1), no negative delay", *x.Link)
		}
	}
	return nil
}

// corrupt marks the replica a fault makes faulty for the whole run (before
// the replicas are built: a Byzantine behaviour is a filter around one).
func (w *world) corrupt(x Fault) {
	id := msg.ReplicaID(x.Replica)
	switch {
	case x.Kind == FaultTwin:
		w.faulty[id] = "twin"
		w.twinB[id] = nil
	case x.Kind == string(byzantine.Dark):
		w.faulty[id] = x.Kind
		lit := byzantine.DefaultDark(id, w.n)
		w.dark[id] = map[msg.ReplicaID]bool{}
		for to := 0; to < w.n; to++ {
			if lit(msg.ReplicaID(to)) {
				w.dark[id][msg.ReplicaID(to)] = true
			}
		}
	case byzantineKind(x.Kind):
		w.faulty[id] = x.Kind
	case x.Kind == FaultWipe:
		w.faulty[id] = "wiped"
	}
}

// inject schedules a fault's start and end, and makes the run last until
// it is over (liveness is measured from then).
func (w *world) inject(x Fault) {
	if byzantineKind(x.Kind) {
		return // a filter, installed when the replica was built
	}
	w.minEnd = max(w.minEnd, simnet.FromDuration(x.end()))
	var r *replica
	if !x.network() {
		r = w.replicas[x.Replica]
	}
	switch x.Kind {
	case FaultCrash:
		at(w, x.From, r.crash)
		if x.Until > 0 {
			at(w, x.Until, r.restart)
		}
	case FaultWipe:
		at(w, x.From, func() { r.crash(); r.wipe() })
		at(w, x.Until, r.restart)
	case FaultDiskFull, FaultFsync:
		at(w, x.From, func() {
			if x.Kind == FaultDiskFull {
				r.disk.full = true
			} else {
				r.disk.badFsync = true
			}
		})
		// A supervisor restarts it once the disk is fixed; a replica that
		// stopped itself restarts from what it kept.
		at(w, x.Until, func() {
			if r.up {
				r.crash()
			}
			r.restart()
		})
	case FaultIsolate, FaultOneWay, FaultCut, FaultPartition, FaultLossy:
		at(w, x.From, func() { w.netFaults = append(w.netFaults, x); w.applyNet() })
		at(w, x.Until, func() {
			i := slices.IndexFunc(w.netFaults, func(o Fault) bool { return o.Kind == x.Kind && o.Replica == x.Replica && o.From == x.From })
			w.netFaults = slices.Delete(w.netFaults, i, i+1)
			w.applyNet()
			// What the runtime does when a replica's links come back: the
			// replicas that could not hear others announce, so peers tell
			// them what they missed (an idle cluster sends nothing else).
			for _, id := range x.deaf(w.n) {
				w.replicas[id].announce()
			}
		})
	}
}

// deaf lists the replicas that a network fault kept from hearing others.
func (x Fault) deaf(n int) []int {
	switch x.Kind {
	case FaultIsolate, FaultOneWay:
		return []int{x.Replica}
	case FaultCut:
		return x.Group
	case FaultPartition:
		all := make([]int, n)
		for i := range all {
			all[i] = i
		}
		return all
	}
	return nil
}

// applyNet makes the network what the faults active now say: links that
// no fault blocks are restored, so faults that overlap end independently.
func (w *world) applyNet() {
	w.net.Heal()
	link := w.link
	for _, x := range w.netFaults {
		switch x.Kind {
		case FaultIsolate:
			w.net.Isolate(w.replicas[x.Replica].net)
		case FaultOneWay:
			to := w.replicas[x.Replica].net
			for i := 0; i < w.net.N(); i++ {
				if i != to {
					w.net.Cut(i, to)
				}
			}
		case FaultCut:
			for _, to := range x.Group {
				w.net.Cut(w.replicas[x.Replica].net, w.replicas[to].net)
			}
		case FaultPartition:
			var rest []int
			for i := 0; i < w.n; i++ {
				if !slices.Contains(x.Group, i) {
					rest = append(rest, i)
				}
			}
			w.net.Partition(slices.Clone(x.Group), rest)
		case FaultLossy:
			link = *x.Link
		}
	}
	w.net.SetDefaultLink(link)
}

// describePlan lists a plan's faults in time order, one per line.
func describePlan(plan []Fault) []string {
	sorted := slices.Clone(plan)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].From < sorted[j].From })
	out := make([]string, len(sorted))
	for i, f := range sorted {
		out[i] = f.String()
	}
	return out
}

// planScenario runs a fault plan (Options.Faults).
func planScenario(plan []Fault) scenario {
	return scenario{
		about:    "the fault plan of Options.Faults",
		converge: true,
		bound:    planBound(plan),
		corrupt: func(w *world, _ int) {
			for _, x := range plan {
				w.corrupt(x)
			}
		},
		schedule: func(w *world) {
			for _, x := range plan {
				w.inject(x)
			}
		},
	}
}
