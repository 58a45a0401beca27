package ledger_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/braid-bft/braid/ledger"
	"github.com/braid-bft/braid/msg"
)

// A block records how each request was ordered; the encoding binds it (so
// the hash does) and decoding rejects an unknown outcome.
func TestBlockOrderings(t *testing.T) {
	b := &ledger.Block{Height: 1, Round: 1,
		Requests:  []msg.Request{{Client: 1, Number: 1, Op: []byte("a")}, {Client: 2, Number: 9, Op: []byte("b")}},
		Orderings: []ledger.Ordering{{Instance: 0, Outcome: msg.Executed}, {Instance: 3, Outcome: msg.Moved}}}
	got, err := ledger.DecodeBlock(b.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Orderings, b.Orderings) || got.Hash() != b.Hash() {
		t.Fatalf("orderings round trip: %+v, want %+v", got.Orderings, b.Orderings)
	}
	other := *b
	other.Orderings = []ledger.Ordering{{}, {Instance: 3, Outcome: msg.NotMoved}}
	if other.Hash() == b.Hash() {
		t.Fatal("the block hash does not bind the outcome")
	}
	// Nil orderings mean all {0, Executed}, and decode back to nil.
	plain := &ledger.Block{Height: 1, Round: 1, Requests: b.Requests}
	if got, err := ledger.DecodeBlock(plain.Encode()); err != nil || got.Orderings != nil {
		t.Fatalf("plain block decoded with orderings %+v, %v", got.Orderings, err)
	}
	if plain.Ordering(1) != (ledger.Ordering{}) || b.Ordering(1) != b.Orderings[1] {
		t.Fatal("Ordering accessor")
	}
	enc := b.Encode()
	// The last request's outcome byte sits right before the two digests.
	enc[len(enc)-64-1] = 200
	if _, err := ledger.DecodeBlock(enc); !errors.Is(err, ledger.ErrMalformed) {
		t.Fatalf("unknown outcome accepted: %v", err)
	}
}
