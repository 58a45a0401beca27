package ledger_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/braid-bft/braid/internal/storetest"
	"github.com/braid-bft/braid/ledger"
	"github.com/braid-bft/braid/ledger/ledgertest"
	"github.com/braid-bft/braid/storage"
)

// TestVerifyNamesCorruptBlockOnDisk writes a ledger to a bbolt store, closes
// it, flips ONE byte of one block inside the database file, reopens it and
// expects Verify to name exactly that block's height.
func TestVerifyNamesCorruptBlockOnDisk(t *testing.T) {
	const n = 4
	c := ledgertest.NewChain(24, n, 5)
	for _, h := range []uint64{1, 11, 15, 23} { // first, uncertified, certified, last
		dir := t.TempDir()
		storetest.Write(t, dir, c)
		broke := storetest.FlipEachCopy(t, filepath.Join(dir, storage.FileName), ledgertest.Op(h, 0), func() bool {
			s, err := storage.Open(dir, storage.Options{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = ledger.Verify(s, fakeV, n, ledger.VerifyOptions{})
			s.Close()
			if err == nil {
				return false // a stale copy
			}
			be := wantBreak(t, err, h)
			if !errors.Is(be, storage.ErrCorrupt) {
				t.Errorf("break does not say the stored block is corrupt: %v", be.Err)
			}
			t.Log(be)
			return true
		})
		if broke != 1 {
			t.Fatalf("block %d: %d flipped copies broke the ledger, want exactly 1", h, broke)
		}
	}
}
