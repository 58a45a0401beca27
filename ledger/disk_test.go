package ledger_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

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
		s, err := storage.Open(dir, storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range c.Blocks {
			if err := s.PutBlock(b); err != nil {
				t.Fatal(err)
			}
			if cert := c.Certs[b.Height]; cert != nil {
				if err := s.PutCertificate(cert); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}

		// bbolt is copy-on-write, so the file may also hold stale copies of
		// the block in freed pages. Flip one byte in each copy in turn (on a
		// fresh file each time): a stale copy changes nothing, the live one
		// must break the ledger at exactly h.
		path := filepath.Join(dir, storage.FileName)
		orig, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		op := ledgertest.Op(h, 0)
		broke := 0
		for off := 0; ; {
			i := bytes.Index(orig[off:], op)
			if i < 0 {
				break
			}
			i += off
			off = i + 1
			data := append([]byte{}, orig...)
			data[i+len(op)-1] ^= 0x01
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := storage.Open(dir, storage.Options{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = ledger.Verify(s, fakeV, n, ledger.VerifyOptions{})
			s.Close()
			if err == nil {
				continue // a stale copy
			}
			be := wantBreak(t, err, h)
			if !errors.Is(be, storage.ErrCorrupt) {
				t.Errorf("break does not say the stored block is corrupt: %v", be.Err)
			}
			t.Log(be)
			broke++
		}
		if broke != 1 {
			t.Fatalf("block %d: %d flipped copies broke the ledger, want exactly 1", h, broke)
		}
	}
}
