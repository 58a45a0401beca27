// Package sim is Braid's deterministic simulator: it runs n copies of the
// production replica runtime (package shell, with the real cores inside)
// over simnet's virtual network, a simulated disk and a CPU cost model
// (machine.go), wraps up to f of them in Byzantine behaviours, drives closed-loop clients, and checks the invariants
// (checker.go: no equivocation, agreement, validity, client safety, liveness) on every decision. A run is a pure function of Options: the
// same seed gives the same event trace and the same trace hash.
package sim

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/braid-bft/braid/app"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/quorum"
	"github.com/braid-bft/braid/rcc"
	"github.com/braid-bft/braid/sim/simnet"
	"github.com/braid-bft/braid/transport"
)

// Options describe one run.
type Options struct {
	Protocol          string     // "pbft" or "rcc"
	M                 int        // rcc: instances, 1 ≤ M ≤ N; default N
	Policy            rcc.Policy // rcc: failure policy; default by m (replace if m ≤ n−f)
	Sigma, Epsilon    uint64     // rcc: gap and skip sizes; 0 = the rcc defaults
	Scenario          string
	N                 int
	Seed              uint64
	Clients           int           // default 4; negative: none (e.g. with Load)
	RequestsPerClient int           // default 25
	MaxVirtual        time.Duration // liveness deadline; default 60s
	// Load adds an open-loop workload (for throughput measurements).
	Load *Load
	// Machine is each replica's simulated hardware; zero fields take
	// the defaults (2 cores, 30µs per verification, 1ms per fsync).
	Machine Machine
	// NIC is each replica's network card, in bytes per second of egress
	// (0: unlimited); every message it sends queues for it.
	NIC int64
	// Batch is the most requests per batch (default 16, the fault
	// scenarios' setting; msg.MaxBatchSize at most).
	Batch int
	// Regions, if set, places the replicas in a wide-area network
	// (regions.go); nil is one LAN.
	Regions *Regions
	// MeasureFrom and MeasureTo, when MeasureTo is set, are the window
	// Result.Usage covers (each replica's busy time per resource).
	MeasureFrom, MeasureTo time.Duration
	// Abort, if set, is asked every 50 ms of virtual time whether to stop
	// the run (a benchmark's memory guard); a non-nil answer ends it and
	// Run returns that error.
	Abort func() error
	// Progress, if set, is told the virtual time every half virtual
	// second (a long run's progress line); it does not change the run.
	Progress func(virtual time.Duration)
	// Liveness turns on liveness mode: once the scenario's faults are over
	// (its last scheduled fault or recovery), every correct client's
	// requests must complete and every up correct replica must reach the
	// same ledger head within LivenessBound, or the run fails.
	Liveness      bool
	LivenessBound time.Duration // default 10s of virtual time
	// Byzantine overrides how many replicas the scenario corrupts (where
	// the scenario supports several). Setting it above f is the negative
	// control: the checker must then find violations.
	Byzantine int
	// Linearizability turns on the linearizability workload and check
	// (linearizability.go): the closed-loop clients run gets, puts and
	// compare-and-sets over a few shared kv keys, every operation's
	// virtual invocation and response time is recorded, and at the end
	// porcupine checks each key's history; a non-linearizable key is a
	// violation, a check that times out is counted (Result.Lin).
	Linearizability bool
	// LinTimeout bounds porcupine's search per key (wall time); default
	// DefaultLinTimeout.
	LinTimeout time.Duration
	// Bank turns on the bank workload and check (bankcheck.go): the
	// closed-loop clients open accounts, deposit and transfer among
	// them; at the end the agreed ledger is replayed: every bank request
	// in it at most once, every result what a money-conserving bank gives
	// (Result.Bank). Not with Linearizability.
	Bank bool
	// Faults is a fault plan (faults.go), run under the scenario "plan"
	// instead of a named one's faults: the swarm's draws, or any mix of
	// the catalogue. Run does not hold it to the fault budget (CheckPlan
	// does): a plan beyond f is a negative control.
	Faults []Fault
	// Tuning overrides the replicas' protocol timing and window.
	Tuning Tuning
	// Link is every link's model while no fault changes it (nil: a LAN,
	// 1 ms plus up to 2 ms of jitter).
	Link *simnet.Link
}

