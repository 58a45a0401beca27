package chaos

import (
	"testing"

	"github.com/braid-bft/braid/internal/storetest"
	"github.com/braid-bft/braid/ledger/ledgertest"
	"github.com/braid-bft/braid/storage"
)

// executedOnce passes a ledger whose requests are all distinct and reports
// one that executes a request (client, number) twice.
func TestExecutedOnce(t *testing.T) {
	check := func(c *ledgertest.Chain) *Result {
		dir := t.TempDir()
		storetest.Write(t, dir, c)
		st, err := storage.Open(dir, storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		res := &Result{ViolationsByKind: map[string]int{}}
		executedOnce(&proc{id: 0}, st, uint64(len(c.Blocks)), res)
		return res
	}
	chain := ledgertest.NewChain(8, 4, 0)
	want := 0
	for _, b := range chain.Blocks {
		want += len(b.Requests)
	}
	if res := check(chain); res.Violations != 0 || res.ExecutedChecked != want {
		t.Fatalf("distinct requests: %d violations %q, %d checked (want 0 and %d)", res.Violations, res.Details, res.ExecutedChecked, want)
	}
	dup := ledgertest.NewChain(8, 4, 0)
	dup.Blocks[6].Requests = append(dup.Blocks[6].Requests, dup.Blocks[5].Requests[0]) // heights 6 and 7
	res := check(dup)
	if res.ViolationsByKind["executed_twice"] != 1 {
		t.Fatalf("a request executed at heights 6 and 7: violations %v %q, want one executed_twice", res.ViolationsByKind, res.Details)
	}
	t.Log(res.Details[0])
}
