// Package chaos runs a real Braid cluster — replica processes of the braid
// binary on loopback — under random faults for a bounded time, with SDK
// clients checking every result, and reports every safety violation it can
// observe: results no correct store returns, kv histories that are not
// linearizable (porcupine, the simulator's model), money created or lost
// by bank transfers, and ledgers of correct replicas that fail offline
// verification or disagree. It is braid chaos's engine (docs/chaos.md).
//
// Faults: kill -9 and restart from the data directory, SIGSTOP/SIGCONT,
// partitions and one-way cuts at loopback proxies it owns (proxy.go), up
// to f replicas running a braid replica --byzantine behaviour, and, as the
// negative control, f+1 twinned replicas that let two halves of the
// cluster decide differently.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/braid-bft/braid/app/kv"
	"github.com/braid-bft/braid/httpapi"
	"github.com/braid-bft/braid/ledger"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/sim"
	"github.com/braid-bft/braid/storage"
)

// ByzantineKinds are the behaviours a Byzantine replica draws from by
// default: braid replica --byzantine's, and Twin.
var ByzantineKinds = []string{"equivocate", "silent", "dark", "flood", "replay", "lie-checkpoint", Twin}

// Twin is the Byzantine "behaviour" of a replica run as two processes with
// the same id and key, each serving half of the correct replicas and of
// the clients: equivocation by a whole replica, not a filter. At most one
// replica of a run is a twin (more would be split-brain by construction,
// as the negative control shows).
const Twin = "twin"

// Options configure a run.
type Options struct {
	Binary    string        // the braid executable the replicas run
	Dir       string        // working directory (must exist; braid chaos makes a temporary one)
	N         int           // replicas
	Clients   int           // SDK clients
	Duration  time.Duration // how long faults are injected
	Seed      uint64
	Byzantine int // ≤ f: replicas running a --byzantine behaviour; > f: that many twinned replicas
	// Faulty is how many correct replicas faults may affect at once
	// (default max(1, f − Byzantine): beyond f − Byzantine the cluster
	// stalls while the faults last, which safety must survive too).
	Faulty int
	// Kinds restricts the behaviours Byzantine replicas draw from (default
	// ByzantineKinds).
	Kinds []string
	// Log receives one line per event (fault injected, healed, check);
	// Progress is called about once a second.
	Log      io.Writer
	Progress func(Progress)
}

// Progress is the running state shown on a terminal.
type Progress struct {
	Elapsed    time.Duration
	Operations int64
	GaveUp     int64
	Faults     int
	Active     []string // faults in force
}

// Result is the outcome; its JSON form is braid chaos --json's last line.
type Result struct {
	Operations       int            `json:"operations"` // acknowledged operations (kv and bank)
	Pending          int            `json:"pending"`    // kv operations given up on: outcome unknown
	FaultsInjected   int            `json:"faults_injected"`
	FaultsByKind     map[string]int `json:"faults_by_kind"`
	Restarts         int            `json:"restarts"` // killed replicas restarted from their data directory
	Violations       int            `json:"violations"`
	ViolationsByKind map[string]int `json:"violations_by_kind"`
	Details          []string       `json:"violation_details"` // the first few of each kind, one line each
	Seed             uint64         `json:"seed"`
	DurationSeconds  float64        `json:"duration_seconds"` // fault phase
	WallSeconds      float64        `json:"wall_seconds"`     // whole run
	N                int            `json:"n"`
	F                int            `json:"f"`
	Byzantine        map[int]string `json:"byzantine"`        // replica id → behaviour
	Twinned          []int          `json:"twinned"`          // replica ids run as twins
	Network          string         `json:"network"`          // how partitions and cuts are made
	LinKeys          int            `json:"lin_keys"`         // per-key histories checked
	LinUndecided     int            `json:"lin_undecided"`    // keys porcupine could not decide in time (not violations)
	BankChecked      bool           `json:"bank_checked"`     // transfer conservation was checked
	ExecutedChecked  int            `json:"executed_checked"` // requests in a correct ledger checked to execute at most once
	Converged        bool           `json:"converged"`        // correct replicas reached one height after healing
	LedgerHeights    map[int]uint64 `json:"ledger_heights"`   // correct replica id → verified height
	ComparedAtHeight uint64         `json:"compared_height"`  // height at which the correct ledgers were compared
	Notes            []string       `json:"notes,omitempty"`
}