// Tuning is the replicas' protocol timing and window. Zero fields take the
// simulator's settings, shorter than production's so that runs under
// faults finish in little virtual time. Times are in ticks of 10 ms.
type Tuning struct {
	CheckpointInterval uint64 `json:"checkpoint_interval,omitempty"` // K; default 8
	Window             uint64 `json:"window,omitempty"`              // default 32: a multiple of K, at least 2K
	RequestTimeout     int    `json:"request_timeout,omitempty"`     // default 30
	ProgressTimeout    int    `json:"progress_timeout,omitempty"`    // default 30
	ViewChangeTimeout  int    `json:"view_change_timeout,omitempty"` // default 30
	RetransmitTicks    int    `json:"retransmit_ticks,omitempty"`    // default 5
}

// PlanScenario is the scenario that runs Options.Faults.
const PlanScenario = "plan"

// Totals are the counts of a run that a sweep over seeds adds up (braid sim
// prints the same fields for one seed and for many).
type Totals struct {
	DecidedRequests  uint64  `json:"decided_requests"`
	ExecutedRequests uint64  `json:"executed_requests"`
	ExecutedPerSec   float64 `json:"executed_per_virtual_second"`
	Completed        int     `json:"completed_requests"`
	Submitted        int     `json:"submitted_requests"`
	ViewChanges      uint64  `json:"view_changes"`
	VirtualSeconds   float64 `json:"virtual_seconds"`
	// TraceHash identifies the run's event trace; over a sweep it is the
	// last run's, so that one seed can be compared across builds.
	TraceHash string `json:"trace_hash"`
	// Lin is what the linearizability check covered (nil unless
	// Options.Linearizability).
	Lin *LinStats `json:"linearizability,omitempty"`
	// Bank is what the bank check covered (nil unless Options.Bank).
	Bank *BankStats `json:"bank,omitempty"`
}

// Add adds another run's counts to t.
func (t *Totals) Add(o Totals) {
	t.DecidedRequests += o.DecidedRequests
	t.ExecutedRequests += o.ExecutedRequests
	t.Completed += o.Completed
	t.Submitted += o.Submitted
	t.ViewChanges += o.ViewChanges
	t.VirtualSeconds += o.VirtualSeconds
	t.TraceHash = o.TraceHash
	if o.Lin != nil {
		if t.Lin == nil {
			t.Lin = &LinStats{}
		}
		t.Lin.add(*o.Lin)
	}
	if o.Bank != nil {
		if t.Bank == nil {
			t.Bank = &BankStats{}
		}
		t.Bank.add(*o.Bank)
	}
	t.ExecutedPerSec = 0
	if t.VirtualSeconds > 0 {
		t.ExecutedPerSec = float64(t.ExecutedRequests) / t.VirtualSeconds
	}
}

// Result summarises a run.
type Result struct {
	Scenario   string   `json:"scenario"`
	Protocol   string   `json:"protocol"`
	Seed       uint64   `json:"seed"`
	N          int      `json:"n"`
	F          int      `json:"f"`
	Violations []string `json:"violations"`
	Totals
	Dropped           map[string]uint64 `json:"dropped"`
	SoftFailures      uint64            `json:"soft_failures"`
	MaxSuspicionGap   uint64            `json:"max_suspicion_gap"`
	FirstSuspicionGap uint64            `json:"first_suspicion_gap"`
	Sigma             uint64            `json:"sigma"`
	// FailStops counts replicas that stopped themselves on a storage
	// failure (each restart that failed again counts again).
	FailStops int `json:"fail_stops"`
	// LoadCompletions are the virtual times (seconds) at which open-loop
	// requests were accepted by the load generator.
	LoadCompletions []float64 `json:"-"`
	// LoadLatencies are how long each of them took, issue to the f+1th
	// matching reply (seconds, same order).
	LoadLatencies []float64 `json:"-"`
	// FaultsOverSeconds is when the scenario's last scheduled fault or
	// recovery happened (0 if it has none).
	FaultsOverSeconds float64 `json:"faults_over_seconds"`
	// Messages is how many copies the network delivered, and Events how
	// many events the scheduler ran (the simulator's own cost).
	Messages uint64 `json:"messages"`
	Events   uint64 `json:"events"`
	// Rounds is the highest round a correct replica executed; Proposals
	// how many batches the primaries proposed in all, and KeepUp how many
	// of those rcc's keep-up rule made (to follow instances ahead).
	Rounds    uint64 `json:"rounds"`
	Proposals uint64 `json:"proposals"`
	KeepUp    uint64 `json:"keep_up_proposals"`
	// Usage is each replica's utilisation of its resources over
	// [MeasureFrom, MeasureTo) (nil unless MeasureTo is set).
	Usage []Usage `json:"usage,omitempty"`
}

