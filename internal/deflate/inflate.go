package deflate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Reader inflates one raw deflate stream and records its Bounds.
//
// It is mlenv's own inflater, written for speed on the one job a cold
// build cannot skip (every wheel member is inflated once): a 64-bit bit
// buffer refilled eight bytes at a time, one table look-up per symbol for
// all but the longest codes, and output decoded straight into a window
// that the caller reads from. klauspost/compress/flate reads input a
// byte at a time through io.ByteReader and runs at less than half this
// speed on Python-like text (BenchmarkInflate; README's make bench
// section has figures). Being its own, it also knows exactly where each
// block starts and ends, which splicing needs.
//
// It accepts exactly the streams Go's compress/flate accepts (FuzzInflate
// holds it to that, byte for byte). Memory is bounded: a 256 KiB input
// buffer and a 32 KiB window plus 512 KiB of output (and a match's worth
// of slack), whatever the stream.
type Reader struct {
	src  io.ReaderAt
	size int64 // the stream lies in src's first size bytes

	// Input: in holds src[inOff : inOff+len(in)], plus padEnd zero bytes
	// once src is exhausted; pos is the next byte to load into the bit
	// buffer b, whose low n bits are the stream's next bits.
	in     []byte
	inOff  int64
	pos    int
	padded bool
	b      uint64
	n      uint

	// Output: out[:w] is the window, out[r:w] not yet read.
	out  []byte
	r, w int

	state      int
	final      bool  // the current block is the last
	blockStart int64 // bit offset of the current block's header
	storedLeft int   // bytes of the current stored block still to copy
	lit, dist  *table
	dyn        struct{ lit, dist, clen table }

	bounds Bounds
	err    error
}

const (
	stateHeader = iota
	stateHuffman
	stateStored
	stateDone
)

const (
	window   = 32 << 10  // the farthest a match reaches back
	outChunk = 512 << 10 // output decoded per step
	inSize   = 256 << 10
	padEnd   = 16 // zero bytes after the source's end, so loads need no checks
	// keepBack bytes before pos are kept when the input buffer moves: a
	// stored block's header gives the bit buffer's whole bytes (at most
	// 7) back to the input.
	keepBack = 8
	maxMatch = 258     // the longest match
	maxSize  = 1 << 56 // larger sizes are clamped: bit offsets (size*8) must fit in an int64
)

// ErrUnexpectedEOF is returned for a stream that ends before its final
// block does.
var ErrUnexpectedEOF = errors.New("corrupt deflate stream: it ends before its final block (truncated)")

// NewReader returns a Reader of the stream held in the first size bytes
// of src.
func NewReader(src io.ReaderAt, size int64) *Reader {
	d := &Reader{
		in:  make([]byte, 0, inSize+padEnd),
		out: make([]byte, window+outChunk+maxMatch+16),
	}
	d.Reset(src, size)
	return d
}

// Reset makes d a Reader of another stream, keeping its buffers: a worker
// inflating thousands of members allocates them once.
func (d *Reader) Reset(src io.ReaderAt, size int64) {
	in, out, dyn := d.in[:0], d.out, d.dyn
	*d = Reader{src: src, size: size, in: in, out: out, dyn: dyn}
	switch {
	case size < 0:
		// A zip64 size past 2^63, converted: the input buffer would
		// never fill, and a load from it would index past its end.
		d.err = fmt.Errorf("deflate: stream size %d is negative", size)
	case size > maxSize:
		// Bit offsets must fit in an int64; a source that large ends
		// long before, and ReadAt says where.
		d.size = maxSize
	}
}

// corrupt is the error for an invalid stream, with the bit offset where
// the problem was seen.
func (d *Reader) corrupt(format string, args ...any) error {
	return fmt.Errorf("corrupt deflate stream at bit %d: %s", d.bitPos(), fmt.Sprintf(format, args...))
}

// bitPos is the offset, in bits from the stream's start, of the next bit
// to decode.
func (d *Reader) bitPos() int64 { return (d.inOff+int64(d.pos))*8 - int64(d.n) }

