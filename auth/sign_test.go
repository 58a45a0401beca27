package auth

import (
	"bytes"
	"crypto/ed25519"
	"math/rand/v2"
	"strings"
	"testing"

	"filippo.io/edwards25519"
)

const testCtx = "braid/request/v1"

func TestSignVerifyRoundTrip(t *testing.T) {
	pub, priv, err := GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range [][]byte{nil, {}, []byte("hello"), bytes.Repeat([]byte{0xab}, 10000)} {
		sig := Sign(priv, testCtx, msg)
		if len(sig) != SignatureSize {
			t.Fatalf("signature length %d", len(sig))
		}
		if !Verify(pub, testCtx, msg, sig) {
			t.Errorf("valid signature over %d-byte message rejected", len(msg))
		}
		// An honest signature is also a plain Ed25519 signature over the
		// prefixed message, so other tooling can check it.
		if !ed25519.Verify(ed25519.PublicKey(pub), signed(testCtx, msg), sig) {
			t.Errorf("crypto/ed25519 rejects honest signature")
		}
	}
}

// rejectCase is a verification input that must be refused.
type rejectCase struct {
	name string
	pub  PublicKey
	ctx  string
	msg  []byte
	sig  []byte
}

func TestVerifyRejects(t *testing.T) {
	pub, priv, _ := GenerateKey(nil)
	otherPub, _, _ := GenerateKey(nil)
	msg := []byte("transfer 10 to bob")
	sig := Sign(priv, testCtx, msg)
	tests := []rejectCase{
		{"wrong context", pub, "braid/reply/v1", msg, sig},
		{"context prefix shift", pub, testCtx[:len(testCtx)-1], append([]byte{testCtx[len(testCtx)-1]}, msg...), sig},
		{"empty context", pub, "", msg, sig},
		{"overlong context", pub, strings.Repeat("x", MaxContextLen+1), msg, sig},
		{"wrong key", otherPub, testCtx, msg, sig},
		{"wrong message", pub, testCtx, []byte("transfer 99 to bob"), sig},
		{"truncated message", pub, testCtx, msg[:len(msg)-1], sig},
	}
	for bit := 0; bit < 8*SignatureSize; bit += 37 {
		tests = append(tests, rejectCase{"flipped sig bit", pub, testCtx, msg, flip(sig, bit)})
	}
	for bit := 0; bit < 8*PublicKeySize; bit += 29 {
		tests = append(tests, rejectCase{"flipped key bit", PublicKey(flip(pub, bit)), testCtx, msg, sig})
	}
	for _, tc := range tests {
		if Verify(tc.pub, tc.ctx, tc.msg, tc.sig) {
			t.Errorf("%s: accepted", tc.name)
		}
		if got := VerifyBatch([]BatchItem{{tc.pub, tc.ctx, tc.msg, tc.sig}}); got[0] {
			t.Errorf("%s: accepted by batch", tc.name)
		}
	}
}

func TestSignBadInput(t *testing.T) {
	_, priv, _ := GenerateKey(nil)
	if s := Sign(priv, "", []byte("m")); s != nil {
		t.Error("Sign with empty context returned a signature")
	}
	if s := Sign(priv, strings.Repeat("c", MaxContextLen+1), []byte("m")); s != nil {
		t.Error("Sign with overlong context returned a signature")
	}
	if s := Sign(priv, strings.Repeat("c", MaxContextLen), []byte("m")); !Verify(priv.Public(), strings.Repeat("c", MaxContextLen), []byte("m"), s) {
		t.Error("maximum-length context does not round-trip")
	}
	for _, p := range []PrivateKey{nil, priv[:32], append(bytes.Clone(priv), 0)} {
		if s := Sign(p, testCtx, []byte("m")); s != nil {
			t.Errorf("Sign with %d-byte key returned a signature", len(p))
		}
	}
}

// edgeCase is one input whose ZIP-215 verdict is known.
type edgeCase struct {
	name string
	item BatchItem
	want bool
	// stdlibRejects marks valid-under-ZIP-215 cases that crypto/ed25519
	// always rejects: the disagreement that motivates ZIP-215.
	stdlibRejects bool
}

