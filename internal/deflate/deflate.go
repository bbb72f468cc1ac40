// Package deflate joins raw deflate streams (RFC 1951) without
// recompressing them, the way zlib's gzjoin example does: the final-block
// bit of each stream's last block is cleared, the stream is ended on a
// byte boundary with an empty stored block, and the next stream follows.
// A zip member stored with deflate is such a stream, so a gzip layer can
// carry a wheel's members as the wheel compressed them.
//
// Reader inflates one stream (its own inflater, inflate.go) and says
// where its last block starts and where the stream ends; Copy writes the
// stream as a non-final, byte-aligned part of a longer one; StoredWriter
// writes bytes as stored blocks. Everything streams with bounded memory.
package deflate

import (
	"fmt"
	"io"
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
