package rcc

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/braid-bft/braid/internal/coretest"
	"github.com/braid-bft/braid/msg"
)

// TestScenarios runs the scripts in testdata/: instance failures and
// instance changes as readable command sequences with their expected
// state. Regenerate after a deliberate change with
// `go test ./rcc -run TestScenarios -rewrite` and review the diff like code.
// Besides coretest.RunScenarios' tick, crash, drop and heal:
//
//	cluster n=4 m=4
//	request client=C num=K [op=S] [broadcast]  to the client's instance's primary, or to all
//	change client=C num=K to=I [op=S]          an instance change to instance I, broadcast
//	state                                      per replica: round, primaries, failures, executed entries
func TestScenarios(t *testing.T) {
	coretest.RunScenarios(t, "testdata", func() coretest.Scenario { return &scenario{} })
}

type scenario struct{ c *cluster }

func (s *scenario) Cluster(t *testing.T, d *datadriven.TestData) *coretest.Net {
	var n, m int
	d.ScanArgs(t, "n", &n)
	d.ScanArgs(t, "m", &m)
	s.c = newCluster(t, n, m)
	return s.c.Net
}

func (s *scenario) Command(t *testing.T, d *datadriven.TestData) (string, bool) {
	c := s.c
	switch d.Cmd {
	case "request", "change":
		var client msg.ClientID
		var num uint64
		d.ScanArgs(t, "client", &client)
		d.ScanArgs(t, "num", &num)
		op := fmt.Sprintf("op-%d-%d", client, num)
		d.MaybeScanArgs(t, "op", &op)
		r := msg.Request{Client: client, Number: num, Op: []byte(op)}
		if d.Cmd == "change" {
			var to uint32
			d.ScanArgs(t, "to", &to)
			r.Op = msg.InstanceChangeOp(to, r.Op)
		}
		c.submit(r, d.Cmd == "change" || d.HasArg("broadcast"))
		c.Settle()
		return "", true
	case "state":
		c.checkAgreement()
		return scenarioState(c), true
	}
	return "", false
}

// scenarioState prints, per live replica, the last executed round, each
// instance's primary, the failures it executed, the duplicates it dropped,
// and the entries it executed
// as round:client.number(instance,outcome).
func scenarioState(c *cluster) string {
	var b strings.Builder
	for i, nd := range c.nodes {
		if c.Down[msg.ReplicaID(i)] {
			fmt.Fprintf(&b, "r%d: down\n", i)
			continue
		}
		var prim []string
		for k := 0; k < nd.cfg.M; k++ {
			prim = append(prim, fmt.Sprintf("r%d", nd.Instance(k).Primary()))
		}
		st := nd.Stats()
		fmt.Fprintf(&b, "r%d: round %d, primaries %s, failures %d, duplicates %d, executed", i, nd.executed, strings.Join(prim, " "), st.Failures, st.Duplicates)
		for _, r := range c.rounds[i] {
			for _, e := range r.Entries {
				fmt.Fprintf(&b, " %d:%d.%d(%d,%s)", r.Round, e.Request.Client, e.Request.Number, e.Instance, e.Outcome)
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}
