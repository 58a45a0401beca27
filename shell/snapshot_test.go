package shell

import (
	"bytes"
	"testing"

	"github.com/braid-bft/braid/msg"
)

func TestSnapshotRoundTrip(t *testing.T) {
	table := executed{
		3:    {Client: 3, Number: 7, View: 2, Outcome: msg.Moved, Instance: 1, Result: []byte("ok"), From: 1, Primary: msg.NoReplica},
		1000: {Client: 1000, Number: 1, Result: nil, From: 1, Primary: msg.NoReplica},
	}
	enc := encodeSnapshot([]byte("app-state"), table)
	app, got, err := decodeSnapshot(enc, 1)
	if err != nil {
		t.Fatal(err)
	}
	if string(app) != "app-state" || len(got) != 2 {
		t.Fatalf("decoded app %q, %d clients", app, len(got))
	}
	for c, want := range table {
		g := got[c]
		if g == nil || g.Number != want.Number || g.View != want.View || g.Outcome != want.Outcome ||
			g.Instance != want.Instance || !bytes.Equal(g.Result, want.Result) {
			t.Fatalf("client %d: %+v, want %+v", c, g, want)
		}
	}
	for i := range enc { // every truncation is an error, never a panic
		if _, _, err := decodeSnapshot(enc[:i], 1); err == nil {
			t.Fatalf("truncated snapshot of %d bytes accepted", i)
		}
	}
}

func FuzzDecodeSnapshot(f *testing.F) {
	f.Add(encodeSnapshot([]byte("x"), executed{5: {Client: 5, Number: 2, Result: []byte("r")}}))
	f.Add(encodeSnapshot(nil, nil))
	f.Add([]byte("braid/replica-snapshot/v1\xff\xff\xff\xff\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, p []byte) {
		app, table, err := decodeSnapshot(p, 0)
		if err != nil {
			return
		}
		if re := encodeSnapshot(app, table); !bytes.Equal(re, p) {
			t.Fatalf("decoded snapshot does not re-encode to its input")
		}
	})
}
