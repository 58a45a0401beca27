package ledger_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/braid-bft/braid/ledger"
	"github.com/braid-bft/braid/ledger/ledgertest"
	"github.com/braid-bft/braid/msg"
)

var fakeV ledgertest.Verifier

func TestHashChaining(t *testing.T) {
	c := ledgertest.NewChain(10, 4, 0)
	var prev msg.Digest
	for _, b := range c.Blocks {
		if b.Prev != prev {
			t.Fatalf("block %d: prev %x, want %x", b.Height, b.Prev, prev)
		}
		prev = b.Hash()
	}
	// Every field is bound by the hash.
	b := c.Blocks[5]
	base := b.Hash()
	mutations := map[string]func(b *ledger.Block){
		"height":  func(b *ledger.Block) { b.Height++ },
		"prev":    func(b *ledger.Block) { b.Prev[0] ^= 1 },
		"round":   func(b *ledger.Block) { b.Round++ },
		"results": func(b *ledger.Block) { b.ResultsDigest[31] ^= 1 },
		"state":   func(b *ledger.Block) { b.StateDigest[3] ^= 1 },
		"op": func(b *ledger.Block) {
			b.Requests[0].Op = append([]byte{}, b.Requests[0].Op...)
			b.Requests[0].Op[0] ^= 1
		},
		"sig": func(b *ledger.Block) {
			b.Requests[0].Sig = append([]byte{}, b.Requests[0].Sig...)
			b.Requests[0].Sig[0] ^= 1
		},
		"client":  func(b *ledger.Block) { b.Requests[0].Client++ },
		"number":  func(b *ledger.Block) { b.Requests[0].Number++ },
		"dropreq": func(b *ledger.Block) { b.Requests = b.Requests[1:] },
		// Moving bytes between op and sig must not collide (length prefixes).
		"shift": func(b *ledger.Block) {
			r := &b.Requests[0]
			r.Op, r.Sig = append(append([]byte{}, r.Op...), r.Sig[0]), append([]byte{}, r.Sig[1:]...)
		},
	}
	for name, mutate := range mutations {
		cp := cloneBlock(b)
		mutate(cp)
		if cp.Hash() == base {
			t.Errorf("%s: hash unchanged", name)
		}
	}
}

func cloneBlock(b *ledger.Block) *ledger.Block {
	cp, err := ledger.DecodeBlock(b.Encode())
	if err != nil {
		panic(err)
	}
	return cp
}

func TestBlockEncodeRoundTrip(t *testing.T) {
	blocks := []*ledger.Block{
		{Height: 1, Round: 1},
		{Height: 1 << 40, Round: 1<<40 + 3, Prev: msg.Digest{1, 2}, ResultsDigest: msg.Digest{3}, StateDigest: msg.Digest{4}},
		{Height: 2, Round: 2, Requests: []msg.Request{{Client: 1, Number: 2}}}, // empty op and sig
		{Height: 3, Round: 3, Requests: []msg.Request{
			ledgertest.Request(7, 1, bytes.Repeat([]byte{0xab}, msg.MaxOpSize)),
			ledgertest.Request(8, 9, []byte("x")),
		}},
	}
	for _, b := range blocks {
		enc := b.Encode()
		got, err := ledger.DecodeBlock(enc)
		if err != nil {
			t.Fatalf("height %d: %v", b.Height, err)
		}
		if !reflect.DeepEqual(got, b) {
			t.Errorf("height %d: round trip\n got %+v\nwant %+v", b.Height, got, b)
		}
		if got.Hash() != b.Hash() {
			t.Errorf("height %d: hash changed in round trip", b.Height)
		}
	}
}

func TestDecodeBlockRejects(t *testing.T) {
	b := ledgertest.NewChain(3, 4, 0).Blocks[2]
	enc := b.Encode()
	for i := 0; i < len(enc); i++ {
		if _, err := ledger.DecodeBlock(enc[:i]); !errors.Is(err, ledger.ErrMalformed) {
			t.Fatalf("truncated to %d of %d bytes: err %v", i, len(enc), err)
		}
	}
	if _, err := ledger.DecodeBlock(append(enc, 0)); !errors.Is(err, ledger.ErrMalformed) {
		t.Errorf("trailing byte accepted: %v", err)
	}
	// A request count far beyond the bytes present is rejected before allocating.
	huge := append([]byte{}, enc[:48]...)
	huge = append(huge, 0x00, 0x3f, 0xff, 0xff)
	if _, err := ledger.DecodeBlock(huge); !errors.Is(err, ledger.ErrMalformed) {
		t.Errorf("huge count accepted: %v", err)
	}
	big := &ledger.Block{Height: 1, Round: 1, Requests: []msg.Request{{Op: make([]byte, msg.MaxOpSize+1)}}}
	if _, err := ledger.DecodeBlock(big.Encode()); !errors.Is(err, ledger.ErrMalformed) {
		t.Errorf("oversized op accepted: %v", err)
	}
	sig := &ledger.Block{Height: 1, Round: 1, Requests: []msg.Request{{Sig: make([]byte, msg.MaxSigSize+1)}}}
	if _, err := ledger.DecodeBlock(sig.Encode()); !errors.Is(err, ledger.ErrMalformed) {
		t.Errorf("oversized signature accepted: %v", err)
	}
}

