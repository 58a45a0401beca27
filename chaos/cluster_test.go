package chaos

import (
	"testing"

	"github.com/braid-bft/braid/config"
)

// peerOf returns the process p's configuration reaches for replica r: the
// target of the proxy its addr names (-1: a black hole).
func peerOf(t *testing.T, c *cluster, p *proc, r int) int {
	t.Helper()
	cfg, err := config.Load(p.cfgPath)
	if err != nil {
		t.Fatalf("%s's configuration: %v", p.name(), err)
	}
	if got := cfg.ReplicaDataDir(p.id); got != p.dataDir {
		t.Fatalf("%s's data_dir is %s, want its own %s", p.name(), got, p.dataDir)
	}
	addr := cfg.Replicas[r].Addr
	for _, l := range c.nw.links {
		if l.addr() == addr {
			if l.from != p.idx {
				t.Fatalf("%s reaches replica %d through a proxy of process %d", p.name(), r, l.from)
			}
			return l.to
		}
	}
	t.Fatalf("%s reaches replica %d at %s, not through a proxy", p.name(), r, addr)
	return 0
}

// The negative control's layout: each half's correct replicas see that
// half's twins and nothing of the other half; twins see only their half.
func TestLayoutSplitTwins(t *testing.T) {
	c, err := newCluster("braid", t.TempDir(), 4, 4, nil, []int{0, 1}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer c.nw.close()
	if len(c.procs) != 6 {
		t.Fatalf("%d processes, want 6 (two twins each for replicas 0 and 1)", len(c.procs))
	}
	for _, p := range c.procs {
		for r := 0; r < 4; r++ {
			if r == p.id {
				continue
			}
			to := peerOf(t, c, p, r)
			want := c.view(p, 0, r)
			switch {
			case want == nil && to != -1:
				t.Errorf("%s reaches replica %d (process %d); want a black hole", p.name(), r, to)
			case want != nil && (to != want.idx || want.half != p.half):
				t.Errorf("%s (half %d) reaches replica %d at process %d of half %d; want process %d of its own half", p.name(), p.half, r, to, want.half, want.idx)
			}
		}
	}
	// The correct replicas 2 and 3 are in different halves: each is a
	// black hole to the other.
	if c.view(c.procs[4], 0, 3) != nil || c.view(c.procs[5], 0, 2) != nil {
		t.Error("the halves' correct replicas see each other")
	}
}

// One twin within f: every correct replica sees every other correct one
// and one twin; each twin sees only its own half.
func TestLayoutOneTwin(t *testing.T) {
	c, err := newCluster("braid", t.TempDir(), 4, 4, nil, []int{2}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.nw.close()
	for _, p := range c.procs {
		for r := 0; r < 4; r++ {
			if r == p.id {
				continue
			}
			to := peerOf(t, c, p, r)
			if to < 0 {
				if !p.twin {
					t.Errorf("%s cannot reach replica %d", p.name(), r)
				}
				continue
			}
			q := c.procs[to]
			if q.id != r {
				t.Errorf("%s's replica %d is process %s", p.name(), r, q.name())
			}
			if (p.twin || q.twin) && q.half != p.half {
				t.Errorf("%s reaches %s across halves", p.name(), q.name())
			}
		}
	}
}
