package ledger

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Export format, version 1. Everything big-endian.
//
//	header: magic "BRAIDLGR" | version u32 | height u64
//	frames: kind u8 | height u64 | len u32 | payload | crc32c u32
//	end:    a frame of kind frameEnd, height = header height, len 0
//
// kind 1 is a block (payload Block.Encode), kind 2 the certificate of the
// block just before it (payload Certificate.Encode). Blocks come in height
// order 1..height; nothing may follow the end frame. The CRC covers kind,
// height, len and payload: it localises accidental damage to one height.
// It is not a security measure — the hash chain and certificates are.
const (
	exportMagic   = "BRAIDLGR"
	exportVersion = 1

	frameBlock = 1
	frameCert  = 2
	frameEnd   = 0xff
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Export writes every block and certificate of src, in height order, as a
// self-contained file that OpenExport reads and Verify checks.
func Export(w io.Writer, src Source) error {
	height, err := src.Height()
	if err != nil {
		return fmt.Errorf("ledger export: reading height: %w", err)
	}
	bw := bufio.NewWriter(w)
	hdr := append([]byte(exportMagic), 0, 0, 0, exportVersion)
	hdr = binary.BigEndian.AppendUint64(hdr, height)
	if _, err := bw.Write(hdr); err != nil {
		return fmt.Errorf("ledger export: %w", err)
	}
	for h := uint64(1); h <= height; h++ {
		b, err := src.Block(h)
		if err != nil {
			return fmt.Errorf("ledger export: block %d: %w", h, err)
		}
		if err := writeFrame(bw, frameBlock, h, b.Encode()); err != nil {
			return fmt.Errorf("ledger export: block %d: %w", h, err)
		}
		c, err := src.Certificate(h)
		if err != nil {
			return fmt.Errorf("ledger export: certificate %d: %w", h, err)
		}
		if c != nil {
			if err := writeFrame(bw, frameCert, h, c.Encode()); err != nil {
				return fmt.Errorf("ledger export: certificate %d: %w", h, err)
			}
		}
	}
	if err := writeFrame(bw, frameEnd, height, nil); err != nil {
		return fmt.Errorf("ledger export: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("ledger export: %w", err)
	}
	return nil
}

func frameHeader(kind byte, h uint64, n int) []byte {
	p := make([]byte, 0, 13)
	p = append(p, kind)
	p = binary.BigEndian.AppendUint64(p, h)
	return binary.BigEndian.AppendUint32(p, uint32(n))
}

func writeFrame(w io.Writer, kind byte, h uint64, payload []byte) error {
	hdr := frameHeader(kind, h, len(payload))
	crc := crc32.Update(crc32.Checksum(hdr, castagnoli), castagnoli, payload)
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	if _, err := w.Write(payload); err != nil {
		return err
	}
	_, err := w.Write(binary.BigEndian.AppendUint32(nil, crc))
	return err
}

// ErrBadExport wraps structural errors in an export file.
var ErrBadExport = errors.New("ledger: bad export")

// exported is an export held in memory. Frames are checked structurally when
// read; their contents are decoded on access, so a damaged block shows up as
// a BreakError at its height rather than as an unreadable file.
type exported struct {
	height uint64
	blocks [][]byte // blocks[h-1]
	certs  map[uint64][]byte
	bad    map[frameKey]error
}

type frameKey struct {
	kind byte
	h    uint64
}

// OpenExport reads an export written by Export. It holds the whole ledger in
// memory. Structural damage (bad magic or version, bad frame lengths or
// order, truncation, trailing bytes) is an error here; damage inside one
// frame (checksum or decoding) is reported by the Source at that height.
func OpenExport(r io.Reader) (Source, error) {
	br := bufio.NewReader(r)
	bad := func(format string, args ...any) (Source, error) {
		return nil, fmt.Errorf("%w: %s", ErrBadExport, fmt.Sprintf(format, args...))
	}
	hdr := make([]byte, len(exportMagic)+4+8)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return bad("header: %v", err)
	}
	if string(hdr[:len(exportMagic)]) != exportMagic {
		return bad("not a Braid ledger export (magic %q)", hdr[:len(exportMagic)])
	}
	if v := binary.BigEndian.Uint32(hdr[len(exportMagic):]); v != exportVersion {
		return bad("version %d, this build reads %d", v, exportVersion)
	}
	e := &exported{
		height: binary.BigEndian.Uint64(hdr[len(exportMagic)+4:]),
		certs:  make(map[uint64][]byte),
		bad:    make(map[frameKey]error),
	}
	for {
		var fh [13]byte
		if _, err := io.ReadFull(br, fh[:]); err != nil {
			return bad("frame after height %d: %v", len(e.blocks), err)
		}
		kind, h, n := fh[0], binary.BigEndian.Uint64(fh[1:]), binary.BigEndian.Uint32(fh[9:])
		last := uint64(len(e.blocks))
		switch {
		case kind == frameEnd:
			if h != e.height || n != 0 || last != e.height {
				return bad("end frame (height %d, len %d) after %d of %d blocks", h, n, last, e.height)
			}
		case kind == frameBlock:
			if h != last+1 || h > e.height {
				return bad("block frame for height %d after height %d (ledger height %d)", h, last, e.height)
			}
			if n > MaxBlockBytes {
				return bad("block %d: frame of %d bytes exceeds limit %d", h, n, MaxBlockBytes)
			}
		case kind == frameCert:
			if h != last || h == 0 {
				return bad("certificate frame for height %d after block %d", h, last)
			}
			if _, dup := e.certs[h]; dup {
				return bad("second certificate for height %d", h)
			}
			if n > MaxCertificateBytes {
				return bad("certificate %d: frame of %d bytes exceeds limit %d", h, n, MaxCertificateBytes)
			}
		default:
			return bad("unknown frame kind %d after height %d", kind, last)
		}
		// Read gradually: a forged length costs at most the file's size.
		var buf bytes.Buffer
		if _, err := io.CopyN(&buf, br, int64(n)+4); err != nil {
			return bad("frame kind %d height %d: truncated: %v", kind, h, err)
		}
		p := buf.Bytes()
		payload, sum := p[:n], binary.BigEndian.Uint32(p[n:])
		if crc32.Update(crc32.Checksum(fh[:], castagnoli), castagnoli, payload) != sum {
			if kind == frameEnd {
				return bad("end frame checksum mismatch")
			}
			e.bad[frameKey{kind, h}] = fmt.Errorf("%w: frame checksum mismatch (export damaged)", ErrBadExport)
		}
		switch kind {
		case frameEnd:
			if _, err := br.ReadByte(); err != io.EOF {
				return bad("bytes after the end frame")
			}
			return e, nil
		case frameBlock:
			e.blocks = append(e.blocks, payload)
		case frameCert:
			e.certs[h] = payload
		}
	}
}

func (e *exported) Height() (uint64, error) { return e.height, nil }

func (e *exported) Block(h uint64) (*Block, error) {
	if h == 0 || h > uint64(len(e.blocks)) {
		return nil, fmt.Errorf("ledger export: no block at height %d", h)
	}
	if err := e.bad[frameKey{frameBlock, h}]; err != nil {
		return nil, err
	}
	return DecodeBlock(e.blocks[h-1])
}

func (e *exported) Certificate(h uint64) (*Certificate, error) {
	if err := e.bad[frameKey{frameCert, h}]; err != nil {
		return nil, err
	}
	p, ok := e.certs[h]
	if !ok {
		return nil, nil
	}
	return DecodeCertificate(p)
}