func TestCertificateEncodeRoundTrip(t *testing.T) {
	c := ledgertest.NewChain(4, 7, 4).Certs[4]
	enc := c.Encode()
	got, err := ledger.DecodeCertificate(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("round trip\n got %+v\nwant %+v", got, c)
	}
	for i := 0; i < len(enc); i++ {
		if _, err := ledger.DecodeCertificate(enc[:i]); !errors.Is(err, ledger.ErrMalformed) {
			t.Fatalf("truncated to %d: %v", i, err)
		}
	}
	if _, err := ledger.DecodeCertificate(append(enc, 1)); !errors.Is(err, ledger.ErrMalformed) {
		t.Errorf("trailing byte accepted: %v", err)
	}
	// A non-checkpoint message in the signature list is rejected.
	bad := append([]byte{}, enc[:72]...)
	m := msg.Marshal(&msg.Prepare{Sig: []byte{1}})
	bad = append(bad, 0, 0, 0, 1, 0, 0, 0, byte(len(m)))
	bad = append(bad, m...)
	if _, err := ledger.DecodeCertificate(bad); !errors.Is(err, ledger.ErrMalformed) {
		t.Errorf("prepare inside certificate accepted: %v", err)
	}
}

func TestCheckpointDigestBindsBoth(t *testing.T) {
	a, b := msg.Digest{1}, msg.Digest{2}
	if ledger.CheckpointDigest(a, b) == ledger.CheckpointDigest(b, a) {
		t.Fatal("checkpoint digest symmetric in block hash and state")
	}
	if ledger.ResultsDigest([][]byte{{1}, {}}) == ledger.ResultsDigest([][]byte{{}, {1}}) {
		t.Fatal("results digest ignores boundaries")
	}
}

func reexec() ledger.VerifyOptions {
	var m ledgertest.Machine
	return ledger.VerifyOptions{Reexecute: m.Execute}
}

func TestVerify(t *testing.T) {
	for _, n := range []int{1, 4, 7, 10} {
		c := ledgertest.NewChain(25, n, 5)
		rep, err := ledger.Verify(c, fakeV, n, reexec())
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		want := ledger.Report{Height: 25, Head: c.Blocks[24].Hash(), Certificates: 5, Certified: 25}
		if rep != want {
			t.Errorf("n=%d: report %+v, want %+v", n, rep, want)
		}
	}
	rep, err := ledger.Verify(&ledgertest.Chain{}, fakeV, 4, ledger.VerifyOptions{})
	if err != nil || rep != (ledger.Report{}) {
		t.Errorf("empty ledger: %+v, %v", rep, err)
	}
	if _, err := ledger.Verify(&ledgertest.Chain{}, fakeV, 0, ledger.VerifyOptions{}); err == nil {
		t.Error("n = 0 accepted")
	}
}

// wantBreak checks err is a *BreakError at height h.
func wantBreak(t *testing.T, err error, h uint64) *ledger.BreakError {
	t.Helper()
	var be *ledger.BreakError
	if !errors.As(err, &be) {
		t.Fatalf("want break at %d, got %v", h, err)
	}
	if be.Height != h {
		t.Fatalf("break at %d (%s), want %d", be.Height, be.Reason, h)
	}
	return be
}