const tickEvery = 10 * time.Millisecond

type world struct {
	opts      Options
	s         *simnet.Scheduler
	net       *simnet.Network
	keys      simKeys
	n, f      int
	replicas  []*replica // the main copy of each replica id
	clients   []*client
	load      *loadgen
	byNet     map[int]any
	faulty    map[msg.ReplicaID]string // replica → behaviour
	twinB     map[msg.ReplicaID]*replica
	dark      map[msg.ReplicaID]map[msg.ReplicaID]bool // in-the-dark: who a faulty primary sends proposals to
	side      map[msg.ReplicaID]int                    // correct replicas' side, when twins are present
	chk       *checker
	usage     []Usage // Options.MeasureTo's report, once the window closed
	dropped   map[string]uint64
	minEnd    simnet.Time // the run lasts at least this long, so scheduled faults and recoveries happen
	policy    rcc.Policy  // rcc: the effective failure policy
	link      simnet.Link // every link's model while no fault changes it
	netFaults []Fault     // the network faults active now (faults.go)
	machine   Machine
	logger    *slog.Logger
	// failStopped counts, per replica, the times its storage failed and
	// it stopped itself.
	failStopped map[msg.ReplicaID]int
}

// sharedExpansions is how many state-digest expansions (2 KiB each) the
// simulated replicas share per generation: enough for the writes a
// 128-replica cluster has in flight between its first and last replica
// executing them, 64 MiB in all.
const sharedExpansions = 1 << 14

// Run executes one simulation.
func Run(o Options) (Result, error) {
	_, res, err := runWorld(o)
	return res, err
}

