package cuda

import (
	"bytes"
	"encoding/binary"
	"github.com/mlenv/mlenv/internal/testutil"
	"os"
	"slices"
	"strings"
	"testing"
)

// The reference library built by nvcc 13.0: cuobjdump lists SASS sm_80 and
// sm_90 (twice each: two translation units) and PTX for compute_90.
func TestScanReferenceLibTiny(t *testing.T) {
	f, err := os.Open("../testdata/reference/fatbin/libtiny.so")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	entries, err := ScanELF(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Kind+":"+e.Arch)
	}
	// What nvcc's own cuobjdump listed for this library, in its order.
	listing, err := os.ReadFile("../testdata/reference/fatbin/cuobjdump-list.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := parseCuobjdumpList(string(listing))
	if len(want) == 0 {
		t.Fatal("cuobjdump-list.txt lists nothing")
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("entries %v\ncuobjdump lists %v", got, want)
	}
	ptx := -1
	for i, w := range want {
		if strings.HasPrefix(w, "ptx:") {
			ptx = i
		}
	}
	if ptx < 0 || ptx >= len(entries) {
		t.Fatalf("no PTX entry to check (cuobjdump lists %v)", want)
	}
	// nvcc 13 compresses PTX with zstd (its header declares the size).
	if p := entries[ptx]; !p.Compressed || p.Compression != "zstd" || p.UncompressedSize == 0 {
		t.Errorf("PTX entry %+v", p)
	}
	if entries[0].Compressed || entries[0].Version != "1.8" {
		t.Errorf("SASS entry %+v", entries[0])
	}
	// The stream scanner, which sees the file only once front to back,
	// finds the same entries.
	b, _ := os.ReadFile("../testdata/reference/fatbin/libtiny.so")
	streamed, err := ScanStream(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if len(streamed) != len(entries) {
		t.Fatalf("stream found %d entries, section scan %d", len(streamed), len(entries))
	}
	for i := range entries {
		if streamed[i] != entries[i] {
			t.Errorf("entry %d: stream %+v, section %+v", i, streamed[i], entries[i])
		}
	}
	s := Summarize(map[string][]Entry{"libtiny.so": entries})
	var wantSASS, wantPTX []string
	for _, w := range want {
		kind, arch, _ := strings.Cut(w, ":")
		if kind == "sass" && !slices.Contains(wantSASS, arch) {
			wantSASS = append(wantSASS, arch)
		}
		if kind == "ptx" && !slices.Contains(wantPTX, arch) {
			wantPTX = append(wantPTX, arch)
		}
	}
	slices.Sort(wantSASS)
	slices.Sort(wantPTX)
	if !slices.Equal(s.SASS, wantSASS) || !slices.Equal(s.PTX, wantPTX) {
		t.Errorf("summary %+v", s)
	}
}

// fixtureEntry builds one entry the way nvcc lays it out (see fatbin.go).
func fixtureEntry(kind uint16, arch uint32, payload []byte, compressed bool, uncompressed uint64) []byte {
	hdr := make([]byte, 64)
	le := binary.LittleEndian
	le.PutUint16(hdr[0:], kind)
	le.PutUint16(hdr[2:], 0x0101)
	le.PutUint32(hdr[4:], 64)
	padded := (len(payload) + 7) &^ 7
	le.PutUint64(hdr[8:], uint64(padded))
	flags := uint64(0x11)
	if compressed {
		le.PutUint32(hdr[16:], uint32(len(payload)))
		le.PutUint32(hdr[20:], 64)
		flags |= flagZstd
		le.PutUint64(hdr[56:], uncompressed)
	}
	if kind == kindPTX {
		le.PutUint16(hdr[24:], 8) // PTX ISA 8.8
		le.PutUint16(hdr[26:], 8)
	} else {
		le.PutUint16(hdr[24:], 8) // cubin ABI 1.8
		le.PutUint16(hdr[26:], 1)
	}
	le.PutUint32(hdr[28:], arch)
	le.PutUint64(hdr[40:], flags)
	out := append(hdr, payload...)
	return append(out, make([]byte, padded-len(payload))...)
}

// fixtureContainer wraps entries in a container header.
func fixtureContainer(entries ...[]byte) []byte {
	body := bytes.Join(entries, nil)
	hdr := make([]byte, 16)
	binary.LittleEndian.PutUint32(hdr[0:], fatbinMagic)
	binary.LittleEndian.PutUint16(hdr[4:], 1)
	binary.LittleEndian.PutUint16(hdr[6:], 16)
	binary.LittleEndian.PutUint64(hdr[8:], uint64(len(body)))
	return append(hdr, body...)
}

func TestCompressedEntriesAndSeveralFatbins(t *testing.T) {
	section := append(fixtureContainer(
		fixtureEntry(kindELF, 100, bytes.Repeat([]byte{1}, 1001), true, 4096),
		fixtureEntry(kindPTX, 100, []byte("compressed ptx"), true, 9000),
	), fixtureContainer(
		fixtureEntry(kindELF, 120, bytes.Repeat([]byte{2}, 300), false, 0),
	)...)
	section = append(section, make([]byte, 16)...) // trailing zero padding
	elfFile := testutil.MakeELF(map[string][]byte{".text": []byte("code"), ".nv_fatbin": section, ".data": []byte("data")})
	entries, err := ScanELF(bytes.NewReader(elfFile), int64(len(elfFile)))
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Kind: "sass", Arch: "sm_100", Version: "1.8", Compressed: true, Compression: "zstd", Size: 1008, UncompressedSize: 4096},
		{Kind: "ptx", Arch: "compute_100", Version: "8.8", Compressed: true, Compression: "zstd", Size: 16, UncompressedSize: 9000},
		{Kind: "sass", Arch: "sm_120", Version: "1.8", Size: 304},
	}
	if len(entries) != len(want) {
		t.Fatalf("got %+v", entries)
	}
	for i := range want {
		if entries[i] != want[i] {
			t.Errorf("entry %d: %+v, want %+v", i, entries[i], want[i])
		}
	}
	streamed, err := ScanStream(bytes.NewReader(elfFile))
	if err != nil || len(streamed) != 3 {
		t.Errorf("stream: %v %+v", err, streamed)
	}
}

