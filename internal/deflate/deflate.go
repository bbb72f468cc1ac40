// Package deflate joins raw deflate streams (RFC 1951) without
// recompressing them, the way zlib's gzjoin example does: the final-block
// bit of each stream's last block is cleared, the stream is ended on a
// byte boundary with an empty stored block, and the next stream follows.
// A zip member stored with deflate is such a stream, so a gzip layer can
// carry a wheel's members as the wheel compressed them.
//
// Reader inflates one stream (klauspost/compress/flate, which reports the
// bit position of every block end) and says where its last block starts
// and where the stream ends; Copy writes the stream as a non-final,
// byte-aligned part of a longer one; StoredWriter writes bytes as stored
// blocks. Everything streams with bounded memory.
package deflate

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	kflate "github.com/klauspost/compress/flate"
)

// Bounds locates a complete deflate stream's last block: LastBlock is the
// bit offset of its header (whose first bit is BFINAL), End the bit offset
// just past it. Bits count from the stream's first byte, least
// significant bit first, as deflate packs them.
type Bounds struct {
	LastBlock, End int64
}

// Bytes is how many bytes of the source the stream occupies.
func (b Bounds) Bytes() int64 { return (b.End + 7) / 8 }

// Reader inflates one raw deflate stream and records its Bounds.
//
// klauspost/compress/flate reports each block's end, but its byte count
// runs ahead after a stored block entered with whole bytes still in its
// bit buffer (it counts them twice). So Reader works out stored blocks'
// ends itself from their LEN field, read from the source, and takes
// Huffman blocks' ends from the inflater minus the drift seen so far.
type Reader struct {
	zr    io.ReadCloser
	src   io.ReaderAt
	size  int64
	b     Bounds
	start int64 // true bit offset of the block being read
	drift int64 // bytes the inflater's count runs ahead
	done  bool
	err   error
	hdr   [4]byte
}

// readBuf is the input buffer: large reads, and an io.ByteReader so that
// the inflater never reads past the stream's end.
const readBuf = 256 << 10

// NewReader returns a Reader of the stream held in the first size bytes
// of src.
func NewReader(src io.ReaderAt, size int64) *Reader {
	d := &Reader{src: src, size: size}
	br := bufio.NewReaderSize(io.NewSectionReader(src, 0, size), readBuf)
	d.zr = kflate.NewReaderOpts(br, kflate.WithEobCallback(d.eob))
	return d
}

// eob is called after every block with the position the next one starts
// at (by the inflater's count); after the final block, the stream's end.
func (d *Reader) eob(cp kflate.InflateCheckpoint) {
	if d.err != nil {
		return
	}
	reported := cp.CompressedOffset*8 + int64(cp.BitOffset)
	end, err := d.blockEnd(reported)
	if err != nil {
		d.err = err
		return
	}
	if cp.Final {
		d.b = Bounds{LastBlock: d.start, End: end}
		d.done = true
		return
	}
	d.start = end
}

// blockEnd returns the true end of the block that starts at d.start.
func (d *Reader) blockEnd(reported int64) (int64, error) {
	t := d.start
	// The 3 header bits may straddle a byte boundary.
	n, err := d.src.ReadAt(d.hdr[:2], t/8)
	if n < 1 || (n < 2 && t%8 > 5) {
		return 0, fmt.Errorf("deflate: reading block header at bit %d: %v", t, err)
	}
	bits := (uint16(d.hdr[0]) | uint16(d.hdr[1])<<8) >> (t % 8)
	end := reported - 8*d.drift
	if bits>>1&3 == 0 { // stored: header, padding, LEN, NLEN, LEN bytes
		a := (t + 3 + 7) / 8
		if _, err := d.src.ReadAt(d.hdr[:2], a); err != nil {
			return 0, fmt.Errorf("deflate: reading stored block length at byte %d: %v", a, err)
		}
		end = (a + 4 + int64(d.hdr[0]) + int64(d.hdr[1])<<8) * 8
		if reported%8 != 0 || reported < end {
			return 0, fmt.Errorf("deflate: inflater position %d after a stored block ending at %d", reported, end)
		}
		d.drift = (reported - end) / 8
	}
	if end <= t || end > d.size*8 {
		return 0, fmt.Errorf("deflate: block at bit %d ends at %d, outside the %d-byte stream", t, end, d.size)
	}
	return end, nil
}

