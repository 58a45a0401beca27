package auth

import (
	"crypto/sha512"
	"encoding/hex"
	"math/big"
	"math/rand/v2"
	"testing"

	"filippo.io/edwards25519"
)

// order8Hex is the canonical encoding of a point of order 8.
const order8Hex = "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func mustPoint(enc []byte) *edwards25519.Point {
	p, err := new(edwards25519.Point).SetBytes(enc)
	if err != nil {
		panic(err)
	}
	return p
}

func isSmallOrder(p *edwards25519.Point) bool {
	return new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1
}

// fieldP is 2^255 - 19.
var fieldP = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))

// groupL is the prime subgroup order.
var groupL, _ = new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)

func leToInt(b []byte) *big.Int {
	be := make([]byte, len(b))
	for i := range b {
		be[len(b)-1-i] = b[i]
	}
	return new(big.Int).SetBytes(be)
}

func intToLE32(x *big.Int) []byte {
	be := x.FillBytes(make([]byte, 32))
	le := make([]byte, 32)
	for i := range be {
		le[31-i] = be[i]
	}
	return le
}

// torsion returns the 8 points of small order, T8*i for i = 0..7.
func torsion() []*edwards25519.Point {
	t8 := mustPoint(mustHex(order8Hex))
	pts := []*edwards25519.Point{edwards25519.NewIdentityPoint()}
	for i := 1; i < 8; i++ {
		pts = append(pts, new(edwards25519.Point).Add(pts[i-1], t8))
	}
	return pts
}

// smallOrderEncodings returns every 32-byte string that decodes to a point
// of small order: the 8 canonical encodings and the non-canonical ones
// (unreduced y, or x = 0 with the sign bit set).
func smallOrderEncodings(t testing.TB) (canonical, nonCanonical [][]byte) {
	seen := map[string]bool{}
	for _, p := range torsion() {
		enc := p.Bytes()
		canonical = append(canonical, enc)
		seen[string(enc)] = true
	}
	for _, enc := range canonical {
		y := leToInt(enc)
		y.SetBit(y, 255, 0)
		var cands [][]byte
		for _, yy := range []*big.Int{y, new(big.Int).Add(y, fieldP)} {
			if yy.BitLen() > 255 {
				continue
			}
			for _, sign := range []uint{0, 1} {
				c := intToLE32(yy)
				c[31] |= byte(sign << 7)
				cands = append(cands, c)
			}
		}
		for _, c := range cands {
			if seen[string(c)] {
				continue
			}
			p, err := new(edwards25519.Point).SetBytes(c)
			if err != nil || !isSmallOrder(p) {
				continue
			}
			seen[string(c)] = true
			nonCanonical = append(nonCanonical, c)
		}
	}
	if len(canonical) != 8 || len(nonCanonical) != 6 {
		t.Fatalf("found %d canonical and %d non-canonical small-order encodings, want 8 and 6", len(canonical), len(nonCanonical))
	}
	return canonical, nonCanonical
}

// nonCanonicalLargeOrder returns non-canonical encodings (y + p for y < 19)
// of points that are not of small order.
func nonCanonicalLargeOrder() [][]byte {
	var out [][]byte
	for y := int64(0); y < 19; y++ {
		yy := new(big.Int).Add(big.NewInt(y), fieldP)
		for _, sign := range []byte{0, 0x80} {
			c := intToLE32(yy)
			c[31] |= sign
			p, err := new(edwards25519.Point).SetBytes(c)
			if err != nil || isSmallOrder(p) {
				continue
			}
			out = append(out, c)
		}
	}
	return out
}

// rawSigner builds Ed25519 signatures by hand, so that tests can produce
// signatures the standard signer never would.
type rawSigner struct {
	a    *edwards25519.Scalar // secret scalar
	pub  []byte               // canonical encoding of [a]B
	priv PrivateKey
}

func newRawSigner(seed byte) *rawSigner {
	s := make([]byte, SeedSize)
	for i := range s {
		s[i] = seed
	}
	priv, _ := NewKeyFromSeed(s)
	h := sha512.Sum512(s)
	a, _ := new(edwards25519.Scalar).SetBytesWithClamping(h[:32])
	return &rawSigner{a: a, pub: new(edwards25519.Point).ScalarBaseMult(a).Bytes(), priv: priv}
}

func randScalar(rng *rand.Rand) *edwards25519.Scalar {
	var b [64]byte
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	s, _ := new(edwards25519.Scalar).SetUniformBytes(b[:])
	return s
}

// forge returns Renc || s with s = r + k*a, k = H(Renc || Aenc || m), where
// m is the full signed message (context-prefixed). The result satisfies the
// cofactored equation iff [8]decode(Renc) = [8][r]B and
// [8]decode(Aenc) = [8][a]B.
func forge(a *edwards25519.Scalar, aEnc []byte, m []byte, r *edwards25519.Scalar, rEnc []byte) []byte {
	h := sha512.New()
	h.Write(rEnc)
	h.Write(aEnc)
	h.Write(m)
	k, _ := new(edwards25519.Scalar).SetUniformBytes(h.Sum(nil))
	s := new(edwards25519.Scalar).MultiplyAdd(k, a, r)
	return append(append([]byte{}, rEnc...), s.Bytes()...)
}

func signed(context string, msg []byte) []byte {
	m, ok := signedMessage(context, msg)
	if !ok {
		panic("bad context")
	}
	return m
}

// addL returns the signature with s replaced by s + L (same value mod L,
// non-canonical encoding), wrapping mod 2^256 for s values too large for
// that (which are non-canonical already).
func addL(sig []byte) []byte {
	if len(sig) < 32 {
		return sig
	}
	s := new(big.Int).Add(leToInt(sig[32:]), groupL)
	s.Mod(s, new(big.Int).Lsh(big.NewInt(1), 256))
	out := append([]byte{}, sig[:32]...)
	return append(out, intToLE32(s)...)
}

func flip(b []byte, bit int) []byte {
	out := append([]byte{}, b...)
	out[bit/8] ^= 1 << (bit % 8)
	return out
}