// runWorld is Run, also returning the world it ran (for tests).
func runWorld(o Options) (*world, Result, error) {
	// Every replica executes every write, and each expands the same
	// elements of the state digest: share them (app/lthashcache.go).
	app.ShareExpansions(sharedExpansions)
	if o.Protocol == "" {
		o.Protocol = "pbft"
	}
	if o.Protocol != "pbft" && o.Protocol != "rcc" {
		return nil, Result{}, fmt.Errorf("protocol %q: want pbft or rcc", o.Protocol)
	}
	if o.Protocol == "rcc" {
		if o.M == 0 {
			o.M = o.N
		}
		if o.M < 1 || o.M > o.N {
			return nil, Result{}, fmt.Errorf("m=%d: want 1 ≤ m ≤ n=%d", o.M, o.N)
		}
	}
	if o.N < 4 {
		return nil, Result{}, fmt.Errorf("n=%d: need at least 4 replicas to tolerate a fault", o.N)
	}
	if o.Linearizability && o.Bank {
		return nil, Result{}, fmt.Errorf("the linearizability and bank workloads are alternatives: choose one")
	}
	if o.Batch == 0 {
		o.Batch = 16
	}
	if o.Batch < 1 || o.Batch > msg.MaxBatchSize {
		return nil, Result{}, fmt.Errorf("batch %d: want 1 ≤ batch ≤ %d", o.Batch, msg.MaxBatchSize)
	}
	if o.NIC < 0 {
		return nil, Result{}, fmt.Errorf("NIC bandwidth %d bytes/s: must not be negative", o.NIC)
	}
	if err := o.Machine.Validate(); err != nil {
		return nil, Result{}, fmt.Errorf("machine: %w", err)
	}
	if o.Clients == 0 {
		o.Clients = 4
	}
	if o.Clients < 0 {
		o.Clients = 0
	}
	if o.RequestsPerClient == 0 {
		o.RequestsPerClient = 25
	}
	if o.MaxVirtual == 0 {
		o.MaxVirtual = 60 * time.Second
	}
	sc, ok := scenarios[o.Scenario]
	if o.Scenario == PlanScenario {
		sc, ok = planScenario(o.Faults), true
	} else if o.Faults != nil {
		return nil, Result{}, fmt.Errorf("a fault plan runs as scenario %q, not %q", PlanScenario, o.Scenario)
	}
	if !ok {
		return nil, Result{}, fmt.Errorf("unknown scenario %q (have %v, or %q with Options.Faults)", o.Scenario, ScenarioNames(), PlanScenario)
	}
	if o.LivenessBound == 0 {
		o.LivenessBound = 10 * time.Second
		if sc.bound != 0 {
			o.LivenessBound = sc.bound
		}
	}
	if sc.inPlace && o.Protocol == "rcc" {
		o.M = o.N
	}
	if sc.clients != 0 && o.Clients == 4 {
		o.Clients = sc.clients
	}
	if sc.load != nil && o.Load == nil {
		l := *sc.load
		o.Load = &l
	}
	w := &world{
		opts:        o,
		s:           simnet.New(o.Seed),
		keys:        newSimKeys(o.Seed),
		n:           o.N,
		f:           quorum.Faults(o.N),
		byNet:       make(map[int]any),
		faulty:      make(map[msg.ReplicaID]string),
		twinB:       make(map[msg.ReplicaID]*replica),
		dark:        make(map[msg.ReplicaID]map[msg.ReplicaID]bool),
		side:        make(map[msg.ReplicaID]int),
		dropped:     make(map[string]uint64),
		machine:     o.Machine.withDefaults(),
		logger:      slog.New(slog.DiscardHandler),
		failStopped: map[msg.ReplicaID]int{},
	}
	w.chk = newChecker(w)
	if o.Protocol == "rcc" {
		w.policy = o.Policy
		if w.policy == 0 {
			w.policy = rcc.Replace
			if o.M > o.N-w.f {
				w.policy = rcc.InPlace
			}
		}
	}
	byz := o.Byzantine
	if byz == 0 {
		byz = w.f
	}
	sc.corrupt(w, byz)
	twins := len(w.twinB)
	w.net = simnet.NewNetwork(w.s, o.N+o.Clients+twins+1, w.deliver)
	lan := simnet.Link{Latency: time.Millisecond, Jitter: 2 * time.Millisecond}
	if o.Link != nil {
		lan = *o.Link
	}
	w.link = lan
	w.net.SetDefaultLink(lan)
	if o.Regions != nil {
		if err := o.Regions.validate(); err != nil {
			return nil, Result{}, err
		}
		o.Regions.apply(w.net, o.N+o.Clients+twins+1, o.N, lan)
	}
	if o.NIC > 0 {
		for i := 0; i < o.N; i++ {
			w.net.SetNIC(i, o.NIC)
		}
		// What waits for a card is bounded as production's per-peer send
		// queues are: beyond it messages are dropped, not held.
		w.net.SetSendQueue(transport.DefaultQueueFrames, transport.DefaultQueueBytes)
	}
	for i := 0; i < o.N; i++ {
		r, err := newReplica(w, msg.ReplicaID(i), i, w.faulty[msg.ReplicaID(i)])
		if err != nil {
			return nil, Result{}, err
		}
		w.replicas = append(w.replicas, r)
		w.byNet[i] = r
	}
	next := o.N + o.Clients
	for _, id := range slices.Sorted(maps.Keys(w.twinB)) {
		r, err := newReplica(w, id, next, "twin")
		if err != nil {
			return nil, Result{}, err
		}
		r.twinSide = 1
		w.twinB[id] = r
		w.byNet[next] = r
		next++
	}
	if twins > 0 {
		var correct []msg.ReplicaID
		for i := 0; i < o.N; i++ {
			if _, bad := w.faulty[msg.ReplicaID(i)]; !bad {
				correct = append(correct, msg.ReplicaID(i))
			}
		}
		for k, id := range correct {
			if k >= len(correct)/2 {
				w.side[id] = 1
			}
		}
	}
	for c := 0; c < o.Clients; c++ {
		cl := newClient(w, msg.ClientID(c), o.N+c)
		w.clients = append(w.clients, cl)
		w.byNet[o.N+c] = cl
	}
	if o.Load != nil {
		w.load = newLoadgen(w, *o.Load, next)
		w.byNet[next] = w.load
	}
	for _, r := range w.allReplicas() {
		r.start()
	}
	sc.schedule(w)
	for _, cl := range w.clients {
		cl.start()
	}
	if w.load != nil {
		w.load.start()
	}
	if o.Progress != nil {
		w.s.Every(500*time.Millisecond, func() { o.Progress(time.Duration(w.s.Now())) })
	}
	var aborted error
	if o.Abort != nil {
		w.s.Every(50*time.Millisecond, func() {
			if aborted == nil {
				aborted = o.Abort()
			}
		})
	}
	if o.MeasureTo > o.MeasureFrom {
		w.measureUsage(o.MeasureFrom, o.MeasureTo)
	}
	deadline := simnet.FromDuration(o.MaxVirtual)
	if o.Liveness {
		deadline = w.minEnd + simnet.FromDuration(o.LivenessBound)
	}
	w.s.RunWhile(func() bool { return aborted == nil && (!w.clientsDone() || w.s.Now() < w.minEnd) }, deadline)
	if aborted != nil {
		return w, w.result(), fmt.Errorf("run stopped at %v of virtual time: %w", time.Duration(w.s.Now()), aborted)
	}
	if o.Liveness && !w.clientsDone() {
		w.chk.violate("liveness: requests still outstanding %v after the faults ended (at %v)", o.LivenessBound, w.minEnd)
	}
	if sc.converge || o.Liveness {
		// Recovery: the restarted or reconnected replica must reach the
		// others' ledger head. Idle replicas answer its beacons, so give it
		// a bounded while.
		limit := w.s.Now() + simnet.FromDuration(10*time.Second)
		w.s.RunWhile(func() bool { ok, _ := w.chk.converged(); return !ok }, limit)
		if ok, why := w.chk.converged(); !ok {
			w.chk.violate("recovery: ledger heads differ at the end: %s", why)
		}
	}
	if sc.calm {
		for _, r := range w.replicas {
			if _, vcs, _ := r.stats(); vcs > 0 {
				w.chk.violate("suspicion: replica %d changed view %d times with no replica faulty: a correct primary was suspected", r.id, vcs)
			}
		}
	}
	return w, w.result(), nil
}