// Read returns the inflated bytes; io.EOF once the final block ended.
func (d *Reader) Read(p []byte) (int, error) {
	for d.r == d.w {
		if d.err != nil {
			return 0, d.err
		}
		if d.state == stateDone {
			return 0, io.EOF
		}
		// Keep the window, drop what was read before it.
		if d.w > window {
			copy(d.out, d.out[d.w-window:d.w])
			d.w, d.r = window, window
		}
		d.err = d.step()
	}
	n := copy(p, d.out[d.r:d.w])
	d.r += n
	return n, nil
}

// Bounds is valid once Read returned io.EOF.
func (d *Reader) Bounds() (Bounds, bool) {
	return d.bounds, d.state == stateDone && d.err == nil
}

// Close releases nothing; it is there so that a Reader is an
// io.ReadCloser like the inflaters it replaced.
func (d *Reader) Close() error { return nil }

// step decodes until about outChunk bytes are out or the stream ends.
func (d *Reader) step() error {
	stop := d.w + outChunk
	for d.w < stop {
		var err error
		switch d.state {
		case stateHeader:
			err = d.header()
		case stateHuffman:
			err = d.huffman(stop)
		case stateStored:
			err = d.stored(stop)
		case stateDone:
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// more makes at least 16 bytes loadable at pos: it moves the unread
// input (and keepBack bytes before it) to the buffer's front and reads
// from src, or, at src's end, appends padEnd zero bytes. Past those, the
// stream has run out.
func (d *Reader) more() error {
	if d.padded {
		if d.bitPos() > d.size*8 || d.pos+8 > len(d.in) {
			return ErrUnexpectedEOF
		}
		return nil
	}
	keep := max(d.pos-keepBack, 0)
	n := copy(d.in[:cap(d.in)], d.in[keep:])
	d.in = d.in[:n]
	d.inOff += int64(keep)
	d.pos -= keep
	next := d.inOff + int64(n)
	want := min(int64(cap(d.in)-padEnd-n), d.size-next)
	if want > 0 {
		k, err := d.src.ReadAt(d.in[n:n+int(want)], next)
		if int64(k) < want {
			if err != io.EOF {
				if err == nil {
					err = ErrUnexpectedEOF
				}
				return fmt.Errorf("deflate: reading the stream at byte %d: %w", next, err)
			}
			// The source ends before size (a zip member whose declared
			// compressed size runs past the file's end): the stream
			// must end within the bytes there are, as it must for
			// compress/flate reading the same section.
			d.size = next + int64(k)
		}
		d.in = d.in[:n+k]
	}
	if d.inOff+int64(len(d.in)) == d.size && len(d.in)-d.pos < padEnd {
		for i := 0; i < padEnd; i++ {
			d.in = append(d.in, 0)
		}
		d.padded = true
	}
	return nil
}

// realEnd is where src's bytes end in the input buffer.
func (d *Reader) realEnd() int {
	if d.padded {
		return len(d.in) - padEnd
	}
	return len(d.in)
}

// fill makes n at least 56 bits (zero bits past src's end; more catches
// a stream that uses them).
func (d *Reader) fill() error {
	if d.n >= 56 {
		return nil
	}
	if d.pos+padEnd > len(d.in) {
		if err := d.more(); err != nil {
			return err
		}
	}
	d.b |= binary.LittleEndian.Uint64(d.in[d.pos:]) << d.n
	d.pos += int(63-d.n) >> 3
	d.n |= 56
	return nil
}

// bits takes k (at most 32) bits; fill must have made them available.
func (d *Reader) bits(k uint) uint32 {
	v := uint32(d.b & (1<<k - 1))
	d.b >>= k
	d.n -= k
	return v
}

// codeOrder is the order code-length code lengths are sent in.
var codeOrder = [19]int{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

// header reads a block header, and a dynamic block's code.
func (d *Reader) header() error {
	d.blockStart = d.bitPos()
	if err := d.fill(); err != nil {
		return err
	}
	d.final = d.bits(1) == 1
	switch d.bits(2) {
	case 0:
		// Stored: skip to a byte boundary; the whole bytes still in the
		// bit buffer go back to the input.
		d.bits(d.n & 7)
		d.pos -= int(d.n / 8)
		d.b, d.n = 0, 0
		if d.realEnd()-d.pos < 4 {
			if err := d.more(); err != nil {
				return err
			}
			if d.realEnd()-d.pos < 4 {
				return ErrUnexpectedEOF
			}
		}
		ln := binary.LittleEndian.Uint16(d.in[d.pos:])
		nln := binary.LittleEndian.Uint16(d.in[d.pos+2:])
		if ln != ^nln {
			return d.corrupt("stored block length %d does not match its complement %d", ln, nln)
		}
		d.pos += 4
		d.storedLeft = int(ln)
		d.state = stateStored
		return nil
	case 1:
		d.lit, d.dist = &fixedLit, &fixedDist
	case 2:
		if err := d.dynamic(); err != nil {
			return err
		}
		d.lit, d.dist = &d.dyn.lit, &d.dyn.dist
	default:
		return d.corrupt("block type 3 is reserved")
	}
	d.state = stateHuffman
	return nil
}

// dynamic reads a dynamic block's code lengths (RFC 1951 3.2.7) and
// builds its tables.
func (d *Reader) dynamic() error {
	if err := d.fill(); err != nil {
		return err
	}
	nlit := int(d.bits(5)) + 257
	ndist := int(d.bits(5)) + 1
	nclen := int(d.bits(4)) + 4
	if nlit > 286 || ndist > 30 {
		return d.corrupt("%d literal/length and %d distance codes (at most 286 and 30)", nlit, ndist)
	}
	var clens [19]uint8
	for i := 0; i < nclen; i++ {
		if err := d.fill(); err != nil {
			return err
		}
		clens[codeOrder[i]] = uint8(d.bits(3))
	}
	if err := d.dyn.clen.build(clens[:], clenInfo[:], clenBits); err != nil {
		return d.corrupt("code-length code: %v", err)
	}
	var lens [286 + 30]uint8
	t := d.dyn.clen.t
	for i := 0; i < nlit+ndist; {
		if err := d.fill(); err != nil {
			return err
		}
		e := t[d.b&(1<<clenBits-1)]
		if e>>8&15 != kindLiteral {
			return d.corrupt("invalid code-length code")
		}
		d.bits(uint(e & 0xff))
		sym := e >> 16
		if sym < 16 {
			lens[i] = uint8(sym)
			i++
			continue
		}
		var rep int
		var val uint8
		switch sym {
		case 16:
			if i == 0 {
				return d.corrupt("repeat of a code length before the first")
			}
			rep, val = 3+int(d.bits(2)), lens[i-1]
		case 17:
			rep = 3 + int(d.bits(3))
		default:
			rep = 11 + int(d.bits(7))
		}
		if i+rep > nlit+ndist {
			return d.corrupt("code lengths repeat past the %d codes", nlit+ndist)
		}
		for ; rep > 0; rep-- {
			lens[i] = val
			i++
		}
	}
	if err := d.dyn.lit.build(lens[:nlit], litInfo[:], litBits); err != nil {
		return d.corrupt("literal/length code: %v", err)
	}
	if err := d.dyn.dist.build(lens[nlit:nlit+ndist], distInfo[:], distBits); err != nil {
		return d.corrupt("distance code: %v", err)
	}
	return nil
}

// stored copies the current stored block's bytes.
func (d *Reader) stored(stop int) error {
	for d.storedLeft > 0 && d.w < stop {
		if d.pos >= d.realEnd() {
			if err := d.more(); err != nil {
				return err
			}
			if d.pos >= d.realEnd() {
				return ErrUnexpectedEOF
			}
		}
		k := copy(d.out[d.w:min(stop, d.w+d.storedLeft)], d.in[d.pos:d.realEnd()])
		d.w += k
		d.pos += k
		d.storedLeft -= k
	}
	if d.storedLeft == 0 {
		return d.endBlock()
	}
	return nil
}

// endBlock is called when a block's end is decoded.
func (d *Reader) endBlock() error {
	end := d.bitPos()
	if end > d.size*8 {
		return ErrUnexpectedEOF
	}
	if d.final {
		d.bounds = Bounds{LastBlock: d.blockStart, End: end}
		d.state = stateDone
		return nil
	}
	d.state = stateHeader
	return nil
}

// huffman decodes the current Huffman block until its end or until the
// output reaches stop. The loop keeps the bit buffer, input position and
// output position in locals; every exit stores them back.
func (d *Reader) huffman(stop int) error {
	in, pos, b, n := d.in, d.pos, d.b, d.n
	out, w := d.out, d.w
	// Array pointers: indexing them with a masked value needs no bounds
	// check.
	lit := (*[1 << litBits]uint32)(d.lit.t)
	dist := (*[1 << distBits]uint32)(d.dist.t)
	litSub, distSub := d.lit.t, d.dist.t
	const litMask, distMask = 1<<litBits - 1, 1<<distBits - 1
	save := func() { d.pos, d.b, d.n, d.w = pos, b, n, w }
	for w < stop {
		if pos+padEnd > len(in) {
			save()
			if err := d.more(); err != nil {
				return err
			}
			in, pos = d.in, d.pos
		}
		// 56 bits: enough for a length code, its extra bits, a distance
		// code and its extra bits (15+5+15+13).
		b |= binary.LittleEndian.Uint64(in[pos:]) << n
		pos += int(63-n) >> 3
		n |= 56

		e := lit[b&litMask]
		if e&0xf00 == kindLiteral<<8 {
			// Literals come in runs: a second one fits in the bits left
			// (a literal code is at most 15 bits); anything else goes
			// round the loop for a full refill.
			b >>= e & 0xff
			n -= uint(e & 0xff)
			out[w] = byte(e >> 16)
			w++
			e = lit[b&litMask]
			if e&0xf00 == kindLiteral<<8 {
				b >>= e & 0xff
				n -= uint(e & 0xff)
				out[w] = byte(e >> 16)
				w++
			}
			continue
		}
		if e>>8&15 == kindSub {
			b >>= e & 0xff
			n -= uint(e & 0xff)
			e = litSub[e>>16+uint32(b&(1<<(e>>12&15)-1))]
		}
		b >>= e & 0xff
		n -= uint(e & 0xff)
		switch e >> 8 & 15 {
		case kindLiteral:
			out[w] = byte(e >> 16)
			w++
			continue
		case kindLength:
		case kindEOB:
			save()
			return d.endBlock()
		default:
			save()
			return d.corrupt("invalid literal/length code")
		}
		extra := e >> 12 & 15
		length := int(e>>16 + uint32(b&(1<<extra-1)))
		b >>= extra
		n -= uint(extra)

		e = dist[b&distMask]
		if e>>8&15 == kindSub {
			b >>= e & 0xff
			n -= uint(e & 0xff)
			e = distSub[e>>16+uint32(b&(1<<(e>>12&15)-1))]
		}
		b >>= e & 0xff
		n -= uint(e & 0xff)
		if e>>8&15 != kindLength {
			save()
			return d.corrupt("invalid distance code")
		}
		extra = e >> 12 & 15
		distance := int(e>>16 + uint32(b&(1<<extra-1)))
		b >>= extra
		n -= uint(extra)
		if distance > w {
			save()
			return d.corrupt("distance %d reaches before the stream's start", distance)
		}
		from := w - distance
		if distance >= 8 {
			// Eight bytes at a time, each word's source already written
			// (it is at least 8 bytes back); the last word may write up
			// to 15 bytes past the match, into out's slack, which the
			// next symbols overwrite. Most matches in text are short:
			// two words from two fixed-length slices, whose constant
			// indexes need no bounds checks.
			dst, src := out[w:w+16], out[from:from+16]
			binary.LittleEndian.PutUint64(dst, binary.LittleEndian.Uint64(src))
			binary.LittleEndian.PutUint64(dst[8:], binary.LittleEndian.Uint64(src[8:]))
			for i := 16; i < length; i += 8 {
				binary.LittleEndian.PutUint64(out[w+i:], binary.LittleEndian.Uint64(out[from+i:]))
			}
		} else {
			// A short repeating pattern: byte by byte, as the overlap
			// requires.
			for i := 0; i < length; i++ {
				out[w+i] = out[from+i]
			}
		}
		w += length
	}
	save()
	return nil
}
