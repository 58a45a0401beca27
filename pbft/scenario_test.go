package pbft

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/braid-bft/braid/internal/coretest"
	"github.com/braid-bft/braid/msg"
)

// TestScenarios runs the scripts in testdata/: view changes and the normal
// case as readable command sequences with their expected state, in the
// manner of etcd raft's interaction tests. Regenerate the expected output
// after a deliberate change with `go test ./pbft -run TestScenarios -rewrite`
// and review the diff like code. Besides coretest.RunScenarios' tick,
// crash, drop and heal:
//
//	cluster n=4 [request-timeout=T] [view-change-timeout=T]
//	request client=C num=K [to=(all|I,J,...)]   default: the current primary
//	state                                       per replica: view, primary, decided requests
func TestScenarios(t *testing.T) {
	coretest.RunScenarios(t, "testdata", func() coretest.Scenario { return &scenario{} })
}

type scenario struct{ c *cluster }

func (s *scenario) Cluster(t *testing.T, d *datadriven.TestData) *coretest.Net {
	var n int
	d.ScanArgs(t, "n", &n)
	s.c = newCluster(t, n, func(cfg *Config) {
		d.MaybeScanArgs(t, "request-timeout", &cfg.RequestTimeout)
		d.MaybeScanArgs(t, "view-change-timeout", &cfg.ViewChangeTimeout)
	})
	return s.c.Net
}

func (s *scenario) Command(t *testing.T, d *datadriven.TestData) (string, bool) {
	c := s.c
	switch d.Cmd {
	case "request":
		var client, num uint64
		d.ScanArgs(t, "client", &client)
		d.ScanArgs(t, "num", &num)
		r := req(client, num)
		for _, i := range scenarioTargets(t, d, c) {
			if !c.Down[msg.ReplicaID(i)] {
				c.nodes[i].Request(r)
				c.drain(i)
			}
		}
		c.Settle()
		return "", true
	case "state":
		c.checkAgreement()
		return scenarioState(c), true
	}
	return "", false
}

// scenarioTargets: the replicas a request goes to (to=all, to=1,2, or by
// default the primary of the first live replica's view).
func scenarioTargets(t *testing.T, d *datadriven.TestData, c *cluster) []int {
	arg, ok := d.Arg("to")
	if !ok {
		for i, nd := range c.nodes {
			if !c.Down[msg.ReplicaID(i)] {
				return []int{int(nd.Primary())}
			}
		}
		return nil
	}
	if arg.SingleVal(t) == "all" {
		var all []int
		for i := range c.nodes {
			all = append(all, i)
		}
		return all
	}
	var out []int
	for _, v := range arg.Vals {
		var i int
		if _, err := fmt.Sscan(v, &i); err != nil || i < 0 || i >= len(c.nodes) {
			d.Fatalf(t, "to=%s: not a replica", v)
		}
		out = append(out, i)
	}
	return out
}

// scenarioState prints what a reader checks a view change by: each
// replica's view and whether it is changing, its primary, the view changes
// it took part in, and by sequence number the requests it decided and the
// view that decided them (seq:client.number,...@vview).
func scenarioState(c *cluster) string {
	var b strings.Builder
	for i, nd := range c.nodes {
		if c.Down[msg.ReplicaID(i)] {
			fmt.Fprintf(&b, "r%d: down\n", i)
			continue
		}
		view, changing := nd.View()
		st := nd.Stats()
		fmt.Fprintf(&b, "r%d: view %d", i, view)
		if changing {
			b.WriteString(" (changing)")
		}
		fmt.Fprintf(&b, " primary r%d, view changes %d, new views %d, decided", nd.Primary(), st.ViewChanges, st.NewViews)
		for _, dec := range c.decided[i] {
			var reqs []string
			for _, r := range dec.Batch.Requests {
				reqs = append(reqs, fmt.Sprintf("%d.%d", r.Client, r.Number))
			}
			if len(reqs) == 0 {
				reqs = []string{"-"}
			}
			fmt.Fprintf(&b, " %d:%s@v%d", dec.Seq, strings.Join(reqs, ","), dec.View)
		}
		b.WriteString("\n")
	}
	return b.String()
}
