// Package storetest puts test ledgers (ledgertest chains) in on-disk
// stores and damages them, for the tests that check a corrupt stored block
// is caught and named: ledger's own, and those of `braid ledger verify`.
//
// It is a package of its own, not part of ledgertest, because it needs
// storage, and storage's tests use ledgertest.
package storetest

import (
	"bytes"
	"os"
	"testing"

	"github.com/braid-bft/braid/ledger/ledgertest"
	"github.com/braid-bft/braid/storage"
)

// Write stores c's blocks and certificates in a new store in dir and
// closes it, so that the next storage.Open reads them from the file.
func Write(t testing.TB, dir string, c *ledgertest.Chain) {
	t.Helper()
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
}

// FlipEachCopy damages a record in the store file at path, one stored
// copy at a time, and returns how many of the damaged files broke said
// were broken.
//
// bbolt is copy-on-write, so besides the live copy of a record the file
// may hold stale copies in freed pages, and a test cannot tell which copy
// is live. So every occurrence of needle is tried in turn: its last byte
// is flipped in a fresh copy of the file's original contents, written
// over path, and broke is asked whether the damage was noticed. A stale
// copy changes nothing; the live one must break the ledger, so a test
// wants exactly 1. The file is left holding the last flip.
func FlipEachCopy(t testing.TB, path string, needle []byte, broke func() bool) int {
	t.Helper()
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	broken := 0
	for off := 0; ; {
		i := bytes.Index(orig[off:], needle)
		if i < 0 {
			return broken
		}
		i += off
		off = i + 1
		data := bytes.Clone(orig)
		data[i+len(needle)-1] ^= 0x01
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if broke() {
			broken++
		}
	}
}
