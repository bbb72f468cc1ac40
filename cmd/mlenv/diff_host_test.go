//go:build cgo

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlenv/mlenv/fingerprint"
)

// The reference H200 host against the CPU-only host, each turned into a
// fingerprint JSON through the fingerprint package's NVML mocks.
func TestDiffReferenceHosts(t *testing.T) {
	dir := t.TempDir()
	var files []string
	for _, h := range []string{"h200-host", "cpu-only-host"} {
		probe, err := os.ReadFile("../../testdata/reference/" + h + "/nvml-probe.json")
		must(t, err)
		fp, err := fingerprint.FromProbe(probe)
		must(t, err)
		b, err := fp.JSON()
		must(t, err)
		f := filepath.Join(dir, h+".json")
		must(t, os.WriteFile(f, b, 0o644))
		files = append(files, f)
	}
	stdout, stderr, code := run(t, "diff", files[0], files[1])
	if code != 1 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"~ gpu ", "1 × NVIDIA H200", "none (NVML library not found",
		"GPU on A only: CUDA code cannot run on B",
		"~ cpu.vendor", "GenuineIntel", "AuthenticAMD",
		"- cpu.numericsFeatures.AMXBF16", "AMXBF16 on A only: oneDNN runs bf16/int8 matmuls on AMX tiles",
		"AVX512FP16 on A only",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.HasPrefix(stdout, "different: ") {
		t.Errorf("summary is not first:\n%s", stdout)
	}
	t.Log("\n" + stdout)
}
