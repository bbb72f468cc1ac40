// Package cuda reads the GPU code that CUDA programs carry (fat binaries
// inside ELF files) and decides whether that code runs on a given GPU.
package cuda

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The fat binary format is not documented by NVIDIA; the layout below was
// checked against nvcc 13.0 output (testdata/reference/fatbin/libtiny.so,
// compared with `cuobjdump --list-elf --list-ptx`).
//
// An ELF's .nv_fatbin section (or __nv_relfatbin in relocatable objects)
// holds one or more containers back to back. A container is
//
//	offset size  field
//	0      4     magic 0xBA55ED50
//	4      2     version (1)
//	6      2     header size (16): where the first entry starts
//	8      8     size of all entries that follow the header
//
// followed by entries, each an entry header and its payload:
//
//	0      2     kind: 1 = PTX text, 2 = ELF (SASS cubin)
//	2      2     entry format version (0x0101)
//	4      4     entry header size (64; 80 or 112 with extensions)
//	8      8     payload size in the file (padded to 8 bytes)
//	16     4     compressed payload size (0 when not compressed)
//	20     4     (unknown; 64 on compressed entries)
//	24     2     minor version: cubin ABI (x.8) or PTX ISA minor
//	26     2     major version
//	28     4     SM architecture number (80 = sm_80 / compute_80)
//	32     8     object name offset and length (0 in nvcc output)
//	40     8     flags: 0x1 64-bit, 0x10 Linux host, 0x2000 LZ4 compressed,
//	             0x8000 zstd compressed, 0x100000 architecture-specific
//	             code (sm_90a; checked against cuobjdump on libcublasLt
//	             13.1: 1376 sm_90a and 1 sm_100a entries carry it, no
//	             other entry does)
//	48     8     (zero)
//	56     8     uncompressed payload size (when compressed)
//
// The next entry starts at entry + header size + payload size; the next
// container at container + 16 + container size.
//
// __nv_relfatbin holds relocatable device code kept for device linking
// (-rdc); the CUDA runtime loads .nv_fatbin. Entries from __nv_relfatbin
// are reported with Relocatable set and left out of coverage summaries,
// as cuobjdump leaves them out of its listing (checked on libnccl 2.28).

const (
	fatbinMagic      = 0xBA55ED50
	containerHdrSize = 16
	entryHdrMin      = 64
	flagLZ4          = 0x2000
	flagZstd         = 0x8000
	flagArchSpecific = 0x100000
	kindPTX          = 1
	kindELF          = 2
	kindELFAlt       = 0x10
)

// Entry is one piece of GPU code inside a fat binary.
type Entry struct {
	// Kind is "sass" (a cubin, machine code) or "ptx" (virtual ISA text).
	Kind string `json:"kind"`
	// Arch is sm_XY for SASS, compute_XY for PTX.
	Arch string `json:"arch"`
	// Version is the cubin ABI version or the PTX ISA version.
	Version          string `json:"version"`
	Compressed       bool   `json:"compressed"`
	Compression      string `json:"compression,omitempty"`
	Size             int64  `json:"size"`
	UncompressedSize int64  `json:"uncompressedSize,omitempty"`
	// Relocatable marks device code from __nv_relfatbin (for nvlink, not
	// loaded by the runtime).
	Relocatable bool `json:"relocatable,omitempty"`
}

// ErrNotELF says a file is not an ELF object.
var ErrNotELF = errors.New("not an ELF file")

// maxEntries bounds the work on hostile input: a real libcublasLt has a
// few thousand entries.
const maxEntries = 1 << 20

// ScanELF lists the GPU code in an ELF file of the given size. It reads
// the ELF and section headers and the fat binary headers only, by offset:
// payloads are skipped, never read.
func ScanELF(r io.ReaderAt, size int64) ([]Entry, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotELF, err)
	}
	var out []Entry
	for _, s := range f.Sections {
		if s.Name != ".nv_fatbin" && s.Name != "__nv_relfatbin" {
			continue
		}
		if s.Type == elf.SHT_NOBITS {
			continue
		}
		if s.Offset > uint64(size) || s.Size > uint64(size)-s.Offset {
			return out, fmt.Errorf("section %s runs past the end of the file", s.Name)
		}
		entries, err := scanSection(r, int64(s.Offset), int64(s.Size))
		if s.Name == "__nv_relfatbin" {
			for i := range entries {
				entries[i].Relocatable = true
			}
		}
		out = append(out, entries...)
		if err != nil {
			return out, fmt.Errorf("section %s: %w", s.Name, err)
		}
	}
	return out, nil
}

// scanSection walks the containers of one fat binary section.
func scanSection(r io.ReaderAt, off, size int64) ([]Entry, error) {
	var out []Entry
	var hdr [containerHdrSize]byte
	end := off + size
	for pos := off; pos+containerHdrSize <= end; {
		if _, err := r.ReadAt(hdr[:], pos); err != nil {
			return out, fmt.Errorf("container at %#x: %w", pos, err)
		}
		if binary.LittleEndian.Uint32(hdr[0:]) != fatbinMagic {
			// Sections are padded with zeros after the last container.
			if bytes.Count(hdr[:], []byte{0}) == len(hdr) {
				pos += 8
				continue
			}
			return out, fmt.Errorf("no fat binary magic at %#x", pos)
		}
		hsize := int64(binary.LittleEndian.Uint16(hdr[6:]))
		body := binary.LittleEndian.Uint64(hdr[8:])
		if hsize < containerHdrSize || body > uint64(end-pos-hsize) {
			return out, fmt.Errorf("container at %#x claims %d bytes, past the section end", pos, body)
		}
		entries, err := scanContainer(r, pos+hsize, int64(body), len(out))
		out = append(out, entries...)
		if err != nil {
			return out, err
		}
		pos += hsize + int64(body)
	}
	return out, nil
}

