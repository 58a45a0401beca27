package storage

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// A damaged snapshot file is a corruption error naming it, never a
// different state: flipped payload bits, a truncated file, a file renamed
// to another round, a header that lies about the length.
func TestCorruptSnapshotFiles(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"flipped bit", func(t *testing.T, path string) {
			b, err := os.ReadFile(path)
			must(t, err)
			b[len(b)-1] ^= 1
			must(t, os.WriteFile(path, b, 0o600))
		}},
		{"truncated", func(t *testing.T, path string) { must(t, os.Truncate(path, int64(snapHeaderLen+2))) }},
		{"header only", func(t *testing.T, path string) { must(t, os.Truncate(path, 3)) }},
		{"another round's file", func(t *testing.T, path string) {
			must(t, os.WriteFile(path, encodeSnapFile(4, []byte("snapshot-three")), 0o600))
		}},
		{"length lies", func(t *testing.T, path string) {
			b := encodeSnapFile(3, []byte("snapshot-three"))
			b[len(snapMagic)+8+7]++
			must(t, os.WriteFile(path, b, 0o600))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := mustOpen(t, dir)
			must(t, s.PutSnapshot(3, []byte("snapshot-three")))
			must(t, s.Close())
			tc.damage(t, filepath.Join(dir, snapDir, "00000000000000000003.snap"))
			s = mustOpen(t, dir)
			defer s.Close()
			_, _, err := s.LatestSnapshot()
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("latest snapshot: want a corruption error, got %v", err)
			}
			if _, _, err := s.SnapshotChunk(3, 0, 4); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("snapshot chunk: want a corruption error, got %v", err)
			}
			t.Log(err)
		})
	}
}

// A crash while a snapshot was being written leaves a temporary file; the
// store ignores it, removes it on open, and keeps the snapshots before it.
// Dropping old snapshots gives their space back.
func TestSnapshotFilesLifecycle(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir)
	must(t, s.PutSnapshot(3, []byte("three")))
	must(t, s.PutSnapshot(6, []byte("six")))
	must(t, s.Close())
	stray := filepath.Join(dir, snapDir, "00000000000000000009.snap.123.tmp")
	must(t, os.WriteFile(stray, []byte("half a snapsh"), 0o600))
	s = mustOpen(t, dir)
	defer s.Close()
	if _, err := os.Stat(stray); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale temporary snapshot still there after open: %v", err)
	}
	if r, d, err := s.LatestSnapshot(); err != nil || r != 6 || string(d) != "six" {
		t.Fatalf("latest = %d %q %v, want 6 six", r, d, err)
	}
	must(t, s.TruncateSnapshotsBefore(6))
	entries, err := os.ReadDir(filepath.Join(dir, snapDir))
	must(t, err)
	if len(entries) != 1 || entries[0].Name() != "00000000000000000006.snap" {
		t.Fatalf("after truncating before 6 the directory holds %v", entries)
	}
}

func FuzzDecodeSnapFile(f *testing.F) {
	f.Add(encodeSnapFile(3, []byte("x")))
	f.Add([]byte("BRSN"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodeSnapFile(3, b)
		if err != nil {
			return
		}
		if string(encodeSnapFile(3, p)) != string(b) {
			t.Fatal("a snapshot file that decodes does not re-encode to itself")
		}
	})
}
