package pbft

import "github.com/braid-bft/braid/msg"

// requestQueue is the primary's queue of requests waiting for a batch, in
// two lanes. Relayed requests — ones a backup received, relayed and now
// times (timer.go) — are proposed before those the primary received from
// clients directly. Under overload the direct lane is as long as the
// cluster is slow, and a relayed request queued behind it would wait
// longer than the backup's RequestTimeout: the backup would suspect a
// correct primary, the one failure an overloaded cluster cannot afford
// (view changes are work too). Served first, what backups time is decided
// within a few batches; what waits is what nobody times. Each lane keeps a
// moving head, so cutting a batch does not copy the queue.
type requestQueue struct {
	relayed, direct lane
}

type lane struct {
	reqs []msg.Request
	head int
}

func (l *lane) len() int { return len(l.reqs) - l.head }

func (l *lane) push(r msg.Request) { l.reqs = append(l.reqs, r) }

// take appends up to k requests from the front to out.
func (l *lane) take(out []msg.Request, k int) []msg.Request {
	k = min(k, l.len())
	out = append(out, l.reqs[l.head:l.head+k]...)
	clear(l.reqs[l.head : l.head+k]) // let the ops go
	l.head += k
	if l.head == len(l.reqs) {
		l.reqs, l.head = l.reqs[:0], 0
	} else if l.head > len(l.reqs)/2 && l.head > 1024 {
		l.reqs, l.head = append([]msg.Request(nil), l.reqs[l.head:]...), 0
	}
	return out
}

func (l *lane) remove(key msg.RequestKey) {
	for i := l.head; i < len(l.reqs); i++ {
		if l.reqs[i].Key() == key {
			l.reqs = append(l.reqs[:i], l.reqs[i+1:]...)
			return
		}
	}
}

func (q *requestQueue) len() int { return q.relayed.len() + q.direct.len() }

// take removes up to k requests, relayed ones first.
func (q *requestQueue) take(k int) []msg.Request {
	out := q.relayed.take(make([]msg.Request, 0, min(k, q.len())), k)
	return q.direct.take(out, k-len(out))
}

// remove drops the request with this key (decided through another path).
func (q *requestQueue) remove(key msg.RequestKey) {
	q.relayed.remove(key)
	q.direct.remove(key)
}
