package pbft

import (
	"cmp"
	"slices"

	"github.com/braid-bft/braid/msg"
)

// The request timer, after PBFT's (Castro and Liskov, OSDI '99, §4.4): a
// backup waiting for requests it relayed runs one timer, for the oldest of
// them; when that one is proposed (seen in a pre-prepare it accepted) the
// timer restarts, from then, for the next oldest, and the progress timer
// (liveness.go) takes over the proposed one. A primary that leaves a
// request out is suspected within RequestTimeout of that request becoming
// the oldest, however many others it serves. A correct primary that is
// slow only because the cluster is busy, and keeps proposing what it was
// given, is never suspected however long its backlog or deep its
// pipeline — where a deadline per request from its arrival suspects it as
// soon as the backlog holds more than RequestTimeout of work, and the
// view changes that follow cost more work still (the overload storm in
// docs/benchmarks.md; the sim scenario "overload").

type watch struct {
	req      msg.Request
	since    int64 // tick it was first watched: its place in watchOrder
	proposed bool  // seen in a pre-prepare of this view: the progress timer's now
}

type watchEntry struct {
	key   msg.RequestKey
	since int64
}

// watch starts watching r, relayed to the primary.
func (n *Node) watch(r msg.Request) {
	key := r.Key()
	n.watching[key] = watch{req: r, since: n.tick}
	n.watchOrder = append(n.watchOrder, watchEntry{key: key, since: n.tick})
	if !n.timing {
		n.retime()
	}
}

// current reports whether e still stands for a watched, undecided request,
// and forgets the watch if a later request of its client was decided.
func (n *Node) current(e watchEntry) bool {
	w, ok := n.watching[e.key]
	if !ok || w.since != e.since || w.proposed {
		return false // no longer watched, watched again later (a later entry), or proposed
	}
	if w.req.Number <= n.decided[w.req.Client] {
		// Overtaken by a later request of the same client, or decided
		// inside a range we state-transferred over: nothing to wait for.
		delete(n.watching, e.key)
		return false
	}
	return true
}

// retime points the timer, from now, at the oldest request still watched,
// or stops it.
func (n *Node) retime() {
	for len(n.watchOrder) > 0 && !n.current(n.watchOrder[0]) {
		n.watchOrder = n.watchOrder[1:]
	}
	if len(n.watchOrder) == 0 {
		n.timing, n.watchOrder = false, nil
		return
	}
	n.timing, n.timerAt = true, n.tick
	if len(n.watchOrder) > 2*len(n.watching)+64 {
		// Requests decided out of arrival order leave entries behind the
		// front; drop them so the order stays as small as the watch set.
		kept := n.watchOrder[:0:0]
		for _, e := range n.watchOrder {
			if n.current(e) {
				kept = append(kept, e)
			}
		}
		n.watchOrder = kept
	}
}

// proposedWatched stops timing watched requests the primary has proposed
// (in a pre-prepare we accepted): from there the progress timer watches
// them (liveness.go). Under load a correct primary's pipeline holds
// seconds of work; a request timed until it is decided would be suspected
// whenever the pipeline is deeper than RequestTimeout, however steadily
// the primary proposes. What the request timer must catch is a primary
// that does not propose what it was given.
func (n *Node) proposedWatched(reqs []msg.Request) {
	if len(n.watching) == 0 {
		return
	}
	front := n.timing && len(n.watchOrder) > 0
	var timed msg.RequestKey
	if front {
		timed = n.watchOrder[0].key
	}
	hit := false
	for i := range reqs {
		key := reqs[i].Key()
		if w, ok := n.watching[key]; ok && !w.proposed {
			w.proposed = true
			n.watching[key] = w
			hit = hit || (front && key == timed)
		}
	}
	if hit {
		n.restartTimer() // the timed request was proposed: time the next from now
	}
}

// unproposeWatched times every watched request again, in the order they
// were first watched: under a new primary nothing is proposed yet.
func (n *Node) unproposeWatched() {
	n.watchOrder = n.watchOrder[:0]
	for _, key := range sortedKeys(n.watching) {
		w := n.watching[key]
		w.proposed = false
		n.watching[key] = w
		n.watchOrder = append(n.watchOrder, watchEntry{key: key, since: w.since})
	}
	slices.SortStableFunc(n.watchOrder, func(a, b watchEntry) int { return cmp.Compare(a.since, b.since) })
}

// restartTimer gives the oldest watched request a full RequestTimeout from
// now: under a new primary, or when a watched request was decided.
func (n *Node) restartTimer() {
	n.timing = false
	n.retime()
}

// requestOverdue: the timed request has waited RequestTimeout since the
// timer last started, not counting ticks the window was full. The timer
// restarts first if its request was decided. Called once per tick.
func (n *Node) requestOverdue() bool {
	if !n.timing {
		return false
	}
	if !n.current(n.watchOrder[0]) {
		n.restartTimer()
		if !n.timing {
			return false
		}
	}
	if n.windowFull() {
		// The primary has proposed every sequence number the window
		// allows: it has no room for the request until a checkpoint
		// stabilises, and that waits on execution — under RCC on every
		// other instance, a faulty one's stall included. Pause, rather
		// than restart, so a primary that still leaves the request out
		// once the window opens is suspected after RequestTimeout of
		// open window in all.
		n.timerAt++
		return false
	}
	return n.tick-n.timerAt >= int64(n.cfg.RequestTimeout)
}

// windowFull: every sequence number from our last decision to the high
// watermark is decided or holds a pre-prepare of this view (which the
// progress timer watches), so the primary can propose nothing more.
func (n *Node) windowFull() bool {
	for seq := n.lastDecided + 1; seq <= n.high(); seq++ {
		if s := n.slots[seq]; s == nil || s.pp == nil || s.view != n.view {
			return false
		}
	}
	return true
}
