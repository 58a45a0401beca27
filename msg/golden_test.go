package msg

import (
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/wire.golden from the current encoder")

// The wire format is pinned: every sample message's encoding (length and
// SHA-256) is recorded in testdata/wire.golden. A change to the encoding —
// meant or not — fails here, because replicas of different builds must
// read each other's frames and every signed payload and ledger hash is over
// these bytes. After a deliberate change: go test ./msg -run Golden -update.
func TestWireFormatGolden(t *testing.T) {
	var b strings.Builder
	for _, s := range samples() {
		enc := Marshal(s.m)
		fmt.Fprintf(&b, "%s %d %x\n", s.name, len(enc), sha256.Sum256(enc))
	}
	const path = "testdata/wire.golden"
	if *update {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got := b.String(); got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := 0; i < max(len(gl), len(wl)); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Errorf("encoding changed:\n got %s\nwant %s", g, w)
			}
		}
	}
}
