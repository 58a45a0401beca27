package coretest

import (
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/braid-bft/braid/msg"
)

// Scenario is one harness's side of a datadriven script: it builds the
// cluster for the script's "cluster" command and runs the commands that are
// its own. The network commands every harness shares are run here.
type Scenario interface {
	// Cluster builds a fresh cluster from the command's arguments and
	// returns its network.
	Cluster(t *testing.T, d *datadriven.TestData) *Net
	// Command runs a command of the harness's own; ok is false for one it
	// does not know.
	Command(t *testing.T, d *datadriven.TestData) (out string, ok bool)
}

// RunScenarios runs every script under dir (see datadriven; -rewrite
// regenerates the expected output). Shared commands:
//
//	tick [n=K]                                  K ticks, delivering everything between them
//	crash id=I                                  nothing to or from I any more
//	drop kind=(pre-prepare|prepare|commit|...)  lose every message of the kind from now on
//	heal                                        stop dropping
//
// A fresh Scenario is made per script by newScenario.
func RunScenarios(t *testing.T, dir string, newScenario func() Scenario) {
	datadriven.Walk(t, dir, func(t *testing.T, path string) {
		s := newScenario()
		var net *Net
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			if d.Cmd == "cluster" {
				net = s.Cluster(t, d)
				return ""
			}
			if net == nil {
				d.Fatalf(t, "%s before cluster", d.Cmd)
			}
			switch d.Cmd {
			case "tick":
				k := 1
				d.MaybeScanArgs(t, "n", &k)
				net.Tick(k)
				return ""
			case "crash":
				var id int
				d.ScanArgs(t, "id", &id)
				net.Down[msg.ReplicaID(id)] = true
				return ""
			case "drop":
				var kind string
				d.ScanArgs(t, "kind", &kind)
				if !isKind(kind) {
					d.Fatalf(t, "drop kind=%s: no such message kind", kind) // a typo would drop nothing
				}
				net.Filter = func(e Envelope) []Envelope {
					if e.Msg.Kind().String() == kind {
						return nil
					}
					return []Envelope{e}
				}
				return ""
			case "heal":
				net.Filter = nil
				return ""
			}
			out, ok := s.Command(t, d)
			if !ok {
				d.Fatalf(t, "unknown command %q", d.Cmd)
			}
			return out
		})
	})
}

// isKind reports whether name is a message kind's name (msg.Kind.String).
func isKind(name string) bool {
	for k := msg.Kind(1); k.String() != "unknown"; k++ {
		if k.String() == name {
			return true
		}
	}
	return false
}
