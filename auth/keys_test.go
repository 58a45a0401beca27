package auth

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPublicKeyEncoding(t *testing.T) {
	pub, _, _ := GenerateKey(nil)
	s := MarshalPublicKey(pub)
	if len(s) != 64 || s != strings.ToLower(s) {
		t.Fatalf("MarshalPublicKey = %q", s)
	}
	for _, in := range []string{s, strings.ToUpper(s), " " + s + "\n"} {
		got, err := ParsePublicKey(in)
		if err != nil || !got.Equal(pub) {
			t.Errorf("ParsePublicKey(%q) = %x, %v", in, []byte(got), err)
		}
	}
	if pub.String() != s {
		t.Error("String differs from MarshalPublicKey")
	}
	// ZIP-215 accepts small-order and non-canonical keys; so does parsing.
	_, nonCanon := smallOrderEncodings(t)
	if _, err := ParsePublicKey(hex.EncodeToString(nonCanon[0])); err != nil {
		t.Errorf("non-canonical key rejected: %v", err)
	}
	for _, tc := range []struct{ in, wantErr string }{
		{s[:62], "62 hex characters, want 64"},
		{s + "00", "66 hex characters"},
		{"", "0 hex characters"},
		{"zz" + s[2:], "not valid hex"},
		{"02" + strings.Repeat("0", 62), "not encode a point"},
	} {
		if _, err := ParsePublicKey(tc.in); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("ParsePublicKey(%q) error = %v, want mention of %q", tc.in, err, tc.wantErr)
		}
	}
}

func TestPrivateKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "replica.key")
	pub, priv, _ := GenerateKey(nil)
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WritePrivateKeyFile(path, priv); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %v, want 0600", perm)
	}
	got, err := ReadPrivateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, priv) || !got.Public().Equal(pub) {
		t.Fatal("key did not round-trip")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	// The 64-byte crypto/ed25519 form is accepted when consistent.
	full := filepath.Join(dir, "full.key")
	os.WriteFile(full, []byte(hex.EncodeToString(priv)+"\n"), 0o600)
	if got, err := ReadPrivateKeyFile(full); err != nil || !bytes.Equal(got, priv) {
		t.Errorf("64-byte form: %v", err)
	}

	bad := func(name, content, wantErr string) {
		t.Helper()
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		if _, err := ReadPrivateKeyFile(p); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%s: error = %v, want mention of %q", name, err, wantErr)
		}
	}
	seedHex := hex.EncodeToString(priv.Seed())
	bad("short", seedHex[:60], "60 hex characters, want 64")
	bad("long", seedHex+"00", "66 hex characters")
	bad("nothex", "x"+seedHex[1:], "not valid hex")
	bad("mismatch", seedHex+strings.Repeat("00", 32), "public half does not match")
	bad("huge", strings.Repeat("0", 5000), "larger than")
	if _, err := ReadPrivateKeyFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file: no error")
	}
	if err := WritePrivateKeyFile(filepath.Join(dir, "x"), priv[:10]); err == nil || !strings.Contains(err.Error(), "10 bytes, want 64") {
		t.Errorf("short key write: %v", err)
	}
	if err := WritePrivateKeyFile(filepath.Join(dir, "nodir", "x"), priv); err == nil {
		t.Error("write into missing directory: no error")
	}
}

func TestPrivateKeyRedacted(t *testing.T) {
	_, priv, _ := GenerateKey(nil)
	seedHex := hex.EncodeToString(priv.Seed())
	for _, format := range []string{"%v", "%s", "%x", "%#v", "%+v"} {
		out := fmt.Sprintf(format, struct{ K PrivateKey }{priv})
		if strings.Contains(out, seedHex[:16]) || (format != "%x" && !strings.Contains(out, "redacted")) {
			t.Errorf("%s leaks or does not redact: %s", format, out)
		}
	}
}

func TestKeyHelpersBadLength(t *testing.T) {
	if PrivateKey(nil).Public() != nil || PrivateKey(nil).Seed() != nil {
		t.Error("nil key: Public/Seed should be nil")
	}
	if _, err := NewKeyFromSeed(make([]byte, 31)); err == nil || !strings.Contains(err.Error(), "31 bytes, want 32") {
		t.Errorf("NewKeyFromSeed short: %v", err)
	}
}