func TestVerifyBreaks(t *testing.T) {
	const n = 4
	cases := []struct {
		name   string
		at     uint64
		mutate func(c *ledgertest.Chain)
	}{
		{"height", 6, func(c *ledgertest.Chain) { c.Blocks[5].Height = 7 }},
		{"round", 6, func(c *ledgertest.Chain) { c.Blocks[5].Round = 9 }},
		{"prev", 6, func(c *ledgertest.Chain) { c.Blocks[5].Prev[0] ^= 1 }},
		{"missing block", 6, func(c *ledgertest.Chain) { c.Blocks[5] = nil }},
		{"client signature", 7, func(c *ledgertest.Chain) { c.Blocks[6].Requests[1].Sig[0] ^= 1 }},
		{"request replaced", 7, func(c *ledgertest.Chain) { c.Blocks[6].Requests[0].Op = []byte("evil") }},
		// An edit to an uncertified block is seen at the next block's link.
		{"results of uncertified block", 7, func(c *ledgertest.Chain) { c.Blocks[5].ResultsDigest[0] ^= 1 }},
		// The same edit to a certified block is seen at the block itself.
		{"results of certified block", 5, func(c *ledgertest.Chain) { c.Blocks[4].ResultsDigest[0] ^= 1 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ledgertest.NewChain(12, n, 5)
			tc.mutate(c)
			_, err := ledger.Verify(c, fakeV, n, ledger.VerifyOptions{})
			be := wantBreak(t, err, tc.at)
			t.Logf("%v", be)
		})
	}
}

func TestVerifyBadCertificate(t *testing.T) {
	const n = 4 // quorum 3
	cases := []struct {
		name   string
		mutate func(c *ledger.Certificate, b *ledger.Block)
	}{
		{"too few signatures", func(c *ledger.Certificate, b *ledger.Block) { c.Signatures = c.Signatures[:2] }},
		{"duplicate signer", func(c *ledger.Certificate, b *ledger.Block) { c.Signatures[2] = c.Signatures[0] }},
		{"duplicate signer padding a short certificate", func(c *ledger.Certificate, b *ledger.Block) {
			c.Signatures = append(c.Signatures[:2], c.Signatures[1])
		}},
		{"wrong checkpoint digest", func(c *ledger.Certificate, b *ledger.Block) {
			c.Signatures[1] = ledgertest.Checkpoint(1, b.Round, ledger.CheckpointDigest(b.Hash(), msg.Digest{9}))
		}},
		{"wrong round", func(c *ledger.Certificate, b *ledger.Block) {
			c.Signatures[1] = ledgertest.Checkpoint(1, b.Round+1, c.Signatures[1].State)
		}},
		{"bad signature", func(c *ledger.Certificate, b *ledger.Block) { c.Signatures[0].Sig[0] ^= 1 }},
		{"signer outside the cluster", func(c *ledger.Certificate, b *ledger.Block) {
			c.Signatures[2] = ledgertest.Checkpoint(n, b.Round, c.Signatures[2].State)
		}},
		{"block hash", func(c *ledger.Certificate, b *ledger.Block) { c.BlockHash[0] ^= 1 }},
		{"state digest differs from block", func(c *ledger.Certificate, b *ledger.Block) {
			// Consistently signed, but for another state than the block's.
			*c = *ledgertest.Certify(&ledger.Block{Height: b.Height, Round: b.Round, Prev: b.Prev, Requests: b.Requests, ResultsDigest: b.ResultsDigest, StateDigest: msg.Digest{7}}, ledgertest.Signers(3))
			c.BlockHash = b.Hash()
		}},
		{"round", func(c *ledger.Certificate, b *ledger.Block) { c.Round++ }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ledgertest.NewChain(12, n, 5)
			tc.mutate(c.Certs[10], c.Blocks[9])
			_, err := ledger.Verify(c, fakeV, n, ledger.VerifyOptions{})
			t.Logf("%v", wantBreak(t, err, 10))
		})
	}
}

func TestVerifyReexecutionMismatch(t *testing.T) {
	c := ledgertest.NewChain(12, 4, 0)
	// A block whose digests are consistently chained but not what executing
	// it gives: rebuild the chain from block 8 on with a wrong state.
	c.Blocks[7].StateDigest[0] ^= 1
	for h := 8; h < len(c.Blocks); h++ {
		c.Blocks[h].Prev = c.Blocks[h-1].Hash()
	}
	if _, err := ledger.Verify(c, fakeV, 4, ledger.VerifyOptions{}); err != nil {
		t.Fatalf("without re-execution the chain is consistent: %v", err)
	}
	_, err := ledger.Verify(c, fakeV, 4, reexec())
	t.Log(wantBreak(t, err, 8))

	c = ledgertest.NewChain(12, 4, 0)
	failing := ledger.VerifyOptions{Reexecute: func(b *ledger.Block) (msg.Digest, msg.Digest, error) {
		if b.Height == 3 {
			return msg.Digest{}, msg.Digest{}, errors.New("boom")
		}
		return b.StateDigest, b.ResultsDigest, nil
	}}
	_, err = ledger.Verify(c, fakeV, 4, failing)
	wantBreak(t, err, 3)
}

