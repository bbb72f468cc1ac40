//go:build cgo

package fingerprint

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
)

func loadProbe(t *testing.T) probe {
	t.Helper()
	b, err := os.ReadFile("../testdata/reference/h200-host/nvml-probe.json")
	if err != nil {
		t.Fatal(err)
	}
	var p probe
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadGPUMatchesH200ProbeFieldByField(t *testing.T) {
	p := loadProbe(t)
	pd := p.NVML.Devices[0]
	g := ReadGPU(libFromProbe(p, deviceFromProbe(pd)))
	if !g.Available || len(g.Devices) != 1 {
		t.Fatalf("gpu %+v", g)
	}
	d := g.Devices[0]
	checks := []struct {
		field     string
		got, want any
	}{
		{"driverVersion", g.DriverVersion, "580.159.04"},
		{"cudaDriverVersion", g.CUDADriverVersion, "13.0"},
		{"nvmlVersion", g.NVMLVersion, p.NVML.NVMLVersion.Value},
		{"name", d.Name, pd.Name.Value},
		{"brand", d.Brand, "NVIDIA"},
		{"architecture", d.Architecture, "Hopper"},
		{"computeCapability", d.ComputeCapability, pd.ComputeCapability.Value},
		{"memoryTotalBytes", d.MemoryTotalBytes, pd.Memory.Value.Total},
		{"migMode.current", d.MIG.Current, pd.MIGMode.Value[0] == 1},
		{"migMode.pending", d.MIG.Pending, pd.MIGMode.Value[1] == 1},
		{"eccMode.current", d.ECC.Current, pd.ECCMode.Value[0] == 1},
		{"eccMode.pending", d.ECC.Pending, pd.ECCMode.Value[1] == 1},
		{"persistenceMode", *d.PersistenceMode, pd.PersistenceMode.Value == 1},
		{"computeMode", d.ComputeMode, "Default"},
		{"vbios", d.VBIOS, pd.VBIOS.Value},
		{"inforom", d.InfoROM, pd.InfoROM.Value},
		{"gspFirmware", d.GSPFirmware, pd.GSPFirmware.Value},
		{"pciDeviceId", d.PCIDeviceID, pd.PCIDeviceID.Value},
		{"pciSubsystemId", d.PCISubsystemID, pd.PCISubsystemID.Value},
		{"boardPartNumber", d.BoardPartNumber, pd.BoardPartNumber.Value},
		{"powerLimitWatts", d.PowerLimitWatts, float64(pd.PowerLimit.Value) / 1000},
		{"maxSmClockMHz", d.MaxSMClockMHz, pd.MaxSMClock.Value},
		{"maxMemClockMHz", d.MaxMemClockMHz, pd.MaxMemClock.Value},
		{"identity.uuid", d.Identity.UUID, pd.UUID.Value},
		{"identity.serial", d.Identity.Serial, pd.Serial.Value},
		{"volatile.memoryFreeBytes", d.Volatile.MemoryFreeBytes, pd.Memory.Value.Free},
	}
	for _, c := range checks {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s = %v, probe says %v", c.field, c.got, c.want)
		}
	}
	if len(d.Unavailable) != 0 {
		t.Errorf("fields reported unavailable: %v", d.Unavailable)
	}
}

// smiLog is the part of `nvidia-smi -q -x` the fingerprint must agree with.
type smiLog struct {
	DriverVersion string `xml:"driver_version"`
	CUDAVersion   string `xml:"cuda_version"`
	GPUs          []struct {
		ProductName string `xml:"product_name"`
		MIG         struct {
			Current string `xml:"current_mig"`
		} `xml:"mig_mode"`
		ECC struct {
			Current string `xml:"current_ecc"`
		} `xml:"ecc_mode"`
	} `xml:"gpu"`
}

