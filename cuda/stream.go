package cuda

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// ScanStream finds fat binary containers in a byte stream (a file read
// from an image layer, where seeking is impossible): it looks for the
// container magic at 8-byte aligned offsets, validates the headers, and
// skips payloads without keeping them. Every byte is read once.
func ScanStream(r io.Reader) ([]Entry, error) {
	s := &streamScanner{r: r, buf: make([]byte, 0, 1<<20)}
	return s.run()
}

type streamScanner struct {
	r   io.Reader
	buf []byte // unconsumed bytes
	off int64  // stream offset of buf[0]
	eof bool

	// To tell .nv_fatbin from __nv_relfatbin without seeking, the scanner
	// watches the bytes go by: the ELF header (first 64 bytes), the
	// section header table when the stream passes it, and a window of the
	// most recent bytes, where the section name table (which linkers place
	// just before the section headers) can still be found.
	elfHdr  []byte
	shoff   int64
	shsize  int64
	shdrs   []byte
	ring    []byte
	ringOff int64
	// entryAt holds the stream offset of each found entry's container.
	entryAt []int64
}

const ringMax = 256 << 10

// observe sees every byte once, in order, as it is consumed.
func (s *streamScanner) observe(b []byte, off int64) {
	if off < 64 && len(s.elfHdr) < 64 {
		s.elfHdr = append(s.elfHdr, b[:min(len(b), int(64-off))]...)
		if len(s.elfHdr) == 64 && string(s.elfHdr[:4]) == "\x7fELF" && s.elfHdr[4] == 2 && s.elfHdr[5] == 1 {
			le := binary.LittleEndian
			s.shoff = int64(le.Uint64(s.elfHdr[40:]))
			if le.Uint16(s.elfHdr[58:]) == 64 {
				s.shsize = int64(le.Uint16(s.elfHdr[60:])) * 64
			}
			if s.shsize > 1<<20 || s.shoff < 0 {
				s.shsize = 0
			}
		}
	}
	if s.shsize > 0 {
		lo, hi := max(off, s.shoff), min(off+int64(len(b)), s.shoff+s.shsize)
		if lo < hi && lo == s.shoff+int64(len(s.shdrs)) {
			s.shdrs = append(s.shdrs, b[lo-off:hi-off]...)
		}
	}
	if s.shsize > 0 && off+int64(len(b)) <= s.shoff+s.shsize {
		s.ring = append(s.ring, b...)
		if len(s.ring) > 2*ringMax {
			drop := len(s.ring) - ringMax
			s.ring = append(s.ring[:0], s.ring[drop:]...)
			s.ringOff += int64(drop)
		}
		if len(s.ring) == len(b) {
			s.ringOff = off
		}
	}
}

// fatbinRanges returns the file ranges of the .nv_fatbin and
// __nv_relfatbin sections, and whether the section table could be read.
func (s *streamScanner) fatbinRanges() (loaded, relocatable [][2]int64, ok bool) {
	if s.shsize == 0 || int64(len(s.shdrs)) != s.shsize {
		return nil, nil, false
	}
	le := binary.LittleEndian
	n := len(s.shdrs) / 64
	strndx := int(le.Uint16(s.elfHdr[62:]))
	if strndx >= n {
		return nil, nil, false
	}
	sh := func(i int) (name uint32, off, size int64) {
		h := s.shdrs[i*64:]
		return le.Uint32(h[0:]), int64(le.Uint64(h[24:])), int64(le.Uint64(h[32:]))
	}
	_, stroff, strsize := sh(strndx)
	// Offsets come from the file: check them without adding them up
	// (a hostile header can make a sum wrap around).
	start := stroff - s.ringOff
	if stroff < s.ringOff || strsize < 0 || start > int64(len(s.ring)) || strsize > int64(len(s.ring))-start {
		return nil, nil, false
	}
	names := s.ring[start : start+strsize]
	for i := 0; i < n; i++ {
		nameOff, off, size := sh(i)
		if int64(nameOff) >= int64(len(names)) || off < 0 || size < 0 || off > math.MaxInt64-size {
			continue
		}
		name := names[nameOff:]
		if j := bytes.IndexByte(name, 0); j >= 0 {
			name = name[:j]
		}
		switch string(name) {
		case ".nv_fatbin":
			loaded = append(loaded, [2]int64{off, off + size})
		case "__nv_relfatbin":
			relocatable = append(relocatable, [2]int64{off, off + size})
		}
	}
	return loaded, relocatable, true
}

// fill makes at least n bytes available unless the stream ends.
func (s *streamScanner) fill(n int) error {
	for len(s.buf) < n && !s.eof {
		if cap(s.buf)-len(s.buf) < 64<<10 {
			nb := make([]byte, len(s.buf), max(2*cap(s.buf), n+(64<<10)))
			copy(nb, s.buf)
			s.buf = nb
		}
		m, err := s.r.Read(s.buf[len(s.buf):cap(s.buf)])
		s.buf = s.buf[:len(s.buf)+m]
		if err == io.EOF {
			s.eof = true
		} else if err != nil {
			return err
		}
	}
	return nil
}