func TestExportRoundTrip(t *testing.T) {
	c := ledgertest.NewChain(30, 7, 4)
	var buf bytes.Buffer
	if err := ledger.Export(&buf, c); err != nil {
		t.Fatal(err)
	}
	src, err := ledger.OpenExport(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	want, err := ledger.Verify(c, fakeV, 7, reexec())
	if err != nil {
		t.Fatal(err)
	}
	got, err := ledger.Verify(src, fakeV, 7, reexec())
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("export report %+v, original %+v", got, want)
	}
	var again bytes.Buffer
	if err := ledger.Export(&again, src); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), buf.Bytes()) {
		t.Fatal("re-export differs")
	}
}

func export(t *testing.T, c ledger.Source) []byte {
	var buf bytes.Buffer
	if err := ledger.Export(&buf, c); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestVerifyNamesEditedExportByte flips one byte inside one block of an
// export (uncertified 13, certified 15, the last block 19) and expects the
// break at exactly that height, not at the next block's link.
func TestVerifyNamesEditedExportByte(t *testing.T) {
	c := ledgertest.NewChain(19, 4, 5)
	for _, h := range []uint64{13, 15, 19} {
		data := export(t, c)
		i := bytes.Index(data, ledgertest.Op(h, 0))
		if i < 0 {
			t.Fatalf("op of block %d not found", h)
		}
		data[i+3] ^= 0x20
		src, err := ledger.OpenExport(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		_, err = ledger.Verify(src, fakeV, 4, ledger.VerifyOptions{})
		t.Log(wantBreak(t, err, h))
	}
}

func TestOpenExportRejects(t *testing.T) {
	data := export(t, ledgertest.NewChain(6, 4, 3))
	// Every truncation is an error, never a panic.
	for i := 0; i < len(data); i++ {
		if _, err := ledger.OpenExport(bytes.NewReader(data[:i])); !errors.Is(err, ledger.ErrBadExport) {
			t.Fatalf("truncated to %d of %d: %v", i, len(data), err)
		}
	}
	if _, err := ledger.OpenExport(bytes.NewReader(append(append([]byte{}, data...), 0))); !errors.Is(err, ledger.ErrBadExport) {
		t.Errorf("trailing byte: %v", err)
	}
	bad := append([]byte{}, data...)
	bad[0] = 'X'
	if _, err := ledger.OpenExport(bytes.NewReader(bad)); !errors.Is(err, ledger.ErrBadExport) {
		t.Errorf("bad magic: %v", err)
	}
	bad = append([]byte{}, data...)
	bad[11] = 9
	if _, err := ledger.OpenExport(bytes.NewReader(bad)); !errors.Is(err, ledger.ErrBadExport) {
		t.Errorf("bad version: %v", err)
	}
	// Every single-byte flip gives either an open error or a verify break;
	// none passes verification and none panics.
	for i := 0; i < len(data); i++ {
		bad := append([]byte{}, data...)
		bad[i] ^= 0x01
		src, err := ledger.OpenExport(bytes.NewReader(bad))
		if err != nil {
			continue
		}
		rep, err := ledger.Verify(src, fakeV, 4, ledger.VerifyOptions{})
		if err == nil {
			t.Fatalf("flip at byte %d verified: %+v", i, rep)
		}
	}
}

func FuzzDecodeBlock(f *testing.F) {
	var seeds [][]byte
	for _, b := range ledgertest.NewChain(8, 4, 4).Blocks {
		seeds = append(seeds, b.Encode())
	}
	seeds = append(seeds, []byte{}, make([]byte, 8+32+8+4+64))
	fuzzCanonical(f, ledger.DecodeBlock, seeds...)
}

func FuzzDecodeCertificate(f *testing.F) {
	c := ledgertest.NewChain(8, 4, 4)
	fuzzCanonical(f, ledger.DecodeCertificate, c.Certs[4].Encode(), c.Certs[8].Encode(), []byte{})
}

// fuzzCanonical fuzzes decode from seeds: whatever it accepts must encode
// back to the same bytes, so every block and certificate has exactly one
// encoding.
func fuzzCanonical[T interface{ Encode() []byte }](f *testing.F, decode func([]byte) (T, error), seeds ...[]byte) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		v, err := decode(p)
		if err != nil {
			return
		}
		if !bytes.Equal(v.Encode(), p) {
			t.Fatalf("decoding is not canonical")
		}
	})
}

func FuzzOpenExport(f *testing.F) {
	var buf bytes.Buffer
	if err := ledger.Export(&buf, ledgertest.NewChain(5, 4, 2)); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, p []byte) {
		src, err := ledger.OpenExport(bytes.NewReader(p))
		if err != nil {
			return
		}
		_, _ = ledger.Verify(src, fakeV, 4, ledger.VerifyOptions{})
	})
}
