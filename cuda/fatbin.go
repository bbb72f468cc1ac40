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
