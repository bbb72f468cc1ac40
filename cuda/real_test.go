package cuda

import (
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

var cuobjdumpName = regexp.MustCompile(`^(ELF|PTX) file\s+\d+: .*\.(sm_\d+[af]?)\.(cubin|ptx)$`)

// parseCuobjdumpList reads `cuobjdump --list-elf --list-ptx` output into
// "sass:sm_80" / "ptx:compute_90" items, in its order.
func parseCuobjdumpList(out string) []string {
	var list []string
	for _, line := range strings.Split(out, "\n") {
		if m := cuobjdumpName.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			kind, arch := "sass", m[2]
			if m[1] == "PTX" {
				kind, arch = "ptx", "compute_"+strings.TrimPrefix(arch, "sm_")
			}
			list = append(list, kind+":"+arch)
		}
	}
	return list
}

// TestScanRealLibraries compares the scanner with cuobjdump on real CUDA
// libraries. It runs where MLENV_CUDA_LIBS lists files (colon-separated)
// and cuobjdump is installed, e.g. on a GPU machine:
//
//	MLENV_CUDA_LIBS=$(ls /usr/local/cuda/lib64/libcublasLt.so.* | head -1) go test ./cuda -run Real -v
func TestScanRealLibraries(t *testing.T) {
	libs := os.Getenv("MLENV_CUDA_LIBS")
	if libs == "" {
		t.Skip("set MLENV_CUDA_LIBS to real CUDA libraries to compare with cuobjdump")
	}
	tool, err := exec.LookPath("cuobjdump")
	if err != nil {
		t.Skip("cuobjdump not found")
	}
	for _, p := range strings.Split(libs, ":") {
		f, err := os.Open(p)
		if err != nil {
			t.Error(err)
			continue
		}
		fi, _ := f.Stat()
		start := time.Now()
		entries, err := ScanELF(f, fi.Size())
		took := time.Since(start)
		f.Close()
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		out, err := exec.Command(tool, "--list-elf", "--list-ptx", p).CombinedOutput()
		if err != nil {
			t.Logf("%s: cuobjdump: %v: %s", p, err, firstLine(string(out)))
		}
		theirs := parseCuobjdumpList(string(out))
		var ours []string
		for _, e := range entries {
			ours = append(ours, e.Kind+":"+e.Arch)
		}
		sort.Strings(theirs)
		sort.Strings(ours)
		t.Logf("%s: %d MB, %d entries, scanned in %v; archs %s", p, fi.Size()>>20, len(entries), took, summarizeList(ours))
		// cuobjdump lists the code the runtime loads: .nv_fatbin, not
		// __nv_relfatbin.
		var loaded []string
		for _, e := range entries {
			if !e.Relocatable {
				loaded = append(loaded, e.Kind+":"+e.Arch)
			}
		}
		sort.Strings(loaded)
		if strings.Join(loaded, " ") != strings.Join(theirs, " ") {
			t.Errorf("%s: mlenv %s\ncuobjdump %s", p, summarizeList(loaded), summarizeList(theirs))
		}
		// The streaming reader (image layers) must agree with the section reader.
		sf, _ := os.Open(p)
		start = time.Now()
		streamed, err := ScanStream(sf)
		stook := time.Since(start)
		sf.Close()
		if err != nil {
			t.Errorf("%s: stream: %v", p, err)
		} else if len(streamed) != len(entries) {
			t.Errorf("%s: stream found %d entries, section reader %d", p, len(streamed), len(entries))
		} else {
			for i := range entries {
				if streamed[i] != entries[i] {
					t.Errorf("%s: entry %d: stream %+v, section %+v", p, i, streamed[i], entries[i])
					break
				}
			}
		}
		t.Logf("%s: stream scan %v", p, stook)
	}
}

func firstLine(s string) string { return strings.SplitN(s, "\n", 2)[0] }

// summarizeList counts each distinct value: "sass:sm_80 x12, ...".
func summarizeList(list []string) string {
	counts := map[string]int{}
	var order []string
	for _, s := range list {
		if counts[s] == 0 {
			order = append(order, s)
		}
		counts[s]++
	}
	var parts []string
	for _, s := range order {
		parts = append(parts, s+" x"+itoa(counts[s]))
	}
	return strings.Join(parts, ", ")
}

func itoa(n int) string { return strconv.Itoa(n) }