// maxDetails bounds Result.Details per kind of violation.
const maxDetails = 5

func (r *Result) violation(kind, format string, args ...any) {
	r.Violations++
	r.ViolationsByKind[kind]++
	if r.ViolationsByKind[kind] <= maxDetails {
		r.Details = append(r.Details, kind+": "+fmt.Sprintf(format, args...))
	}
}

// Run runs one chaos experiment. An error means the experiment could not
// run (or was interrupted); violations are in the Result.
func Run(ctx context.Context, o Options) (*Result, error) {
	f := (o.N - 1) / 3
	switch {
	case o.N < 4:
		return nil, fmt.Errorf("n = %d: chaos needs n ≥ 4 (f ≥ 1)", o.N)
	case o.Byzantine < 0 || o.Byzantine > f+1:
		return nil, fmt.Errorf("byzantine count %d: need 0 ≤ count ≤ f+1 = %d (f+1 is the twinned negative control)", o.Byzantine, f+1)
	case o.Duration <= 0:
		return nil, fmt.Errorf("duration %v must be positive", o.Duration)
	}
	if o.Clients < 1 {
		o.Clients = 4
	}
	if o.Byzantine > f && o.Clients < 2 {
		o.Clients = 2
	}
	if len(o.Kinds) == 0 {
		o.Kinds = ByzantineKinds
	}
	logw := o.Log
	if logw == nil {
		logw = io.Discard
	}
	logf := func(format string, args ...any) { fmt.Fprintf(logw, format+"\n", args...) }
	began := time.Now()
	rng := rand.New(rand.NewPCG(o.Seed, 0x636861_6f73))
	res := &Result{FaultsByKind: map[string]int{}, ViolationsByKind: map[string]int{}, Details: []string{}, Seed: o.Seed, N: o.N, F: f,
		Byzantine: map[int]string{}, Twinned: []int{}, LedgerHeights: map[int]uint64{},
		Network: "loopback TCP proxies per link (partitions and one-way cuts; no privileges, nothing left on the machine)"}

	byz := map[int]string{}
	var twinned []int
	split := o.Byzantine > f
	if split {
		// The negative control: f+1 replicas each run twice, one twin per
		// half; each half is f+1 twins plus ~f correct replicas, a quorum.
		twinned = rng.Perm(o.N)[:o.Byzantine]
		slices.Sort(twinned)
	} else {
		for _, id := range rng.Perm(o.N)[:o.Byzantine] {
			kind := o.Kinds[rng.IntN(len(o.Kinds))]
			if kind == Twin && len(twinned) > 0 {
				// One twin at most; a second draw of it is a --byzantine kind.
				if kinds := slices.DeleteFunc(slices.Clone(o.Kinds), func(k string) bool { return k == Twin }); len(kinds) > 0 {
					kind = kinds[rng.IntN(len(kinds))]
				}
			}
			if kind == Twin {
				twinned = append(twinned, id)
			} else {
				byz[id] = kind
			}
		}
		res.Byzantine = byz
	}
	res.Twinned = append(res.Twinned, twinned...)
	cl, err := newCluster(o.Binary, o.Dir, o.N, o.Clients, byz, twinned, split)
	if err != nil {
		return nil, err
	}
	defer cl.shutdown()
	for _, p := range cl.procs {
		if err := cl.start(p); err != nil {
			return nil, err
		}
		if p.byz != "" {
			logf("%s: started with --byzantine %s", p.name(), p.byz)
		}
	}
	switch {
	case split:
		logf("twinned replicas %v: two processes each, same id and key, one per half (negative control: violations expected)", twinned)
	case len(twinned) > 0:
		logf("replica %d runs as twins: two processes, same id and key, each serving half of the correct replicas and clients", twinned[0])
	}

	rec := &recorder{start: time.Now()}
	workers := make([]*worker, o.Clients)
	for j := range workers {
		w, err := newWorker(cl.client[cl.clientHalf(j)], j, cl.keys[j], o.Seed, rec, o.Clients)
		if err != nil {
			return nil, err
		}
		defer w.c.Close()
		workers[j] = w
	}
	// Up: one acknowledged write per half.
	for h := range cl.client {
		if err := warm(ctx, workers[h], cl); err != nil {
			return nil, err
		}
	}
	logf("cluster up: %d processes, n = %d, f = %d, %d clients", len(cl.procs), o.N, f, o.Clients)
	var bankErr error
	var bwg sync.WaitGroup
	var bmu sync.Mutex
	for _, w := range workers {
		bwg.Add(1)
		go func() {
			defer bwg.Done()
			if err := w.setupBank(ctx); err != nil {
				bmu.Lock()
				bankErr = errors.Join(bankErr, err)
				bmu.Unlock()
			}
		}()
	}
	bwg.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if bankErr == nil {
		for _, w := range workers {
			w.bank = true
		}
	} else {
		res.Notes = append(res.Notes, fmt.Sprintf("bank workload off (account setup failed before any fault: %v)", bankErr))
	}

	var stopping atomic.Bool
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() { defer wg.Done(); w.run(ctx, &stopping) }()
	}

	budget := o.Faulty
	if budget <= 0 {
		budget = max(1, f-o.Byzantine)
	}
	inj := &injector{cl: cl, rng: rng, logf: logf, res: res, budget: budget}
	if split {
		inj.budget = 0 // the control shows the checks see a split, not faults
		res.Notes = append(res.Notes, "twinned run: no further faults are injected")
	}
	faultStart := time.Now()
	end := faultStart.Add(o.Duration)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	lastProgress := time.Time{}
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
		inj.step(time.Now())
		for _, e := range cl.unexpectedExits() {
			inj.exited(e)
		}
		if o.Progress != nil && time.Since(lastProgress) >= time.Second {
			lastProgress = time.Now()
			o.Progress(Progress{Elapsed: time.Since(faultStart), Operations: rec.count.Load(), GaveUp: rec.failed.Load(), Faults: res.FaultsInjected, Active: inj.activeNames()})
		}
	}
	res.DurationSeconds = time.Since(faultStart).Seconds()
	inj.healAll()
	logf("faults healed; the workload runs on for a moment")
	// Let operations caught by the last faults complete.
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(3 * time.Second):
	}
	stopping.Store(true)
	wg.Wait() // the operations in flight complete (or time out: pending)
	for _, e := range cl.unexpectedExits() {
		inj.exited(e)
	}

	// Every key read once more by one client of each half.
	final, cancelFinal := context.WithTimeout(ctx, 20*time.Second)
	for h := range cl.client {
		workers[h].readAll(final)
	}
	if bankErr == nil {
		checkBank(final, cl, workers, res)
	}
	cancelFinal()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	rec.mu.Lock()
	ops, bad := slices.Clone(rec.ops), slices.Clone(rec.bad)
	res.Pending = rec.pending
	rec.mu.Unlock()
	res.Operations = int(rec.count.Load())
	for _, b := range bad {
		res.violation("wrong_result", "%s", b)
	}
	lin := sim.CheckKVHistory(ops, 10*time.Second)
	res.LinKeys, res.LinUndecided = lin.Keys, lin.Timeouts
	for _, a := range lin.Anomalies {
		res.violation("linearizability", "%s", a)
	}
	logf("linearizability: %d operations (%d pending) over %d keys: %d not linearizable, %d undecided", len(ops), res.Pending, lin.Keys, lin.Illegal, lin.Timeouts)

	wait := 60 * time.Second
	if split {
		wait = 3 * time.Second // the halves are not expected to converge
	}
	res.Converged = converge(ctx, cl, wait)
	if !res.Converged {
		res.Notes = append(res.Notes, fmt.Sprintf("correct replicas did not reach one height within %v of healing (compared on their common prefix)", wait))
	}
	cl.shutdown()
	inj.stopped = true
	for _, e := range cl.unexpectedExits() {
		inj.exited(e)
	}
	if err := verifyLedgers(cl, res); err != nil {
		return nil, err
	}
	res.WallSeconds = time.Since(began).Seconds()
	sort.Strings(res.Notes)
	return res, nil
}