// edgeCases builds the table of edge-case signatures, constructed by hand
// with filippo.io/edwards25519.
func edgeCases(t testing.TB) []edgeCase {
	const seed1, seed2 = 1, 2
	t.Logf("edge-case table built with PCG seed (%d, %d)", seed1, seed2)
	rng := rand.New(rand.NewPCG(seed1, seed2))
	signer := newRawSigner(7)
	pub := PublicKey(signer.pub)
	msg := []byte("edge case message")
	m := signed(testCtx, msg)
	honest := Sign(signer.priv, testCtx, msg)
	canon, nonCanon := smallOrderEncodings(t)
	large := nonCanonicalLargeOrder()
	if len(large) == 0 {
		t.Fatal("no non-canonical encodings of large-order points found")
	}
	t8 := mustPoint(mustHex(order8Hex))
	B := edwards25519.NewGeneratorPoint()
	zero := edwards25519.NewScalar()
	item := func(key []byte, sig []byte) BatchItem {
		return BatchItem{Key: PublicKey(key), Context: testCtx, Msg: msg, Sig: sig}
	}
	var cs []edgeCase
	add := func(name string, it BatchItem, want, stdlibRejects bool) {
		cs = append(cs, edgeCase{name, it, want, stdlibRejects})
	}

	add("honest", item(pub, honest), true, false)

	// (1) Non-canonical scalars: s >= L is rejected even though s mod L
	// would verify.
	add("s+L (non-canonical s)", item(pub, addL(honest)), false, false)
	sHigh := bytes.Clone(honest)
	sHigh[63] |= 0x80
	add("s with bit 255 set", item(pub, sHigh), false, false)
	sL := append(bytes.Clone(honest[:32]), intToLE32(groupL)...)
	add("s = L", item(pub, sL), false, false)
	sMax := append(bytes.Clone(honest[:32]), bytes.Repeat([]byte{0xff}, 32)...)
	add("s = 2^256-1", item(pub, sMax), false, false)

	// (2) Torsion components.
	for i, T := range torsion()[1:] {
		r := randScalar(rng)
		R := new(edwards25519.Point).ScalarBaseMult(r)
		Rt := new(edwards25519.Point).Add(R, T).Bytes()
		add("R + torsion "+string(rune('1'+i)), item(pub, forge(signer.a, pub, m, r, Rt)), true, true)

		At := new(edwards25519.Point).Add(new(edwards25519.Point).ScalarBaseMult(signer.a), T).Bytes()
		add("A + torsion "+string(rune('1'+i)), item(At, forge(signer.a, At, m, r, R.Bytes())), true, false)

		// Both at once, and the torsion on R used with the wrong key.
		add("A + torsion and R + torsion", item(At, forge(signer.a, At, m, r, Rt)), true, false)
		add("R + torsion, wrong key", item(PublicKey(newRawSigner(8).pub), forge(signer.a, pub, m, r, Rt)), false, false)
	}
	// R + T8 with s forged for plain R must fail: the torsion must be in R
	// as hashed.
	{
		r := randScalar(rng)
		R := new(edwards25519.Point).ScalarBaseMult(r)
		sig := forge(signer.a, pub, m, r, R.Bytes())
		copy(sig[:32], new(edwards25519.Point).Add(R, t8).Bytes())
		add("R swapped for R + T8 after signing", item(pub, sig), false, false)
	}

	// Small-order public keys (canonical and not): any (R, s) with
	// [8]R = [8][s]B verifies, for every message.
	for i, enc := range append(append([][]byte{}, canon...), nonCanon...) {
		r := randScalar(rng)
		R := new(edwards25519.Point).ScalarBaseMult(r).Bytes()
		add("small-order A #"+itoa(i), item(enc, forge(zero, enc, m, r, R)), true, false)
		// ZIP-215's own vectors: small-order A and R, s = 0.
		for j, renc := range append(append([][]byte{}, canon...), nonCanon...) {
			if (i+j)%5 != 0 { // a sample; TestZIP215Vectors covers all 196
				continue
			}
			add("small-order A #"+itoa(i)+" R #"+itoa(j)+" s=0", item(enc, append(bytes.Clone(renc), make([]byte, 32)...)), true, false)
		}
	}

	// (3) Non-canonical encodings of R (small order, so s = k*a works).
	for i, renc := range nonCanon {
		add("non-canonical small-order R #"+itoa(i), item(pub, forge(signer.a, pub, m, zero, renc)), true, true)
	}
	// Non-canonical encodings of large-order points decode (ZIP-215 does
	// not reject them) but nobody knows their discrete log.
	for i, enc := range large {
		add("non-canonical large-order A #"+itoa(i), item(enc, honest), false, false)
		add("non-canonical large-order R #"+itoa(i), item(pub, append(bytes.Clone(enc), honest[32:]...)), false, false)
	}

	// Encodings that are not points at all.
	notOnCurve := mustHex("0200000000000000000000000000000000000000000000000000000000000000")
	if _, err := new(edwards25519.Point).SetBytes(notOnCurve); err == nil {
		t.Fatal("test encoding unexpectedly on the curve")
	}
	add("A not on curve", item(notOnCurve, honest), false, false)
	add("R not on curve", item(pub, append(bytes.Clone(notOnCurve), honest[32:]...)), false, false)

	// (4) Lengths.
	add("nil sig", item(pub, nil), false, false)
	add("truncated sig", item(pub, honest[:63]), false, false)
	add("oversized sig", item(pub, append(bytes.Clone(honest), 0)), false, false)
	add("nil key", item(nil, honest), false, false)
	add("truncated key", item(pub[:31], honest), false, false)
	add("oversized key", item(append(bytes.Clone(pub), 0), honest), false, false)
	add("sig and key swapped", item(honest, pub), false, false)

	// B itself as a key, with an honest-looking forged signature.
	add("generator as key, wrong s", item(B.Bytes(), honest), false, false)
	return cs
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

// TestEdgeCases checks each edge case against its known ZIP-215 verdict,
// singly, as a batch of one, and inside batches of honest signatures (so
// the batch equation and bisection both see it).
func TestEdgeCases(t *testing.T) {
	cases := edgeCases(t)
	fillers := honestItems(t, 9, 1)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			it := tc.item
			if got := Verify(it.Key, it.Context, it.Msg, it.Sig); got != tc.want {
				t.Fatalf("Verify = %v, want %v", got, tc.want)
			}
			if got := VerifyBatch([]BatchItem{it}); got[0] != tc.want {
				t.Fatalf("VerifyBatch of one = %v, want %v", got[0], tc.want)
			}
			for _, pos := range []int{0, 4, 9} {
				items := append(append(append([]BatchItem{}, fillers[:pos]...), it), fillers[pos:]...)
				got := VerifyBatch(items)
				for i, ok := range got {
					want := true
					if i == pos {
						want = tc.want
					}
					if ok != want {
						t.Fatalf("in batch at %d: item %d = %v, want %v", pos, i, ok, want)
					}
				}
			}
			if tc.stdlibRejects && len(it.Key) == PublicKeySize && ed25519.Verify(ed25519.PublicKey(it.Key), signed(it.Context, it.Msg), it.Sig) {
				t.Errorf("crypto/ed25519 accepts; this case does not exercise the rule difference")
			}
		})
	}
}