func TestCorruptFatbinsAreErrors(t *testing.T) {
	good := fixtureContainer(fixtureEntry(kindELF, 80, []byte("x"), false, 0))
	cases := map[string][]byte{
		"container larger than section": func() []byte {
			b := append([]byte(nil), good...)
			binary.LittleEndian.PutUint64(b[8:], 1<<30)
			return b
		}(),
		"entry larger than container": func() []byte {
			b := append([]byte(nil), good...)
			binary.LittleEndian.PutUint64(b[16+8:], 1<<20)
			return b
		}(),
		"bad entry header size": func() []byte {
			b := append([]byte(nil), good...)
			binary.LittleEndian.PutUint32(b[16+4:], 3)
			return b
		}(),
		"garbage": []byte("this is not a fat binary at all!"),
	}
	for name, section := range cases {
		f := testutil.MakeELF(map[string][]byte{".nv_fatbin": section})
		if _, err := ScanELF(bytes.NewReader(f), int64(len(f))); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := ScanELF(bytes.NewReader([]byte("MZ not elf")), 10); err == nil {
		t.Error("non-ELF accepted")
	}
}

func TestCompatibilityRule(t *testing.T) {
	h100, l4, b200, a100 := Capability{9, 0}, Capability{8, 9}, Capability{10, 0}, Capability{8, 0}
	cases := []struct {
		name    string
		targets []string
		gpu     Capability
		want    Outcome
		via     string
	}{
		{"sm_80+sm_90 on H100", []string{"sm_80", "sm_90"}, h100, Runs, "sm_90"},
		{"sm_80+sm_90 on L4 via sm_80", []string{"sm_80", "sm_90"}, l4, Runs, "sm_80"},
		{"sm_80+sm_90 on B200: no kernel", []string{"sm_80", "sm_90"}, b200, NoKernel, ""},
		{"sm_80+sm_90+PTX on B200: JIT", []string{"sm_80", "sm_90", "compute_90"}, b200, RunsJIT, "compute_90"},
		{"sm_90a on H100", []string{"sm_90a"}, h100, Runs, "sm_90a"},
		{"sm_90a on B200", []string{"sm_90a"}, b200, NoKernel, ""},
		{"sm_90 does not run on A100", []string{"sm_90"}, a100, NoKernel, ""},
		{"compute_90a PTX is not forward compatible", []string{"compute_90a"}, b200, NoKernel, ""},
		{"sm_100f on 10.3", []string{"sm_100f"}, Capability{10, 3}, Runs, "sm_100f"},
		{"sm_100f not on 12.0", []string{"sm_100f"}, Capability{12, 0}, NoKernel, ""},
		{"SASS preferred over PTX", []string{"compute_80", "sm_86"}, Capability{8, 6}, Runs, "sm_86"},
	}
	for _, c := range cases {
		v := Check(c.targets, c.gpu)
		if v.Outcome != c.want || v.Target != c.via {
			t.Errorf("%s: %+v, want %s via %q", c.name, v, c.want, c.via)
		}
		if v.Reason == "" {
			t.Errorf("%s: no reason given", c.name)
		}
	}
}

func FuzzScanELF(f *testing.F) {
	tiny, _ := os.ReadFile("../testdata/reference/fatbin/libtiny.so")
	f.Add(testutil.MakeELF(map[string][]byte{".nv_fatbin": fixtureContainer(fixtureEntry(kindELF, 80, []byte("x"), false, 0))}))
	f.Add(tiny[:4096])
	f.Fuzz(func(t *testing.T, b []byte) {
		ScanELF(bytes.NewReader(b), int64(len(b)))
		ScanStream(bytes.NewReader(b))
	})
}

func TestRelocatableAndArchSpecificEntries(t *testing.T) {
	a := fixtureEntry(kindELF, 90, []byte("wgmma kernels"), false, 0)
	le := binary.LittleEndian
	le.PutUint64(a[40:], le.Uint64(a[40:])|flagArchSpecific)
	f := testutil.MakeELF(map[string][]byte{
		".nv_fatbin":     fixtureContainer(a, fixtureEntry(kindELF, 80, []byte("k"), false, 0)),
		"__nv_relfatbin": fixtureContainer(fixtureEntry(kindELF, 75, []byte("rdc"), false, 0)),
		// A blob the library would load itself: not registered by the
		// runtime, not listed by cuobjdump.
		".rodata": fixtureContainer(fixtureEntry(kindELF, 70, []byte("private"), false, 0)),
	})
	section, err := ScanELF(bytes.NewReader(f), int64(len(f)))
	if err != nil {
		t.Fatal(err)
	}
	streamed, err := ScanStream(bytes.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	for name, entries := range map[string][]Entry{"section scan": section, "stream scan": streamed} {
		var got []string
		for _, e := range entries {
			s := e.Arch
			if e.Relocatable {
				s += "(rdc)"
			}
			got = append(got, s)
		}
		// MakeELF writes sections in name order: .nv_fatbin first.
		if strings.Join(got, " ") != "sm_90a sm_80 sm_75(rdc)" {
			t.Errorf("%s: %v", name, got)
		}
		s := Summarize(map[string][]Entry{"lib.so": entries})
		if strings.Join(s.SASS, ",") != "sm_80,sm_90a" {
			t.Errorf("%s: summary counts relocatable code: %v", name, s.SASS)
		}
	}
}
