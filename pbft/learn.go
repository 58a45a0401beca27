package pbft

// Learning decisions from outside our view: commit quorums of another view,
// relayed pre-prepares.

import (
	"github.com/braid-bft/braid/msg"
)

// A replica that is not in the view the others decide in — it was cut off
// and suspected alone, or it restarted — can still learn decisions without
// voting: q commits for (v, s, d) from distinct replicas mean at least
// q−f ≥ f+1 correct replicas prepared d at s in view v, so d is committed
// and every view change keeps it; any pre-prepare whose digest is d carries
// its content (the digest binds the batch, no-op and failure flags alike).

type learnSlot struct {
	votes map[msg.ReplicaID]learnVote // latest commit per sender
	pps   map[msg.Digest]*msg.PrePrepare
}

type learnVote struct {
	view   uint64
	digest msg.Digest
}

const maxLearnBodies = 4 // distinct pre-prepare bodies kept per sequence number

func (n *Node) learnWindow(seq uint64) bool {
	return seq > n.lastDecided && seq <= n.lastDecided+n.cfg.Window && seq > n.low
}

func (n *Node) learning(seq uint64) *learnSlot {
	l := n.learned[seq]
	if l == nil {
		l = &learnSlot{votes: map[msg.ReplicaID]learnVote{}, pps: map[msg.Digest]*msg.PrePrepare{}}
		n.learned[seq] = l
	}
	return l
}

func (n *Node) learnCommit(c *msg.Commit) bool {
	if !n.learnWindow(c.Seq) {
		return false
	}
	l := n.learning(c.Seq)
	if have, ok := l.votes[c.From]; ok && have.view >= c.View {
		return false
	}
	l.votes[c.From] = learnVote{c.View, c.Digest}
	n.tryLearn()
	return true
}

func (n *Node) learnPrePrepare(pp *msg.PrePrepare) bool {
	if !n.learnWindow(pp.Seq) || n.checkBatch(pp) != "" {
		return false
	}
	l := n.learning(pp.Seq)
	if _, ok := l.pps[pp.Digest]; ok || len(l.pps) >= maxLearnBodies {
		return false
	}
	l.pps[pp.Digest] = pp
	n.tryLearn()
	return true
}

// tryLearn delivers, in order, every next sequence number a commit quorum
// proves decided and whose content we hold.
func (n *Node) tryLearn() {
	for n.transferring == 0 {
		seq := n.lastDecided + 1
		l := n.learned[seq]
		if l == nil {
			return
		}
		count := map[learnVote]int{}
		var won *msg.PrePrepare
		for _, v := range l.votes {
			count[v]++
			if count[v] >= n.q {
				won = l.pps[v.digest]
			}
		}
		if won == nil {
			// The body may be the pre-prepare we accepted before we left
			// the view: a quorum of commits for its digest decides it too.
			if s := n.slots[seq]; s != nil && s.pp != nil {
				for v, k := range count {
					if k >= n.q && v.digest == s.pp.Digest {
						won = s.pp
					}
				}
			}
		}
		if won == nil {
			return
		}
		s := n.slot(seq)
		s.pp, s.prepared, s.committed = won, true, true
		n.stats.Learned++
		n.deliver()
		if n.lastDecided < seq {
			return
		}
	}
}