// Read returns the inflated bytes; io.EOF once the final block ended.
func (d *Reader) Read(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	n, err := d.zr.Read(p)
	if d.err != nil {
		return n, d.err
	}
	if err == io.EOF && !d.done {
		err = errors.New("deflate: stream ended without a final block")
	}
	if err != nil && err != io.EOF {
		err = fmt.Errorf("corrupt deflate stream: %w", err)
		d.err = err
	}
	return n, err
}

// Bounds is valid once Read returned io.EOF.
func (d *Reader) Bounds() (Bounds, bool) {
	return d.b, d.done && d.err == nil
}

// Close releases the inflater.
func (d *Reader) Close() error { return d.zr.Close() }

// emptyStored is a non-final stored block of length 0 once its 3 header
// bits are placed: LEN 0, NLEN 0xffff.
var emptyStored = []byte{0x00, 0x00, 0xff, 0xff}

// Copy writes the stream at the start of src, whose Bounds are b (from a
// Reader over the same bytes), to w as a part of a longer stream: its
// last block's BFINAL bit cleared, the bits after its end zeroed, and an
// empty stored block added so that whatever follows starts on a byte
// boundary. It reads exactly b.Bytes() bytes of src.
func Copy(w io.Writer, src io.Reader, b Bounds, buf []byte) (int64, error) {
	total := b.Bytes()
	if b.End < 3 || b.LastBlock < 0 || b.LastBlock+3 > b.End {
		return 0, fmt.Errorf("deflate: bounds %+v are not a stream's", b)
	}
	if len(buf) == 0 {
		buf = make([]byte, 64<<10)
	}
	var off, written int64
	for off < total {
		n, err := io.ReadFull(src, buf[:min(int64(len(buf)), total-off)])
		chunk := buf[:n]
		if i := b.LastBlock/8 - off; i >= 0 && i < int64(n) {
			if chunk[i]&(1<<(b.LastBlock%8)) == 0 {
				return written, fmt.Errorf("deflate: no final block at bit %d", b.LastBlock)
			}
			chunk[i] &^= 1 << (b.LastBlock % 8)
		}
		if off+int64(n) == total && b.End%8 != 0 {
			chunk[n-1] &= 1<<(b.End%8) - 1
		}
		m, werr := w.Write(chunk)
		written += int64(m)
		off += int64(n)
		if werr != nil {
			return written, werr
		}
		if err != nil {
			return written, fmt.Errorf("deflate: reading the stream: %w", err)
		}
	}
	// The stored block's 3 header bits go where the stream ended; if
	// fewer than 3 bits are left in that byte (or none), they start a
	// new one. The rest of the byte is padding, zero.
	if r := b.End % 8; r == 0 || r > 5 {
		if _, err := w.Write([]byte{0}); err != nil {
			return written, err
		}
		written++
	}
	m, err := w.Write(emptyStored)
	return written + int64(m), err
}

// maxStored is the largest stored block deflate allows.
const maxStored = 65535

// WriteStoredBytes writes p to w as non-final stored blocks; w must be at
// a byte boundary of the deflate stream, and is again afterwards.
func WriteStoredBytes(w io.Writer, p []byte) error {
	var hdr [5]byte
	for len(p) > 0 {
		k := min(len(p), maxStored)
		hdr[1], hdr[2] = byte(k), byte(k>>8)
		hdr[3], hdr[4] = ^byte(k), ^byte(k>>8)
		if _, err := w.Write(hdr[:]); err != nil {
			return err
		}
		if _, err := w.Write(p[:k]); err != nil {
			return err
		}
		p = p[k:]
	}
	return nil
}

// FinalEmpty is a final stored block of length 0: it ends a stream whose
// parts all ended on byte boundaries.
var FinalEmpty = []byte{0x01, 0x00, 0x00, 0xff, 0xff}
