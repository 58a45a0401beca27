package avl

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/braid-bft/braid/internal/testseed"
)

// check verifies ordering, AVL balance, cached heights and size.
func check[V any](t *testing.T, tr *Tree[V]) {
	t.Helper()
	var count int
	var walk func(n *node[V], lo, hi []byte) int32
	walk = func(n *node[V], lo, hi []byte) int32 {
		if n == nil {
			return 0
		}
		count++
		if lo != nil && bytes.Compare(n.key, lo) <= 0 || hi != nil && bytes.Compare(n.key, hi) >= 0 {
			t.Fatalf("order violated at %q", n.key)
		}
		lh, rh := walk(n.left, lo, n.key), walk(n.right, n.key, hi)
		if d := lh - rh; d > 1 || d < -1 {
			t.Fatalf("unbalanced at %q: %d vs %d", n.key, lh, rh)
		}
		if h := 1 + max(lh, rh); h != n.height {
			t.Fatalf("stale height at %q: %d want %d", n.key, n.height, h)
		}
		return n.height
	}
	walk(tr.root, nil, nil)
	if count != tr.size {
		t.Fatalf("size %d, counted %d", tr.size, count)
	}
}

func TestTreeAgainstModel(t *testing.T) {
	seed := testseed.New(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	var tr Tree[int]
	model := map[string]int{}
	for i := range 20000 {
		k := []byte(fmt.Sprintf("k%04d", rng.IntN(2000)))
		switch rng.IntN(3) {
		case 0, 1:
			old, rep := tr.Set(k, i)
			mo, mok := model[string(k)]
			if rep != mok || (rep && old != mo) {
				t.Fatalf("Set(%q) = %d,%v want %d,%v", k, old, rep, mo, mok)
			}
			model[string(k)] = i
		case 2:
			old, del := tr.Delete(k)
			mo, mok := model[string(k)]
			if del != mok || (del && old != mo) {
				t.Fatalf("Delete(%q) = %d,%v want %d,%v", k, old, del, mo, mok)
			}
			delete(model, string(k))
		}
		if i%997 == 0 {
			check(t, &tr)
		}
	}
	check(t, &tr)
	keys := make([]string, 0, len(model))
	for k := range model {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, start := range []string{"", "k0500", "k05005", "k1999", "z"} {
		var got []string
		tr.Ascend([]byte(start), func(k []byte, v int) bool {
			if v != model[string(k)] {
				t.Fatalf("value mismatch at %q", k)
			}
			got = append(got, string(k))
			return true
		})
		i := sort.SearchStrings(keys, start)
		want := keys[i:]
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("Ascend(%q): got %d keys, want %d", start, len(got), len(want))
		}
	}
}

func TestBuildSorted(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 7, 100, 1023} {
		keys := make([][]byte, n)
		vals := make([]int, n)
		for i := range n {
			keys[i] = []byte(fmt.Sprintf("%06d", i))
			vals[i] = i
		}
		tr := BuildSorted(keys, vals)
		check(t, tr)
		i := 0
		tr.Ascend(nil, func(k []byte, v int) bool {
			if v != i {
				t.Fatalf("n=%d: got %d at position %d", n, v, i)
			}
			i++
			return true
		})
		if i != n {
			t.Fatalf("n=%d: iterated %d", n, i)
		}
	}
}

// contents lists a tree's entries in order.
func contents(tr *Tree[int]) []string {
	var out []string
	tr.Ascend(nil, func(k []byte, v int) bool {
		out = append(out, fmt.Sprintf("%s=%d", k, v))
		return true
	})
	return out
}

func modelContents(m map[string]int) []string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(out)
	return out
}

// Clones are independent: writes to any tree of a family of clones —
// inserts, overwrites and deletes, with every rebalancing case — are seen
// by that tree only, and every tree stays a valid AVL tree.
func TestCloneIsolation(t *testing.T) {
	seed := testseed.New(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	trees := []*Tree[int]{new(Tree[int])}
	models := []map[string]int{{}}
	for i := range 30000 {
		j := rng.IntN(len(trees))
		tr, model := trees[j], models[j]
		if rng.IntN(500) == 0 && len(trees) < 12 {
			c := tr.Clone()
			cm := make(map[string]int, len(model))
			for k, v := range model {
				cm[k] = v
			}
			trees, models = append(trees, c), append(models, cm)
			continue
		}
		k := fmt.Sprintf("k%04d", rng.IntN(1500))
		if rng.IntN(3) == 0 {
			_, had := model[k]
			if _, ok := tr.Delete([]byte(k)); ok != had {
				t.Fatalf("step %d tree %d: delete %s reported %v, model %v", i, j, k, ok, had)
			}
			delete(model, k)
		} else {
			tr.Set([]byte(k), i)
			model[k] = i
		}
	}
	for j, tr := range trees {
		check(t, tr)
		if got, want := contents(tr), modelContents(models[j]); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("tree %d of %d: %d entries differ from its model's %d", j, len(trees), len(got), len(want))
		}
	}
}
