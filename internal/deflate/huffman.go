package deflate

import (
	"errors"
	"math/bits"
)

// Decoding tables. A canonical Huffman code is looked up by its first
// primary bits (as they arrive: deflate packs codes most significant bit
// first into a least-significant-first stream, so the table is indexed by
// the reversed code); codes longer than that go through a sub-table
// holding the rest. One entry says everything the decoder needs:
//
//	bits 0-7   how many bits the entry consumes
//	bits 8-11  kind: literal, length, end of block, sub-table, invalid
//	bits 12-15 extra bits that follow (lengths, distances) or, for a
//	           sub-table pointer, the sub-table's index bits
//	bits 16-31 value: the literal byte, the length or distance base, the
//	           code-length symbol, or the sub-table's offset
//
// This is the layout zlib's inflate_fast and libdeflate use, in safe Go.
const (
	kindLiteral = iota
	kindLength  // also a distance, in the distance table
	kindEOB
	kindSub
	kindInvalid
)

const (
	litBits  = 10 // primary index bits of the literal/length table
	distBits = 8  // of the distance table
	clenBits = 7  // of the code-length table (its codes are at most 7 bits)
	maxCode  = 15 // the longest code deflate allows
)

func entry(kind, extra, value uint32) uint32 { return value<<16 | extra<<12 | kind<<8 }

var invalidEntry = entry(kindInvalid, 0, 0)

// Symbol information, without the code length: literal/length symbols
// 0-287 and distance symbols 0-31 (286, 287, 30 and 31 are invalid, as
// the fixed code contains them but no stream may use them).
var litInfo, distInfo, clenInfo [288]uint32

var (
	lengthBase  = [29]uint32{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lengthExtra = [29]uint32{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase    = [30]uint32{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra   = [30]uint32{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
)

// The fixed code of block type 1 (RFC 1951 3.2.6).
var fixedLit, fixedDist table

func init() {
	for s := range litInfo {
		switch {
		case s < 256:
			litInfo[s] = entry(kindLiteral, 0, uint32(s))
		case s == 256:
			litInfo[s] = entry(kindEOB, 0, 0)
		case s < 286:
			litInfo[s] = entry(kindLength, lengthExtra[s-257], lengthBase[s-257])
		default:
			litInfo[s] = invalidEntry
		}
		if s < 30 {
			distInfo[s] = entry(kindLength, distExtra[s], distBase[s])
		} else {
			distInfo[s] = invalidEntry
		}
		clenInfo[s] = entry(kindLiteral, 0, uint32(s))
	}
	var lens [288]uint8
	for s := range lens {
		switch {
		case s < 144:
			lens[s] = 8
		case s < 256:
			lens[s] = 9
		case s < 280:
			lens[s] = 7
		default:
			lens[s] = 8
		}
	}
	if err := fixedLit.build(lens[:], litInfo[:], litBits); err != nil {
		panic(err)
	}
	for s := 0; s < 32; s++ {
		lens[s] = 5
	}
	if err := fixedDist.build(lens[:32], distInfo[:], distBits); err != nil {
		panic(err)
	}
}

// table is one code's decoding table: 1<<primary entries, then
// sub-tables.
type table struct {
	t       []uint32
	primary uint
}

var (
	errOversubscribed = errors.New("Huffman code lengths are over-subscribed")
	errIncomplete     = errors.New("Huffman code lengths are incomplete")
)

// build makes the table of the canonical code with these lengths (one
// per symbol, 0 for unused), symbol i's entry being info[i] plus the bits
// it consumes. As Go's compress/flate and zlib do, it refuses a code that
// is over-subscribed or incomplete, except a single code of one bit (an
// incomplete code zlib writes when a block has one distance); the other
// bit pattern is then invalid. All lengths zero is an empty code: every
// entry invalid, an error only once a symbol is decoded with it.
func (tb *table) build(lens []uint8, info []uint32, primary uint) error {
	var count [maxCode + 1]int
	maxLen := 0
	for _, l := range lens {
		count[l]++
		maxLen = max(maxLen, int(l))
	}
	size := 1 << primary
	tb.primary = primary
	tb.t = grow(tb.t[:0], size)
	if maxLen == 0 {
		fillInvalid(tb.t)
		return nil
	}
	count[0] = 0
	left := 1
	var next [maxCode + 1]int
	code := 0
	for l := 1; l <= maxCode; l++ {
		left = left<<1 - count[l]
		if left < 0 {
			return errOversubscribed
		}
		code = (code + count[l-1]) << 1
		next[l] = code
	}
	if left > 0 {
		if !(maxLen == 1 && count[1] == 1) {
			return errIncomplete
		}
		// The one pattern no code has stays invalid. A complete code
		// writes every entry below, primary and sub-tables alike, so only
		// this case needs the fill (a table build per block is what a
		// stream of header-only blocks costs).
		fillInvalid(tb.t)
	}
	// Codes in canonical order, reversed as they arrive; long codes: each
	// primary prefix they share gets one sub-table, as wide as the
	// longest code with that prefix needs.
	var rev [288]uint32
	var subLen [1 << litBits]uint8
	mask := uint32(size - 1)
	for s, l := range lens {
		if l == 0 {
			continue
		}
		rev[s] = reverse(uint32(next[l]), uint(l))
		next[l]++
		if uint(l) > primary {
			p := rev[s] & mask
			subLen[p] = max(subLen[p], l-uint8(primary))
		}
	}
	for s, l := range lens {
		if l == 0 {
			continue
		}
		r := rev[s]
		if uint(l) <= primary {
			e := info[s] | uint32(l)
			for i := r; i < uint32(size); i += 1 << l {
				tb.t[i] = e
			}
			continue
		}
		p := r & mask
		// The table's memory is reused unset: whether p's sub-table was
		// made in this build is marked in subLen's top bit, not read
		// from the entry.
		if subLen[p]&allocated == 0 {
			sub := uint32(subLen[p])
			off := uint32(len(tb.t))
			tb.t = grow(tb.t, len(tb.t)+1<<sub)
			tb.t[p] = entry(kindSub, sub, off) | uint32(primary)
			subLen[p] |= allocated
		}
		ptr := tb.t[p]
		sub, off := ptr>>12&15, ptr>>16
		rest := uint(l) - primary
		e := info[s] | uint32(rest)
		for i := r >> primary; i < 1<<sub; i += 1 << rest {
			tb.t[off+i] = e
		}
	}
	return nil
}

// reverse returns the low n bits of c in reverse order.
func reverse(c uint32, n uint) uint32 {
	return uint32(bits.Reverse16(uint16(c))) >> (16 - n)
}

// grow returns t extended to n entries (their values unset), reusing its
// array when it can.
func grow(t []uint32, n int) []uint32 {
	if n <= cap(t) {
		return t[:n]
	}
	return append(t[:cap(t)], make([]uint32, n-cap(t))...)[:n]
}

// allocated marks, in build's subLen, a prefix whose sub-table exists.
const allocated = 0x80

func fillInvalid(t []uint32) {
	for i := range t {
		t[i] = invalidEntry
	}
}
