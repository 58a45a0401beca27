package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteReplacesWithPermissions(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := WriteBytes(path, 0o600, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := WriteBytes(path, 0o644, []byte("two")); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != "two" {
		t.Fatalf("contents %q (%v), want %q", got, err, "two")
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, want 0644", st.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("%d entries in the directory, want only the file (no temporary left)", len(entries))
	}
}

// A failed write leaves the old file as it was and no temporary behind.
func TestFailedWriteKeepsTheOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := WriteBytes(path, 0o644, []byte("old")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := Write(path, 0o644, func(w io.Writer) error {
		w.Write([]byte("half"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want the writer's", err)
	}
	got, _ := os.ReadFile(path)
	if string(got) != "old" {
		t.Fatalf("contents after a failed write %q, want %q", got, "old")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("%d entries after a failed write, want 1", len(entries))
	}
}

func TestWriteIntoMissingDirectoryFails(t *testing.T) {
	if err := WriteBytes(filepath.Join(t.TempDir(), "no", "f"), 0o644, nil); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
}

func TestReadLimitedRefusesALargerFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("12345"), 0o600); err != nil {
		t.Fatal(err)
	}
	if data, err := ReadLimited(path, 5); err != nil || string(data) != "12345" {
		t.Fatalf("at the bound: %q, %v", data, err)
	}
	if _, err := ReadLimited(path, 4); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("above the bound: %v, want ErrTooLarge", err)
	}
	if _, err := ReadLimited(filepath.Join(t.TempDir(), "missing"), 4); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v, want ErrNotExist", err)
	}
}
