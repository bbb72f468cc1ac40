package fingerprint

import (
	"bufio"
	"encoding/json"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestCPUMatchesProcCpuinfoOnThisMachine(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("compares CPUID with /proc/cpuinfo on linux/amd64")
	}
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		t.Skip("no /proc/cpuinfo")
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var flags string
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "flags") {
			flags = sc.Text()[strings.Index(sc.Text(), ":")+1:]
			break
		}
	}
	fp := Capture(Options{})
	got := strings.Join(ComparableNumerics(fp.CPU.NumericsFeatures), " ")
	want := strings.Join(NumericsFromCpuinfo(flags), " ")
	if got != want {
		t.Errorf("fingerprint numerics features:\n  %s\n/proc/cpuinfo:\n  %s", got, want)
	}
	if fp.CPU.X86Level < 1 || fp.CPU.Vendor == "" {
		t.Errorf("cpu %+v", fp.CPU)
	}
}

// The reference hosts' CPUID (from the probe) and /proc/cpuinfo agree
// through the same mapping.
func TestCPUMappingOnReferenceHosts(t *testing.T) {
	for _, host := range []string{"h200-host", "cpu-only-host"} {
		b, err := os.ReadFile("../testdata/reference/" + host + "/nvml-probe.json")
		if err != nil {
			t.Fatal(err)
		}
		var p struct {
			CPU struct {
				Features []string `json:"features"`
				X86Level int      `json:"x86_level"`
			} `json:"cpu"`
		}
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatalf("%s: nvml-probe.json: %v", host, err)
		}
		flags, err := os.ReadFile("../testdata/reference/" + host + "/proc-cpuinfo-flags.txt")
		if err != nil {
			t.Fatal(err)
		}
		// Both sides empty would compare equal and prove nothing.
		if len(p.CPU.Features) == 0 || len(strings.TrimSpace(string(flags))) == 0 {
			t.Fatalf("%s: reference data without CPU features (%d) or flags (%d bytes)", host, len(p.CPU.Features), len(flags))
		}
		got := strings.Join(ComparableNumerics(NumericsSubset(p.CPU.Features)), " ")
		want := strings.Join(NumericsFromCpuinfo(string(flags)), " ")
		if got != want {
			t.Errorf("%s: cpuid %s\ncpuinfo %s", host, got, want)
		}
		if host == "h200-host" && !strings.Contains(got, "AMXBF16") {
			t.Errorf("H200 host: AMX missing from %s", got)
		}
	}
}

func TestIDStableAndSensitiveToWhatMatters(t *testing.T) {
	fixed := func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }
	env := map[string]string{"OMP_NUM_THREADS": "8"}
	o := Options{Now: fixed, Getenv: func(k string) string { return env[k] }}
	a, b := Capture(o), Capture(Options{Now: time.Now, Getenv: o.Getenv})
	if a.ID == "" || a.ID != b.ID {
		t.Fatalf("two captures differ: %s vs %s", a.ID, b.ID)
	}
	if !strings.HasPrefix(a.ID, "sha256:") {
		t.Errorf("id %q", a.ID)
	}
	fp := sampleFingerprint()
	base := fp.ComputeID()
	// Volatile values, identities and timestamps do not count.
	fp.GPU.Devices[0].Volatile.MemoryFreeBytes = 1
	fp.GPU.Devices[0].Identity.UUID = "GPU-other"
	fp.GPU.Devices[0].PowerLimitWatts = 500
	fp.CapturedAt = "2030-01-01T00:00:00Z"
	fp.Identity = &HostIdentity{Hostname: "elsewhere"}
	if fp.ComputeID() != base {
		t.Error("a volatile or identity field changed the id")
	}
	// The driver does.
	fp.GPU.DriverVersion = "575.51.03"
	if fp.ComputeID() == base {
		t.Error("changing the driver version did not change the id")
	}
	fp = sampleFingerprint()
	fp.Env["NVIDIA_TF32_OVERRIDE"] = "0"
	if fp.ComputeID() == base {
		t.Error("a numerics env var did not change the id")
	}
	fp = sampleFingerprint()
	fp.CPU.NumericsFeatures = []string{"AVX2"}
	if fp.ComputeID() == base {
		t.Error("CPU features did not change the id")
	}
}

func sampleFingerprint() *Fingerprint {
	on := true
	return &Fingerprint{Version: 1,
		GPU: GPU{Available: true, DriverVersion: "580.159.04", CUDADriverVersion: "13.0", Devices: []Device{{
			Name: "NVIDIA H200", Architecture: "Hopper", ComputeCapability: "9.0", MemoryTotalBytes: 150754820096,
			MIG: &ModePair{}, ECC: &ModePair{Current: true, Pending: true}, PersistenceMode: &on,
			Volatile: &Volatile{MemoryFreeBytes: 5}, Identity: GPUIdentity{UUID: "GPU-1"}}}},
		CPU: CPU{Vendor: "GenuineIntel", Family: 6, Model: 207, GOARCH: "amd64", X86Level: 4, NumericsFeatures: []string{"AVX2", "AVX512F"}},
		OS:  OS{Distribution: Distribution{ID: "ubuntu", VersionID: "24.04"}, Glibc: "2.39"},
		Env: map[string]string{"OMP_NUM_THREADS": "8"},
	}
}

func TestOSReleaseAndEnv(t *testing.T) {
	b, _ := os.ReadFile("../testdata/reference/h200-host/os-release.txt")
	d := ParseOSRelease(b)
	if d.ID != "ubuntu" || d.VersionID != "24.04" || d.PrettyName != "Ubuntu 24.04.3 LTS" {
		t.Errorf("os-release: %+v", d)
	}
	env := map[string]string{"CUBLAS_WORKSPACE_CONFIG": ":4096:8", "HOME": "/root", "KUBERNETES_SERVICE_HOST": "10.0.0.1"}
	fp := Capture(Options{Getenv: func(k string) string { return env[k] }})
	if fp.Env["CUBLAS_WORKSPACE_CONFIG"] != ":4096:8" || len(fp.Env) != 1 {
		t.Errorf("env %v: only numerics variables are recorded", fp.Env)
	}
	if !fp.OS.Container.Kubernetes {
		t.Error("KUBERNETES_SERVICE_HOST not noticed")
	}
	if runtime.GOOS == "linux" && fp.OS.Kernel == "" {
		t.Error("kernel release missing")
	}
	if _, err := os.Stat("/lib/x86_64-linux-gnu/libc.so.6"); err == nil && fp.OS.Glibc == "" {
		t.Error("glibc version not found")
	}
}

func TestJSONIsCanonical(t *testing.T) {
	fp := sampleFingerprint()
	fp.ID = fp.ComputeID()
	a, err := fp.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var back Fingerprint
	if err := json.Unmarshal(a, &back); err != nil {
		t.Fatal(err)
	}
	b, _ := back.JSON()
	if string(a) != string(b) || back.ComputeID() != fp.ID {
		t.Error("fingerprint JSON does not round-trip")
	}
}

func BenchmarkCapture(b *testing.B) {
	for i := 0; i < b.N; i++ {
		Capture(Options{})
	}
}

// BenchmarkReadProcCpuinfo is the baseline: reading /proc/cpuinfo once.
func BenchmarkReadProcCpuinfo(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if _, err := os.ReadFile("/proc/cpuinfo"); err != nil {
			b.Skip(err)
		}
	}
}
