package cuda

import (
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
)

// TestRawHeaderWalkAgreesWithScanner walks the fat binary sections of the
// reference library (and of the files in MLENV_DUMP_LIBS, a research aid
// for the undocumented format) with a bare header walk, independent of
// the scanner, and checks that the scanner finds as many entries. With
// -v it prints a histogram of the raw header fields.
func TestRawHeaderWalkAgreesWithScanner(t *testing.T) {
	libs := []string{"../testdata/reference/fatbin/libtiny.so"}
	if extra := os.Getenv("MLENV_DUMP_LIBS"); extra != "" {
		libs = append(libs, strings.Split(extra, ":")...)
	}
	for _, p := range libs {
		f, err := os.Open(p)
		if err != nil {
			t.Error(err)
			continue
		}
		ef, err := elf.NewFile(f)
		if err != nil {
			t.Error(err)
			continue
		}
		hist := map[string]int{}
		raw := 0
		for _, s := range ef.Sections {
			if s.Name != ".nv_fatbin" && s.Name != "__nv_relfatbin" {
				continue
			}
			hist["section "+s.Name]++
			off, end := int64(s.Offset), int64(s.Offset+s.Size)
			hdr := make([]byte, 16)
			for off+16 <= end {
				f.ReadAt(hdr, off)
				if binary.LittleEndian.Uint32(hdr) != fatbinMagic {
					off += 8
					continue
				}
				hs := int64(binary.LittleEndian.Uint16(hdr[6:]))
				body := int64(binary.LittleEndian.Uint64(hdr[8:]))
				pos, cend := off+hs, off+hs+body
				for pos+64 <= cend {
					eh := make([]byte, 64)
					f.ReadAt(eh, pos)
					le := binary.LittleEndian
					ehs := int64(le.Uint32(eh[4:]))
					pay := int64(le.Uint64(eh[8:]))
					ext := make([]byte, ehs-64)
					f.ReadAt(ext, pos+64)
					key := fmt.Sprintf("kind=%d v=%#x hs=%d w20=%d ver=%d.%d arch=%d name=%d/%d flags=%#x w48=%#x ext=%s",
						le.Uint16(eh[0:]), le.Uint16(eh[2:]), ehs, le.Uint32(eh[20:]), le.Uint16(eh[26:]), le.Uint16(eh[24:]),
						le.Uint32(eh[28:]), le.Uint32(eh[32:]), le.Uint32(eh[36:]), le.Uint64(eh[40:]), le.Uint64(eh[48:]), hex.EncodeToString(ext))
					// First bytes of the payload when not compressed.
					if le.Uint64(eh[40:])&(flagZstd|flagLZ4) == 0 && le.Uint16(eh[0:]) == 2 {
						pl := make([]byte, 64)
						f.ReadAt(pl, pos+ehs)
						key += fmt.Sprintf(" elf_osabi=%d abiver=%d e_flags=%#x", pl[7], pl[8], le.Uint32(pl[48:]))
					}
					hist[key]++
					raw++
					pos += ehs + pay
				}
				off = cend
			}
		}
		var keys []string
		for k := range hist {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fi, _ := f.Stat()
		entries, err := ScanELF(f, fi.Size())
		if err != nil {
			t.Errorf("%s: %v", p, err)
		}
		if raw == 0 || len(entries) != raw {
			t.Errorf("%s: the raw walk found %d entries, the scanner %d", p, raw, len(entries))
		}
		t.Logf("== %s", p)
		for _, k := range keys {
			t.Logf("%6d  %s", hist[k], k)
		}
		f.Close()
	}
}