// warm waits until w's write is acknowledged: the replicas are listening
// and agree.
func warm(ctx context.Context, w *worker, cl *cluster) error {
	up := time.Now().Add(60 * time.Second)
	for {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := w.c.Submit(c, kv.Put([]byte("chaos-warm"), []byte("up")))
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(up) {
			return fmt.Errorf("cluster did not come up: %w (logs in %s)", err, cl.dir+"/logs")
		}
		if ex := cl.unexpectedExits(); len(ex) > 0 {
			return fmt.Errorf("cluster did not come up: %s", ex[0].desc)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkBank reads every account: transfers move money, so the balances
// must add up to what was deposited. In the negative control each half
// reads the accounts its own clients opened (the others do not exist
// there; transfers to them failed) and the sums are reported, not judged.
func checkBank(ctx context.Context, cl *cluster, workers []*worker, res *Result) {
	groups := 1
	if cl.split {
		groups = len(cl.client)
	}
	for h := 0; h < groups; h++ {
		var sum, want uint64
		ok := true
		for j := range workers {
			if cl.split && cl.clientHalf(j) != h {
				continue
			}
			want += startBalance
			b, err := workers[h].balance(ctx, account(j))
			if err != nil {
				res.Notes = append(res.Notes, fmt.Sprintf("bank: balance of %s unreadable after healing: %v", account(j), err))
				ok = false
				break
			}
			sum += b
		}
		if !ok {
			continue
		}
		res.BankChecked = true
		switch {
		case cl.split:
			res.Notes = append(res.Notes, fmt.Sprintf("bank: half %d's accounts hold %d of %d", h, sum, want))
		case sum != want:
			res.violation("bank_conservation", "the accounts hold %d in total, but %d was deposited and transfers only move money", sum, want)
		}
	}
}

// converge waits until every running correct replica reports the same
// height, or wait passes.
func converge(ctx context.Context, cl *cluster, wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	hc := &http.Client{Timeout: 2 * time.Second}
	for time.Now().Before(deadline) && ctx.Err() == nil {
		heights := map[uint64]bool{}
		ok := true
		for _, p := range cl.procs {
			if !p.correct() {
				continue
			}
			c, cancel := context.WithTimeout(ctx, 2*time.Second)
			st, err := httpapi.NewClient(p.httpAddr, hc).Status(c)
			cancel()
			if err != nil {
				ok = false
				break
			}
			heights[st.Height] = true
		}
		if ok && len(heights) == 1 {
			return true
		}
		time.Sleep(500 * time.Millisecond)
	}
	return false
}

// verifyLedgers verifies every correct replica's ledger offline and
// compares their blocks at the highest height they all have (blocks are
// hash-chained, so equal blocks there mean equal prefixes).
func verifyLedgers(cl *cluster, res *Result) error {
	ring, err := cl.base.Keyring()
	if err != nil {
		return err
	}
	type head struct {
		p  *proc
		st *storage.Store
		h  uint64
	}
	var heads []head
	defer func() {
		for _, h := range heads {
			h.st.Close()
		}
	}()
	for _, p := range cl.procs {
		if !p.correct() {
			continue
		}
		if _, err := os.Stat(p.dataDir); err != nil {
			res.violation("ledger_invalid", "%s: no data directory: %v", p.name(), err)
			continue
		}
		st, err := storage.Open(p.dataDir, storage.Options{})
		if err != nil {
			res.violation("ledger_invalid", "%s: cannot open its store: %v", p.name(), err)
			continue
		}
		rep, err := ledger.Verify(st, ring, cl.n, ledger.VerifyOptions{})
		if err != nil {
			st.Close()
			res.violation("ledger_invalid", "%s: %v", p.name(), err)
			continue
		}
		res.LedgerHeights[p.id] = rep.Height
		heads = append(heads, head{p: p, st: st, h: rep.Height})
	}
	if len(heads) > 0 {
		executedOnce(heads[0].p, heads[0].st, heads[0].h, res)
	}
	if len(heads) < 2 {
		return nil
	}
	common := heads[0].h
	for _, h := range heads {
		common = min(common, h.h)
	}
	res.ComparedAtHeight = common
	if common == 0 {
		res.Notes = append(res.Notes, "a correct replica's ledger is empty: nothing to compare")
		return nil
	}
	var ref msg.Digest
	for i, h := range heads {
		b, err := h.st.Block(common)
		if err != nil {
			res.violation("ledger_invalid", "%s: block %d: %v", h.p.name(), common, err)
			continue
		}
		if i == 0 {
			ref = b.Hash()
		} else if b.Hash() != ref {
			res.violation("ledger_mismatch", "%s's block %d is %x…, %s's is %x…", h.p.name(), common, digestPrefix(b.Hash()), heads[0].p.name(), digestPrefix(ref))
		}
	}
	return nil
}

// injector draws and undoes faults.
type injector struct {
	cl      *cluster
	rng     *rand.Rand
	logf    func(string, ...any)
	res     *Result
	budget  int  // correct replicas faulty at once
	stopped bool // the cluster is shut down: exits are recorded, not restarted

	next   time.Time
	active []*fault
}

type fault struct {
	kind    string
	desc    string
	victims []int // process indexes counted against the budget
	until   time.Time
	undo    func()
}

func (in *injector) activeNames() []string {
	var out []string
	for _, f := range in.active {
		out = append(out, f.desc)
	}
	return out
}

// affected is the set of processes a fault in force touches.
func (in *injector) affected() map[int]bool {
	m := map[int]bool{}
	for _, f := range in.active {
		for _, v := range f.victims {
			m[v] = true
		}
	}
	return m
}

func (in *injector) dur(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(in.rng.Int64N(int64(hi-lo)))
}

// step ends the faults that are due and, when it is time, injects one.
func (in *injector) step(now time.Time) {
	keep := in.active[:0]
	for _, f := range in.active {
		if now.After(f.until) {
			f.undo()
			in.logf("healed: %s", f.desc)
		} else {
			keep = append(keep, f)
		}
	}
	in.active = keep
	if in.budget == 0 || now.Before(in.next) {
		return
	}
	in.next = now.Add(in.dur(500*time.Millisecond, 2*time.Second))
	aff := in.affected()
	if len(aff) >= in.budget {
		return
	}
	var free []int
	for _, p := range in.cl.procs {
		if p.correct() && !aff[p.idx] {
			free = append(free, p.idx)
		}
	}
	if len(free) == 0 {
		return
	}
	v := in.cl.procs[free[in.rng.IntN(len(free))]]
	f := &fault{victims: []int{v.idx}, until: now.Add(in.dur(time.Second, 4*time.Second))}
	switch kind := [...]string{"kill", "pause", "partition", "cut"}[in.rng.IntN(4)]; kind {
	case "kill":
		f.kind, f.desc = kind, fmt.Sprintf("kill -9 %s", v.name())
		v.kill()
		f.undo = func() {
			if err := in.cl.start(v); err != nil {
				in.res.Notes = append(in.res.Notes, fmt.Sprintf("restart of %s failed: %v", v.name(), err))
				return
			}
			in.res.Restarts++
		}
	case "pause":
		f.kind, f.desc = kind, fmt.Sprintf("SIGSTOP %s", v.name())
		v.signal(syscall.SIGSTOP)
		f.undo = func() { v.signal(syscall.SIGCONT) }
	case "partition":
		// A minority side — v and, when the budget allows, more correct
		// replicas — against every other replica and the clients.
		side := map[int]bool{v.idx: true}
		names := []string{v.name()}
		for _, i := range in.rng.Perm(len(free)) {
			if len(side) >= in.budget-len(aff) || len(side) >= len(in.cl.procs)/3 {
				break
			}
			if q := in.cl.procs[free[i]]; !side[q.idx] {
				side[q.idx] = true
				names = append(names, q.name())
				f.victims = append(f.victims, q.idx)
			}
		}
		f.kind, f.desc = kind, fmt.Sprintf("partition {%s} from the rest", strings.Join(names, ", "))
		set := func(on bool) {
			for a := range side {
				for node := range len(in.cl.procs) + len(in.cl.client) {
					if !side[node] {
						in.cl.nw.setCut(a, node, on)
						in.cl.nw.setCut(node, a, on)
					}
				}
			}
		}
		set(true)
		f.undo = func() { set(false) }
	case "cut":
		// One direction of one link, or v's whole sending side (a replica
		// that can receive but not send, or the other way round).
		others := []*proc{}
		for _, q := range in.cl.procs {
			if q != v {
				others = append(others, q)
			}
		}
		out := in.rng.IntN(2) == 0
		var targets []*proc
		if in.rng.IntN(2) == 0 {
			targets = []*proc{others[in.rng.IntN(len(others))]}
		} else {
			targets = others
		}
		names := []string{}
		for _, q := range targets {
			names = append(names, fmt.Sprint(q.id))
		}
		if out {
			f.desc = fmt.Sprintf("one-way cut %s → {%s}", v.name(), strings.Join(names, ","))
		} else {
			f.desc = fmt.Sprintf("one-way cut {%s} → %s", strings.Join(names, ","), v.name())
		}
		f.kind = kind
		set := func(on bool) {
			for _, q := range targets {
				if out {
					in.cl.nw.setCut(v.idx, q.idx, on)
				} else {
					in.cl.nw.setCut(q.idx, v.idx, on)
				}
			}
		}
		set(true)
		f.undo = func() { set(false) }
	}
	in.active = append(in.active, f)
	in.res.FaultsInjected++
	in.res.FaultsByKind[f.kind]++
	in.logf("fault: %s for %v", f.desc, f.until.Sub(now).Round(100*time.Millisecond))
}

// exited handles a process that ended without being killed: a correct
// replica's exit is a violation (it stopped itself: fail-stop or a crash);
// it is restarted so the run goes on.
func (in *injector) exited(e exit) {
	p, desc := e.p, e.desc
	{
		if p.running() {
			return
		}
		if p.correct() {
			in.res.violation("replica_exited", "%s", desc)
		} else {
			in.res.Notes = append(in.res.Notes, desc)
		}
		if in.stopped {
			return
		}
		in.logf("%s; restarting it", desc)
		if err := in.cl.start(p); err != nil {
			in.res.Notes = append(in.res.Notes, fmt.Sprintf("restart of %s failed: %v", p.name(), err))
		}
		return
	}
}

// healAll undoes every fault in force, then every cut and pause that
// might remain.
func (in *injector) healAll() {
	for _, f := range in.active {
		f.undo()
		in.logf("healed: %s", f.desc)
	}
	in.active = nil
	in.cl.nw.healAll()
	for _, p := range in.cl.procs {
		p.signal(syscall.SIGCONT)
	}
}

// executedOnce checks that no request — a client id and request number —
// appears twice in p's verified ledger: every operation, transfers
// included, executed at most once. (Braid assigns no instance changes
// here: chaos clusters use m = n − f, primary replacement.)
func executedOnce(p *proc, st *storage.Store, height uint64, res *Result) {
	seen := map[[2]uint64]uint64{}
	for h := uint64(1); h <= height; h++ {
		b, err := st.Block(h)
		if err != nil {
			res.violation("ledger_invalid", "%s: block %d: %v", p.name(), h, err)
			return
		}
		for _, r := range b.Requests {
			k := [2]uint64{uint64(r.Client), r.Number}
			if first, dup := seen[k]; dup {
				res.violation("executed_twice", "%s's ledger executes client %d's request %d at heights %d and %d", p.name(), r.Client, r.Number, first, h)
				continue
			}
			seen[k] = h
		}
	}
	res.ExecutedChecked = len(seen)
}

func digestPrefix(d msg.Digest) []byte { return d[:8] }
