//go:build cgo

// The reference hosts become fingerprints through go-nvml's mocks
// (fingerprint.FromProbe), which need cgo; host_test.go covers the engine
// without cgo.

package diff

import (
	"os"
	"strings"
	"testing"

	"github.com/mlenv/mlenv/fingerprint"
)

func refHost(t testing.TB, name string) *fingerprint.Fingerprint {
	t.Helper()
	b, err := os.ReadFile("../testdata/reference/" + name + "/nvml-probe.json")
	if err != nil {
		t.Fatal(err)
	}
	fp, err := fingerprint.FromProbe(b)
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

func TestH200AgainstCPUOnlyHost(t *testing.T) {
	h200, cpu := refHost(t, "h200-host"), refHost(t, "cpu-only-host")
	fs := Hosts(h200, cpu)
	byKey := map[string]Finding{}
	for _, f := range fs {
		byKey[f.Key] = f
		if f.Section != SectionHost || f.Group == "" {
			t.Errorf("finding without section or group: %+v", f)
		}
	}
	gpu, ok := byKey["gpu"]
	if !ok || !strings.Contains(gpu.A, "1 × NVIDIA H200") || !strings.Contains(gpu.B, "none") ||
		!strings.Contains(gpu.B, "library not found") || gpu.Group != GroupRun || !strings.Contains(gpu.Consequence, "GPU on A only") {
		t.Errorf("GPU present vs absent: %+v", gpu)
	}
	if v := byKey["cpu.vendor"]; v.A != "GenuineIntel" || v.B != "AuthenticAMD" || v.Consequence == "" {
		t.Errorf("vendor: %+v", v)
	}
	// The H200 host has AMX and AVX512-FP16, the Turin-like one has neither.
	for _, f := range []string{"AMXBF16", "AMXINT8", "AMXTILE", "AVX512FP16"} {
		got := byKey["cpu.numericsFeatures."+f]
		if got.Kind != Removed || !strings.HasPrefix(got.Consequence, f+" on A only: ") {
			t.Errorf("%s: %+v", f, got)
		}
	}
	// Features both have are not reported.
	for _, f := range []string{"AVX512F", "AVX2", "FMA3"} {
		if _, ok := byKey["cpu.numericsFeatures."+f]; ok {
			t.Errorf("%s is on both hosts but reported", f)
		}
	}
	if _, ok := byKey["cpu.x86Level"]; ok {
		t.Error("both hosts are x86-64-v4, level reported")
	}
	if k := byKey["os.kernel"]; k.A != "6.18.44-fc-v657-gpu" || k.B != "6.18.44-fc-v782" {
		t.Errorf("kernel: %+v", k)
	}
	if d := byKey["os.distribution"]; d.A != "ubuntu 24.04" || d.B != "debian 12" {
		t.Errorf("distribution: %+v", d)
	}
	// No driver findings: the GPU finding says it all.
	if _, ok := byKey["gpu.driverVersion"]; ok {
		t.Error("driver compared although B has no GPU")
	}
}

func TestSameReferenceHostHasNoFindings(t *testing.T) {
	for _, h := range []string{"h200-host", "cpu-only-host"} {
		if fs := Hosts(refHost(t, h), refHost(t, h)); len(fs) != 0 {
			t.Errorf("%s against itself: %+v", h, fs)
		}
	}
}
