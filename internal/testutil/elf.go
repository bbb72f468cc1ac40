package testutil

import (
	"bytes"
	"encoding/binary"
	"io"
	"sort"
)

// ELFSection is one section of a generated ELF file.
type ELFSection struct {
	Name string
	Size int64
	// Write writes exactly Size bytes of content.
	Write func(w io.Writer) error
}

// WriteELF writes a minimal little-endian ELF64 shared object holding the
// given sections (PROGBITS, 8-aligned) and a section name table, with the
// section header table at the end, as linkers place it.
func WriteELF(w io.Writer, sections []ELFSection) error {
	le := binary.LittleEndian
	var shstr bytes.Buffer
	shstr.WriteByte(0)
	nameOff := make([]uint32, len(sections))
	for i, s := range sections {
		nameOff[i] = uint32(shstr.Len())
		shstr.WriteString(s.Name)
		shstr.WriteByte(0)
	}
	shstrName := uint32(shstr.Len())
	shstr.WriteString(".shstrtab\x00")
	// Layout: header, sections (8-aligned), shstrtab, section headers.
	off := int64(64)
	offsets := make([]int64, len(sections))
	for i, s := range sections {
		off = (off + 7) &^ 7
		offsets[i] = off
		off += s.Size
	}
	shstrOff := off
	off += int64(shstr.Len())
	shoff := (off + 7) &^ 7
	shnum := len(sections) + 2

	hdr := make([]byte, 64)
	copy(hdr, "\x7fELF")
	hdr[4], hdr[5], hdr[6] = 2, 1, 1 // 64-bit, little endian, version 1
	le.PutUint16(hdr[16:], 3)        // ET_DYN
	le.PutUint16(hdr[18:], 62)       // x86-64
	le.PutUint32(hdr[20:], 1)
	le.PutUint64(hdr[40:], uint64(shoff))
	le.PutUint16(hdr[52:], 64) // e_ehsize
	le.PutUint16(hdr[58:], 64) // e_shentsize
	le.PutUint16(hdr[60:], uint16(shnum))
	le.PutUint16(hdr[62:], uint16(shnum-1)) // shstrtab is last
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	pos := int64(64)
	pad := func(to int64) error {
		if to > pos {
			if _, err := w.Write(make([]byte, to-pos)); err != nil {
				return err
			}
			pos = to
		}
		return nil
	}
	for i, s := range sections {
		if err := pad(offsets[i]); err != nil {
			return err
		}
		if err := s.Write(w); err != nil {
			return err
		}
		pos += s.Size
	}
	if _, err := w.Write(shstr.Bytes()); err != nil {
		return err
	}
	pos += int64(shstr.Len())
	if err := pad(shoff); err != nil {
		return err
	}
	sh := func(name, typ uint32, offset, size int64) []byte {
		b := make([]byte, 64)
		le.PutUint32(b[0:], name)
		le.PutUint32(b[4:], typ)
		le.PutUint64(b[8:], 2) // SHF_ALLOC
		le.PutUint64(b[24:], uint64(offset))
		le.PutUint64(b[32:], uint64(size))
		le.PutUint64(b[48:], 8)
		return b
	}
	if _, err := w.Write(make([]byte, 64)); err != nil { // SHN_UNDEF
		return err
	}
	for i, s := range sections {
		if _, err := w.Write(sh(nameOff[i], 1, offsets[i], s.Size)); err != nil {
			return err
		}
	}
	_, err := w.Write(sh(shstrName, 3, shstrOff, int64(shstr.Len())))
	return err
}

// MakeELF builds a small ELF in memory; sections are written in name order.
func MakeELF(sections map[string][]byte) []byte {
	names := make([]string, 0, len(sections))
	for n := range sections {
		names = append(names, n)
	}
	sort.Strings(names)
	var list []ELFSection
	for _, n := range names {
		body := sections[n]
		list = append(list, ELFSection{Name: n, Size: int64(len(body)), Write: func(w io.Writer) error { _, err := w.Write(body); return err }})
	}
	var buf bytes.Buffer
	if err := WriteELF(&buf, list); err != nil {
		panic(err)
	}
	return buf.Bytes()
}
