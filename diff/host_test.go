package diff

import (
	"strings"
	"testing"

	"github.com/mlenv/mlenv/fingerprint"
)

// gpuHost is a synthetic host with n identical GPUs.
func gpuHost(n int, name, arch, cc, driver, cuda string) *fingerprint.Fingerprint {
	fp := &fingerprint.Fingerprint{Version: 1, Env: map[string]string{},
		CPU: fingerprint.CPU{Vendor: "GenuineIntel", Family: 6, Model: 143, GOARCH: "amd64", X86Level: 4,
			NumericsFeatures: []string{"AVX", "AVX2", "AVX512F", "FMA3"}},
		OS: fingerprint.OS{Kernel: "6.8.0", Glibc: "2.39", Distribution: fingerprint.Distribution{ID: "ubuntu", VersionID: "24.04"}}}
	fp.GPU = fingerprint.GPU{Available: true, DriverVersion: driver, CUDADriverVersion: cuda}
	for i := 0; i < n; i++ {
		fp.GPU.Devices = append(fp.GPU.Devices, fingerprint.Device{Index: i, Name: name, Architecture: arch,
			ComputeCapability: cc, MemoryTotalBytes: 80 << 30, ECC: &fingerprint.ModePair{Current: true},
			MIG: &fingerprint.ModePair{}, Identity: fingerprint.GPUIdentity{UUID: "GPU-" + name + string(rune('0'+i))}})
	}
	return fp
}

func findingsByKey(fs []Finding) map[string]Finding {
	m := map[string]Finding{}
	for _, f := range fs {
		m[f.Key] = f
	}
	return m
}

func TestHostsDriverAndComputeCapabilityConsequences(t *testing.T) {
	a := gpuHost(8, "NVIDIA A100-SXM4-80GB", "Ampere", "8.0", "550.54.15", "12.4")
	b := gpuHost(8, "NVIDIA H100 80GB HBM3", "Hopper", "9.0", "535.104.05", "12.2")
	m := findingsByKey(Hosts(a, b))
	want := map[string]string{
		"gpu.cudaDriverVersion":        "driver 535 on B supports CUDA up to 12.2: an image built for 12.4 will not start there",
		"gpu.device.computeCapability": "compute capability 8.0 vs 9.0: other cuBLAS/cuDNN kernels, bitwise equality not expected",
	}
	for k, c := range want {
		if !strings.HasPrefix(m[k].Consequence, c) {
			t.Errorf("%s: consequence %q, want %q", k, m[k].Consequence, c)
		}
	}
	if m["gpu.cudaDriverVersion"].Group != GroupRun || m["gpu.device.computeCapability"].Group != GroupReproduce {
		t.Errorf("groups: %+v", m)
	}
	// Eight identical GPUs per side: one finding per field, not eight;
	// UUIDs differ but are identities, never compared.
	if _, ok := m["gpu[0].name"]; ok {
		t.Error("homogeneous hosts compared per device")
	}
	if _, ok := m["gpu.count"]; ok {
		t.Error("same count reported")
	}
	// Swapping the sides moves the consequence to A.
	m = findingsByKey(Hosts(b, a))
	if !strings.HasPrefix(m["gpu.cudaDriverVersion"].Consequence, "driver 535 on A supports CUDA up to 12.2") {
		t.Errorf("swapped: %q", m["gpu.cudaDriverVersion"].Consequence)
	}
}

func TestHostsCPUAndEnv(t *testing.T) {
	a := gpuHost(1, "X", "Hopper", "9.0", "570.1", "12.8")
	b := gpuHost(1, "X", "Hopper", "9.0", "570.1", "12.8")
	b.CPU.NumericsFeatures = []string{"AVX", "AVX2", "FMA3"}
	b.CPU.X86Level = 3
	a.Env["NVIDIA_TF32_OVERRIDE"] = "0"
	b.Env["OMP_NUM_THREADS"] = "8"
	fs := Hosts(a, b)
	m := findingsByKey(fs)
	if f := m["cpu.numericsFeatures.AVX512F"]; f.Kind != Removed ||
		f.Consequence != "AVX512F on A only: oneDNN/MKL pick other kernels, float results may differ in the last bits" {
		t.Errorf("AVX512F: %+v", f)
	}
	if f := m["cpu.x86Level"]; f.A != "x86-64-v4" || f.B != "x86-64-v3" || f.Group != GroupRun || !strings.Contains(f.Consequence, "Illegal instruction") {
		t.Errorf("level: %+v", f)
	}
	if f := m["env.NVIDIA_TF32_OVERRIDE"]; f.Kind != Removed || f.A != "0" || !strings.Contains(f.Consequence, "TF32") {
		t.Errorf("TF32: %+v", f)
	}
	if f := m["env.OMP_NUM_THREADS"]; f.Kind != Added || f.B != "8" {
		t.Errorf("OMP: %+v", f)
	}
	if len(fs) != 4 {
		t.Errorf("want exactly 4 findings, got %+v", fs)
	}
	run := Filter(fs, InGroup(GroupRun))
	if len(run) != 1 || run[0].Key != "cpu.x86Level" {
		t.Errorf("run group: %+v", run)
	}
}

func TestHostsMixedGPUsComparedPerDevice(t *testing.T) {
	a := gpuHost(2, "NVIDIA H200", "Hopper", "9.0", "570.1", "12.8")
	b := gpuHost(2, "NVIDIA H200", "Hopper", "9.0", "570.1", "12.8")
	b.GPU.Devices[1].Name, b.GPU.Devices[1].ComputeCapability = "NVIDIA L4", "8.9"
	b.GPU.Devices[1].MIG = &fingerprint.ModePair{Current: true}
	m := findingsByKey(Hosts(a, b))
	if f := m["gpu[1].name"]; f.A != "NVIDIA H200" || f.B != "NVIDIA L4" {
		t.Errorf("per-device name: %+v", m)
	}
	if f := m["gpu[1].migMode"]; f.A != "off" || f.B != "on" {
		t.Errorf("MIG: %+v", f)
	}
	if _, ok := m["gpu[0].name"]; ok {
		t.Error("equal device 0 reported")
	}
}