func TestFingerprintAgreesWithNvidiaSmiXML(t *testing.T) {
	b, err := os.ReadFile("../testdata/reference/h200-host/nvidia-smi-q.xml")
	if err != nil {
		t.Fatal(err)
	}
	var smi smiLog
	dec := xml.NewDecoder(strings.NewReader(string(b)))
	dec.Strict = false
	if err := dec.Decode(&smi); err != nil {
		t.Fatal(err)
	}
	csv, _ := os.ReadFile("../testdata/reference/h200-host/nvidia-smi.csv")
	p := loadProbe(t)
	g := ReadGPU(libFromProbe(p, deviceFromProbe(p.NVML.Devices[0])))
	d := g.Devices[0]
	if g.DriverVersion != smi.DriverVersion || g.CUDADriverVersion != smi.CUDAVersion {
		t.Errorf("driver %s / CUDA %s, nvidia-smi says %s / %s", g.DriverVersion, g.CUDADriverVersion, smi.DriverVersion, smi.CUDAVersion)
	}
	if d.Name != smi.GPUs[0].ProductName {
		t.Errorf("name %q vs %q", d.Name, smi.GPUs[0].ProductName)
	}
	if d.MIG.Current != (smi.GPUs[0].MIG.Current == "Enabled") || d.ECC.Current != (smi.GPUs[0].ECC.Current == "Enabled") {
		t.Errorf("MIG %v ECC %v vs nvidia-smi %q %q", d.MIG.Current, d.ECC.Current, smi.GPUs[0].MIG.Current, smi.GPUs[0].ECC.Current)
	}
	// compute_cap only appears in the CSV query.
	row := strings.Split(strings.Split(strings.TrimSpace(string(csv)), "\n")[1], ", ")
	if d.ComputeCapability != row[2] {
		t.Errorf("compute capability %s, nvidia-smi %s", d.ComputeCapability, row[2])
	}
}

func TestInitFailuresSayWhy(t *testing.T) {
	for ret, want := range map[nvml.Return]string{
		nvml.ERROR_LIBRARY_NOT_FOUND: "library not found",
		nvml.ERROR_NO_PERMISSION:     "insufficient permissions",
		nvml.ERROR_DRIVER_NOT_LOADED: "driver not loaded",
	} {
		lib := &mock.Interface{InitFunc: func() nvml.Return { return ret }}
		g := ReadGPU(lib)
		if g.Available || !strings.Contains(g.Reason, want) || len(g.Devices) != 0 {
			t.Errorf("%v: %+v", ret, g)
		}
	}
}

func TestRealNVMLWithoutLibrary(t *testing.T) {
	// On a machine without the driver (CI), the real go-nvml must answer
	// "library not found", not panic.
	if _, err := os.Stat("/dev/nvidiactl"); err == nil {
		t.Skip("an NVIDIA driver is present on this machine")
	}
	g := captureGPU()
	if g.Available || !strings.Contains(g.Reason, "not found") {
		t.Errorf("real NVML without a driver: %+v", g)
	}
}

func TestNotSupportedLeavesOneFieldEmpty(t *testing.T) {
	p := loadProbe(t)
	d := deviceFromProbe(p.NVML.Devices[0])
	d.GetVbiosVersionFunc = func() (string, nvml.Return) { return "", nvml.ERROR_NOT_SUPPORTED }
	d.GetGspFirmwareVersionFunc = func() (string, nvml.Return) { return "", nvml.ERROR_NOT_SUPPORTED }
	d.GetPowerManagementLimitFunc = func() (uint32, nvml.Return) { return 0, nvml.ERROR_NO_PERMISSION }
	g := ReadGPU(libFromProbe(p, d))
	got := g.Devices[0]
	if got.VBIOS != "" || got.GSPFirmware != "" || got.PowerLimitWatts != 0 {
		t.Errorf("unsupported fields filled: %+v", got)
	}
	want := map[string]string{"vbios": "NOT_SUPPORTED", "gspFirmware": "NOT_SUPPORTED", "powerLimitWatts": "NO_PERMISSION"}
	if fmt.Sprint(got.Unavailable) != fmt.Sprint(want) {
		t.Errorf("unavailable = %v, want %v", got.Unavailable, want)
	}
	if got.Name != "NVIDIA H200" || got.ComputeCapability != "9.0" {
		t.Errorf("other fields lost: %+v", got)
	}
}