func (w *world) allReplicas() []*replica {
	out := slices.Clone(w.replicas)
	for _, id := range slices.Sorted(maps.Keys(w.twinB)) {
		out = append(out, w.twinB[id])
	}
	return out
}

func (w *world) correct(id msg.ReplicaID) bool {
	_, bad := w.faulty[id]
	return !bad
}

func (w *world) clientsDone() bool {
	if w.load != nil && !w.load.drained() {
		return false
	}
	for _, c := range w.clients {
		if !c.done() {
			return false
		}
	}
	return true
}

// netTarget routes a message from network node `from` to replica `to`: a
// twinned replica is two nodes, and each side of the split sees only one.
func (w *world) netTarget(from int, to msg.ReplicaID) int {
	b, twinned := w.twinB[to]
	if !twinned {
		return int(to)
	}
	side := 0
	switch x := w.byNet[from].(type) {
	case *replica:
		if x.twinSide == 1 {
			side = 1
		} else if _, tw := w.twinB[x.id]; !tw {
			side = w.side[x.id]
		}
	case *client:
		side = int(x.id % 2)
	}
	if side == 1 {
		return b.net
	}
	return int(to)
}

// reachable: a twin copy talks only to its own side.
func (w *world) reachable(from *replica, to msg.ReplicaID) bool {
	if _, tw := w.twinB[from.id]; !tw {
		return true
	}
	if _, tw := w.twinB[to]; tw {
		return true
	}
	return w.side[to] == from.twinSide
}