// TestEdgeCasesValidBatchPasses puts every ZIP-215-valid edge case in one
// batch: the batch equation itself must accept them (no fallback), proving
// the batch path is cofactored like the single path, not merely rescued by
// single verification.
func TestEdgeCasesValidBatchPasses(t *testing.T) {
	var items []BatchItem
	for _, tc := range edgeCases(t) {
		if tc.want {
			items = append(items, tc.item)
		}
	}
	got, st := VerifyBatchStats(items)
	for i, ok := range got {
		if !ok {
			t.Errorf("item %d rejected", i)
		}
	}
	if st.Fallbacks != 0 || st.BatchChecks != 1 {
		t.Errorf("stats %+v: want one passing batch check and no fallback", st)
	}
}

// TestZIP215Vectors checks all 196 ZIP-215 vectors (every small-order A
// with every small-order R, s = 0) are accepted, singly and in one batch.
func TestZIP215Vectors(t *testing.T) {
	canon, nonCanon := smallOrderEncodings(t)
	all := append(canon, nonCanon...)
	var items []BatchItem
	for _, a := range all {
		for _, r := range all {
			sig := append(bytes.Clone(r), make([]byte, 32)...)
			items = append(items, BatchItem{Key: PublicKey(a), Context: "Zcash", Msg: []byte("Zcash"), Sig: sig})
			if !Verify(PublicKey(a), "Zcash", []byte("Zcash"), sig) {
				t.Errorf("vector A=%x R=%x rejected", a, r)
			}
		}
	}
	if len(items) != 196 {
		t.Fatalf("%d vectors, want 196", len(items))
	}
	got, st := VerifyBatchStats(items)
	for i, ok := range got {
		if !ok {
			t.Errorf("batch rejected vector %d", i)
		}
	}
	if st.Fallbacks != 0 {
		t.Errorf("batch equation failed on ZIP-215 vectors: %+v", st)
	}
}
