package auth

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"filippo.io/edwards25519"
	"github.com/braid-bft/braid/internal/atomicfile"
)

// Sizes of keys and signatures, in bytes.
const (
	PublicKeySize  = ed25519.PublicKeySize  // 32
	PrivateKeySize = ed25519.PrivateKeySize // 64 (seed || public key)
	SeedSize       = ed25519.SeedSize       // 32
	SignatureSize  = ed25519.SignatureSize  // 64
)

// PublicKey is an Ed25519 public key (32 bytes). It is a byte slice rather
// than an array so that keys arriving off the wire can be carried as-is;
// every function in this package treats a key of the wrong length as
// invalid rather than panicking.
type PublicKey ed25519.PublicKey

// PrivateKey is an Ed25519 private key in crypto/ed25519's 64-byte form
// (seed || public key).
type PrivateKey ed25519.PrivateKey

// GenerateKey returns a new key pair using entropy from rand, or from
// crypto/rand if rand is nil.
func GenerateKey(rand io.Reader) (PublicKey, PrivateKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: generating key: %w", err)
	}
	return PublicKey(pub), PrivateKey(priv), nil
}

// NewKeyFromSeed derives the private key for a 32-byte seed. It returns an
// error (rather than panicking like crypto/ed25519) if seed has the wrong
// length.
func NewKeyFromSeed(seed []byte) (PrivateKey, error) {
	if len(seed) != SeedSize {
		return nil, fmt.Errorf("auth: private key seed is %d bytes, want %d", len(seed), SeedSize)
	}
	return PrivateKey(ed25519.NewKeyFromSeed(seed)), nil
}

// Public returns the public key for priv, or nil if priv has the wrong
// length.
func (priv PrivateKey) Public() PublicKey {
	if len(priv) != PrivateKeySize {
		return nil
	}
	return PublicKey(bytes.Clone(priv[SeedSize:]))
}

// Seed returns a copy of the 32-byte seed priv was derived from, or nil if
// priv has the wrong length.
func (priv PrivateKey) Seed() []byte {
	if len(priv) != PrivateKeySize {
		return nil
	}
	return bytes.Clone(priv[:SeedSize])
}

// String redacts the key so that logging a PrivateKey, or a struct holding
// one, never leaks it.
func (priv PrivateKey) String() string { return "auth.PrivateKey(redacted)" }

// GoString redacts the key for %#v as well.
func (priv PrivateKey) GoString() string { return priv.String() }

// Equal reports whether pub and other are the same byte encoding. Two
// different (non-canonical) encodings of one point are different keys: the
// encoding is hashed into every signature, so it is the identity.
func (pub PublicKey) Equal(other PublicKey) bool { return bytes.Equal(pub, other) }

// String returns the lowercase hex encoding of pub (see MarshalPublicKey).
func (pub PublicKey) String() string { return MarshalPublicKey(pub) }

// MarshalPublicKey returns pub as a lowercase hex string (64 characters for
// a well-formed key). It is the format of public key files and
// configuration.
func MarshalPublicKey(pub PublicKey) string { return hex.EncodeToString(pub) }

// ParsePublicKey parses the hex encoding produced by MarshalPublicKey.
// Surrounding whitespace is ignored and either case of hex digits is
// accepted. The key must be exactly 32 bytes and decode to a curve point;
// non-canonical encodings and small-order points are accepted, because
// ZIP-215 accepts them and a configuration parser must not be stricter
// than the verification rule without saying so.
func ParsePublicKey(s string) (PublicKey, error) {
	s = strings.TrimSpace(s)
	if len(s) != 2*PublicKeySize {
		return nil, fmt.Errorf("auth: public key is %d hex characters, want %d (%d bytes)", len(s), 2*PublicKeySize, PublicKeySize)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("auth: public key is not valid hex: %w", err)
	}
	if _, err := new(edwards25519.Point).SetBytes(b); err != nil {
		return nil, errors.New("auth: public key does not encode a point on the Ed25519 curve")
	}
	return PublicKey(b), nil
}

// maxKeyFileSize bounds how much ReadPrivateKeyFile reads, so that pointing
// it at the wrong (huge) file fails fast instead of exhausting memory.
const maxKeyFileSize = 4096

// WritePrivateKeyFile writes priv's 32-byte seed to path as a hex line,
// with permissions 0600. The write is atomic: the key goes to a temporary
// file in the same directory (created 0600 from the start, so the key is
// never readable by others even briefly) which is then renamed over path,
// and the directory is synced.
func WritePrivateKeyFile(path string, priv PrivateKey) (err error) {
	if len(priv) != PrivateKeySize {
		return fmt.Errorf("auth: private key is %d bytes, want %d", len(priv), PrivateKeySize)
	}
	if err := atomicfile.WriteBytes(path, 0o600, []byte(hex.EncodeToString(priv[:SeedSize])+"\n")); err != nil {
		return fmt.Errorf("auth: writing private key file: %w", err)
	}
	return nil
}

// ReadPrivateKeyFile reads a key written by WritePrivateKeyFile: one hex
// line holding the 32-byte seed. For interoperability it also accepts the
// 128-hex-character (64-byte) crypto/ed25519 form, whose public half must
// match the seed.
func ReadPrivateKeyFile(path string) (PrivateKey, error) {
	data, err := atomicfile.ReadLimited(path, maxKeyFileSize)
	if err != nil {
		return nil, fmt.Errorf("auth: reading private key file: %w", err)
	}
	s := strings.TrimSpace(string(data))
	if len(s) != 2*SeedSize && len(s) != 2*PrivateKeySize {
		return nil, fmt.Errorf("auth: private key file %s holds %d hex characters, want %d (%d-byte seed) or %d (%d-byte key)",
			path, len(s), 2*SeedSize, SeedSize, 2*PrivateKeySize, PrivateKeySize)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("auth: private key file %s is not valid hex: %w", path, err)
	}
	priv := PrivateKey(ed25519.NewKeyFromSeed(b[:SeedSize]))
	if len(b) == PrivateKeySize && !bytes.Equal(b[SeedSize:], priv[SeedSize:]) {
		return nil, fmt.Errorf("auth: private key file %s: public half does not match the seed", path)
	}
	return priv, nil
}