func (w *world) deliver(from, to int, payload []byte) {
	if r, ok := w.byNet[from].(*replica); ok {
		// Every message a replica sends to another passes here (a copy
		// lost on the way contradicts nobody): the checker sees what each
		// replica said, across its restarts.
		w.chk.sent(r, payload, w.net.Delivering())
	}
	switch x := w.byNet[to].(type) {
	case *replica:
		x.deliver(from, payload)
	case *client:
		x.receive(from, payload)
	case *loadgen:
		x.receive(from, payload)
	}
}

func (w *world) result() Result {
	res := Result{
		Scenario: w.opts.Scenario, Protocol: w.opts.Protocol, Seed: w.opts.Seed, N: w.n, F: w.f,
		Dropped: w.dropped, Usage: w.usage, Messages: w.net.Stats().Delivered, Events: w.s.Scheduled(),
	}
	if q := w.net.Stats().DroppedQueueFull; q > 0 {
		res.Dropped["send-queue-full"] += q // a NIC's per-peer queue at its bound
	}
	res.VirtualSeconds = w.s.Now().Seconds()
	for _, c := range w.clients {
		res.Completed += c.completed()
		res.Submitted += c.total
	}
	for _, r := range w.replicas {
		if !w.correct(r.id) {
			continue
		}
		{
			st := r.node().Stats()
			res.SoftFailures = max(res.SoftFailures, st.SoftFailures)
			res.MaxSuspicionGap = max(res.MaxSuspicionGap, st.MaxSuspicionGap)
			if res.FirstSuspicionGap == 0 || (st.FirstSuspicionGap != 0 && st.FirstSuspicionGap < res.FirstSuspicionGap) {
				res.FirstSuspicionGap = st.FirstSuspicionGap
			}
			res.Sigma = r.node().Config().Sigma
		}
		res.Rounds = max(res.Rounds, r.sh.Round())
		res.KeepUp += r.node().Stats().EmptyProposals
		for k := 0; k < r.node().Config().M; k++ {
			res.Proposals += r.node().Instance(k).Stats().Proposed
		}
		decided, vcs, dropped := r.stats()
		res.DecidedRequests = max(res.DecidedRequests, decided)
		res.ViewChanges = max(res.ViewChanges, vcs)
		res.ExecutedRequests = max(res.ExecutedRequests, r.executedRequests)
		for k, v := range dropped {
			res.Dropped[k] += v
		}
	}
	if w.load != nil {
		for i, t := range w.load.done {
			res.LoadCompletions = append(res.LoadCompletions, t.Seconds())
			res.LoadLatencies = append(res.LoadLatencies, w.load.latency[i].Seconds())
		}
		res.Completed += len(w.load.done)
		res.Submitted += int(w.load.seq)
	}
	if res.VirtualSeconds > 0 {
		res.ExecutedPerSec = float64(res.ExecutedRequests) / res.VirtualSeconds
	}
	for _, k := range w.failStopped {
		res.FailStops += k
	}
	if w.opts.Linearizability {
		res.Lin = w.chk.checkLinearizability()
	}
	if w.opts.Bank {
		res.Bank = w.chk.checkBank()
	}
	w.chk.finish()
	res.Violations = w.chk.violations
	res.FaultsOverSeconds = w.minEnd.Seconds()
	h := w.s.TraceHash()
	res.TraceHash = hex.EncodeToString(h[:])
	return res
}

// ScenarioNames lists the scenarios in a stable order.
func ScenarioNames() []string {
	names := slices.Collect(maps.Keys(scenarios))
	sort.Strings(names)
	return names
}

func digestOf(parts ...[]byte) msg.Digest {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
	}
	var d msg.Digest
	h.Sum(d[:0])
	return d
}