// skip drops n bytes, reading through the stream as needed.
func (s *streamScanner) skip(n int64) error {
	for n > 0 {
		if len(s.buf) == 0 {
			if s.eof {
				return io.ErrUnexpectedEOF
			}
			if err := s.fill(1); err != nil {
				return err
			}
			continue
		}
		k := min(n, int64(len(s.buf)))
		s.consume(int(k))
		n -= k
	}
	return nil
}

func (s *streamScanner) consume(k int) {
	s.observe(s.buf[:k], s.off)
	s.off += int64(k)
	s.buf = s.buf[k:]
	if len(s.buf) == 0 {
		s.buf = s.buf[:0:cap(s.buf)]
	}
}

var magicBytes = []byte{0x50, 0xED, 0x55, 0xBA}

func (s *streamScanner) run() ([]Entry, error) {
	out, err := s.scan()
	if err != nil {
		return out, err
	}
	// Read to the end so that the section headers pass by.
	if err := s.drain(); err != nil {
		return out, err
	}
	// With the section table, keep what the section reader keeps: code
	// in .nv_fatbin, and __nv_relfatbin marked relocatable. Containers
	// elsewhere (blobs a library loads itself) are not what the CUDA
	// runtime registers, and cuobjdump does not list them either. Without
	// a readable table (stripped or unusual files) every container counts.
	loaded, reloc, ok := s.fatbinRanges()
	if !ok {
		return out, nil
	}
	in := func(off int64, ranges [][2]int64) bool {
		for _, r := range ranges {
			if off >= r[0] && off < r[1] {
				return true
			}
		}
		return false
	}
	kept := out[:0]
	for i, e := range out {
		switch {
		case in(s.entryAt[i], loaded):
			kept = append(kept, e)
		case in(s.entryAt[i], reloc):
			e.Relocatable = true
			kept = append(kept, e)
		}
	}
	return kept, nil
}

func (s *streamScanner) drain() error {
	for {
		s.consume(len(s.buf))
		if s.eof {
			return nil
		}
		if err := s.fill(64 << 10); err != nil {
			return err
		}
	}
}

func (s *streamScanner) scan() ([]Entry, error) {
	var out []Entry
	for {
		if err := s.fill(containerHdrSize); err != nil {
			return out, err
		}
		if len(s.buf) < containerHdrSize {
			return out, nil
		}
		i := bytes.Index(s.buf, magicBytes)
		if i < 0 {
			// Keep the last 3 bytes: a magic may straddle the boundary.
			s.consume(max(0, len(s.buf)-3))
			if s.eof {
				return out, nil
			}
			if err := s.fill(len(s.buf) + 64<<10); err != nil {
				return out, err
			}
			continue
		}
		s.consume(i)
		if s.off%8 != 0 {
			s.consume(1)
			continue
		}
		if err := s.fill(containerHdrSize + entryHdrMin); err != nil {
			return out, err
		}
		at := s.off
		entries, ok, err := s.container()
		if err != nil {
			return out, err
		}
		if !ok {
			s.consume(1)
			continue
		}
		out = append(out, entries...)
		for range entries {
			s.entryAt = append(s.entryAt, at)
		}
		if len(out) > maxEntries {
			return out, fmt.Errorf("more than %d entries", maxEntries)
		}
	}
}

// container parses the container at the start of buf; ok is false when
// the bytes only looked like one.
func (s *streamScanner) container() ([]Entry, bool, error) {
	if len(s.buf) < containerHdrSize+entryHdrMin {
		return nil, false, nil
	}
	le := binary.LittleEndian
	if le.Uint16(s.buf[4:]) != 1 || le.Uint16(s.buf[6:]) != containerHdrSize {
		return nil, false, nil
	}
	body := int64(le.Uint64(s.buf[8:]))
	if body < entryHdrMin || body > 1<<40 {
		return nil, false, nil
	}
	if _, _, _, err := parseEntry(s.buf[containerHdrSize : containerHdrSize+entryHdrMin]); err != nil {
		return nil, false, nil
	}
	s.consume(containerHdrSize)
	var out []Entry
	for left := body; left >= entryHdrMin; {
		if err := s.fill(entryHdrMin); err != nil {
			return out, true, err
		}
		if len(s.buf) < entryHdrMin {
			return out, true, fmt.Errorf("fat binary truncated at offset %d", s.off)
		}
		e, hsize, payload, err := parseEntry(s.buf[:entryHdrMin])
		if err != nil || hsize+payload > left {
			return out, true, fmt.Errorf("corrupt fat binary entry at offset %d", s.off)
		}
		if e.Kind != "" {
			out = append(out, e)
		}
		if err := s.skip(hsize + payload); err != nil {
			return out, true, fmt.Errorf("fat binary truncated at offset %d", s.off)
		}
		left -= hsize + payload
	}
	return out, true, nil
}

// isELF says whether the first bytes are an ELF header.
func isELF(b []byte) bool { return len(b) >= 4 && string(b[:4]) == "\x7fELF" }