func scanContainer(r io.ReaderAt, pos, size int64, seen int) ([]Entry, error) {
	var out []Entry
	var eh [entryHdrMin]byte
	for end := pos + size; pos+entryHdrMin <= end; {
		if seen+len(out) >= maxEntries {
			return out, fmt.Errorf("more than %d entries", maxEntries)
		}
		if _, err := r.ReadAt(eh[:], pos); err != nil {
			return out, fmt.Errorf("entry at %#x: %w", pos, err)
		}
		e, hsize, payload, err := parseEntry(eh[:])
		if err != nil {
			return out, fmt.Errorf("entry at %#x: %w", pos, err)
		}
		if hsize+payload > end-pos {
			return out, fmt.Errorf("entry at %#x runs past its container", pos)
		}
		if e.Kind != "" {
			out = append(out, e)
		}
		pos += hsize + payload
	}
	return out, nil
}

// parseEntry decodes one entry header (the first 64 bytes).
func parseEntry(b []byte) (e Entry, hsize, payload int64, err error) {
	le := binary.LittleEndian
	kind := le.Uint16(b[0:])
	hsize = int64(le.Uint32(b[4:]))
	p := le.Uint64(b[8:])
	if hsize < entryHdrMin || hsize > 4096 {
		return e, 0, 0, fmt.Errorf("implausible entry header size %d", hsize)
	}
	if p > 1<<40 {
		return e, 0, 0, fmt.Errorf("implausible payload size %d", p)
	}
	payload = int64(p)
	minor, major := le.Uint16(b[24:]), le.Uint16(b[26:])
	arch := le.Uint32(b[28:])
	flags := le.Uint64(b[40:])
	e.Version = fmt.Sprintf("%d.%d", major, minor)
	e.Size = payload
	switch {
	case flags&flagZstd != 0:
		e.Compressed, e.Compression = true, "zstd"
	case flags&flagLZ4 != 0:
		e.Compressed, e.Compression = true, "lz4"
	}
	if e.Compressed {
		e.UncompressedSize = int64(le.Uint64(b[56:]))
	}
	suffix := ""
	if flags&flagArchSpecific != 0 {
		suffix = "a"
	}
	switch kind {
	case kindPTX:
		e.Kind, e.Arch = "ptx", fmt.Sprintf("compute_%d%s", arch, suffix)
	case kindELF, kindELFAlt:
		e.Kind, e.Arch = "sass", fmt.Sprintf("sm_%d%s", arch, suffix)
	default:
		e.Kind = "" // unknown kinds are skipped, as cuobjdump does
	}
	return e, hsize, payload, nil
}

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
	if stroff < s.ringOff || stroff+strsize > s.ringOff+int64(len(s.ring)) || strsize < 0 {
		return nil, nil, false
	}
	names := s.ring[stroff-s.ringOff : stroff-s.ringOff+strsize]
	for i := 0; i < n; i++ {
		nameOff, off, size := sh(i)
		if int(nameOff) >= len(names) {
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

// Summary is the GPU code of a set of files.
type Summary struct {
	// SASS is the union of SASS architectures, PTX of PTX targets.
	SASS []string `json:"sass"`
	PTX  []string `json:"ptx"`
	// Missing lists, per file, SASS architectures other files have and it
	// lacks: a kernel from it will fail (or JIT) where the others run.
	Missing map[string][]string `json:"missing,omitempty"`
}

// Summarize unions the architectures of per-file entries.
func Summarize(files map[string][]Entry) Summary {
	sass, ptx := map[string]bool{}, map[string]bool{}
	for _, entries := range files {
		for _, e := range entries {
			switch {
			case e.Relocatable:
			case e.Kind == "sass":
				sass[e.Arch] = true
			default:
				ptx[e.Arch] = true
			}
		}
	}
	s := Summary{SASS: sortedArchs(sass), PTX: sortedArchs(ptx)}
	for path, entries := range files {
		have := map[string]bool{}
		for _, e := range entries {
			if e.Kind == "sass" && !e.Relocatable {
				have[e.Arch] = true
			}
		}
		if len(have) == 0 {
			continue
		}
		var missing []string
		for _, a := range s.SASS {
			if !have[a] {
				missing = append(missing, a)
			}
		}
		if len(missing) > 0 && len(missing) < len(s.SASS) {
			if s.Missing == nil {
				s.Missing = map[string][]string{}
			}
			s.Missing[path] = missing
		}
	}
	return s
}

// SortedTargets lists a set of targets in architecture order.
func SortedTargets(set map[string]bool) []string { return sortedArchs(set) }

func sortedArchs(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for a := range set {
		out = append(out, a)
	}
	// Numeric order: sm_80 < sm_90 < sm_100.
	sortByNumber(out)
	return out
}

func sortByNumber(list []string) {
	num := func(s string) (int, string) {
		t, err := ParseTarget(s)
		if err != nil {
			return 0, s
		}
		return t.Major*10 + t.Minor, t.Suffix
	}
	for i := 1; i < len(list); i++ {
		for j := i; j > 0; j-- {
			a, as := num(list[j-1])
			b, bs := num(list[j])
			if a < b || a == b && as <= bs {
				break
			}
			list[j-1], list[j] = list[j], list[j-1]
		}
	}
}

// isELF says whether the first bytes are an ELF header.
func isELF(b []byte) bool { return len(b) >= 4 && string(b[:4]) == "\x7fELF" }