func TestTwoDifferentGPUs(t *testing.T) {
	p := loadProbe(t)
	h200 := deviceFromProbe(p.NVML.Devices[0])
	l4pd := p.NVML.Devices[0]
	l4pd.Name.Value, l4pd.Architecture.Value, l4pd.ComputeCapability.Value = "NVIDIA L4", 8, "8.9"
	l4pd.Memory.Value.Total = 24 << 30
	l4 := deviceFromProbe(l4pd)
	g := ReadGPU(libFromProbe(p, h200, l4))
	if len(g.Devices) != 2 || g.Devices[0].ComputeCapability != "9.0" || g.Devices[1].ComputeCapability != "8.9" ||
		g.Devices[1].Architecture != "Ada" || g.Devices[1].Index != 1 {
		t.Errorf("devices %+v", g.Devices)
	}
}

func TestMIGEnabledListsInstances(t *testing.T) {
	p := loadProbe(t)
	d := deviceFromProbe(p.NVML.Devices[0])
	d.GetMigModeFunc = func() (int, int, nvml.Return) { return nvml.DEVICE_MIG_ENABLE, nvml.DEVICE_MIG_ENABLE, nvml.SUCCESS }
	d.GetMaxMigDeviceCountFunc = func() (int, nvml.Return) { return 7, nvml.SUCCESS }
	d.GetMigDeviceHandleByIndexFunc = func(i int) (nvml.Device, nvml.Return) {
		if i >= 2 {
			return nil, nvml.ERROR_NOT_FOUND
		}
		return &mock.Device{
			GetNameFunc:       func() (string, nvml.Return) { return "NVIDIA H200 MIG 3g.71gb", nvml.SUCCESS },
			GetMemoryInfoFunc: func() (nvml.Memory, nvml.Return) { return nvml.Memory{Total: 71 << 30}, nvml.SUCCESS },
			GetUUIDFunc:       func() (string, nvml.Return) { return fmt.Sprintf("MIG-%d", i), nvml.SUCCESS },
		}, nvml.SUCCESS
	}
	g := ReadGPU(libFromProbe(p, d))
	dev := g.Devices[0]
	if !dev.MIG.Current || len(dev.MIGDevices) != 2 || dev.MIGDevices[1].Name != "NVIDIA H200 MIG 3g.71gb" || dev.MIGDevices[1].UUID != "MIG-1" {
		t.Errorf("MIG: %+v %+v", dev.MIG, dev.MIGDevices)
	}
	// MIG layout enters the id: a host with MIG on does not match one without.
	plain := &Fingerprint{GPU: ReadGPU(libFromProbe(p, deviceFromProbe(p.NVML.Devices[0])))}
	mig := &Fingerprint{GPU: g}
	if plain.ComputeID() == mig.ComputeID() {
		t.Error("MIG mode does not change the id")
	}
}

// BenchmarkCaptureWithMockedNVML is a whole capture with the H200's NVML
// answers mocked: the cost of mlenv's own work per capture.
func BenchmarkCaptureWithMockedNVML(b *testing.B) {
	raw, _ := os.ReadFile("../testdata/reference/h200-host/nvml-probe.json")
	var p probe
	json.Unmarshal(raw, &p)
	lib := libFromProbe(p, deviceFromProbe(p.NVML.Devices[0]))
	for i := 0; i < b.N; i++ {
		fp := Capture(Options{})
		fp.GPU = ReadGPU(lib)
		fp.ID = fp.ComputeID()
	}
}
