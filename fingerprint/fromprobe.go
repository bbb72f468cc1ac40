//go:build cgo

package fingerprint

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
)

// This file turns a reference host's nvml-probe.json (testdata/reference/
// */nvml-probe.json: every NVML getter's value and return code, CPUID, and
// os-release as captured on the real host) into a Fingerprint through the
// same code a capture runs: NVML answers go through go-nvml's mocks into
// ReadGPU. It exists so that other packages' tests (diff, verify) compare
// the real reference hosts rather than hand-written fingerprints. The
// linker drops it from binaries that do not call it.

// FromProbe builds the fingerprint of the host that wrote probeJSON.
// Identities and volatile values come along as the probe has them; the
// environment is empty (the probe does not record it).
func FromProbe(probeJSON []byte) (*Fingerprint, error) {
	var p probe
	if err := json.Unmarshal(probeJSON, &p); err != nil {
		return nil, fmt.Errorf("reading NVML probe: %w", err)
	}
	fp := &Fingerprint{Version: SchemaVersion, Env: map[string]string{}}
	var devices []nvml.Device
	for _, pd := range p.NVML.Devices {
		devices = append(devices, deviceFromProbe(pd))
	}
	lib := libFromProbe(p, devices...)
	if p.NVML.Init != "" && p.NVML.Init != "Success" {
		initRet := nvml.ERROR_UNKNOWN
		if p.NVML.Init == "ERROR_LIBRARY_NOT_FOUND" {
			initRet = nvml.ERROR_LIBRARY_NOT_FOUND
		}
		lib.InitFunc = func() nvml.Return { return initRet }
	}
	fp.GPU = ReadGPU(lib)
	c := p.CPU
	fp.CPU = CPU{Vendor: c.Vendor, Brand: strings.TrimSpace(c.Brand), Family: c.Family, Model: c.Model,
		Stepping: c.Stepping, PhysicalCores: c.PhysicalCores, LogicalCores: c.LogicalCores,
		GOARCH: c.GOARCH, X86Level: c.X86Level, Features: append([]string(nil), c.Features...)}
	sort.Strings(fp.CPU.Features)
	fp.CPU.NumericsFeatures = NumericsSubset(fp.CPU.Features)
	fp.OS.Distribution = ParseOSRelease([]byte(p.OSRelease))
	if f := strings.Fields(p.ProcVersion); len(f) >= 3 && f[0] == "Linux" && f[1] == "version" {
		fp.OS.Kernel = f[2]
	}
	fp.ID = fp.ComputeID()
	return fp, nil
}

// probe is a reference host's nvml-probe.json: each getter's
// value and return code.
type probe struct {
	NVML struct {
		Init              string           `json:"init"`
		Count             probeVal[int]    `json:"count"`
		CUDADriverVersion probeVal[int]    `json:"cuda_driver_version"`
		DriverVersion     probeVal[string] `json:"driver_version"`
		NVMLVersion       probeVal[string] `json:"nvml_version"`
		Devices           []probeDevice    `json:"devices"`
	} `json:"nvml"`
	CPU struct {
		Vendor        string   `json:"vendor"`
		Brand         string   `json:"brand"`
		Family        int      `json:"family"`
		Model         int      `json:"model"`
		Stepping      int      `json:"stepping"`
		PhysicalCores int      `json:"physical_cores"`
		LogicalCores  int      `json:"logical_cores"`
		GOARCH        string   `json:"goarch"`
		X86Level      int      `json:"x86_level"`
		Features      []string `json:"features"`
	} `json:"cpu"`
	OSRelease   string `json:"os_release"`
	ProcVersion string `json:"proc_version"`
}

type probeVal[T any] struct {
	Value T      `json:"value"`
	Ret   string `json:"ret"`
}

type probeDevice struct {
	Architecture      probeVal[int]         `json:"architecture"`
	BoardPartNumber   probeVal[string]      `json:"board_part_number"`
	Brand             probeVal[int]         `json:"brand"`
	ComputeCapability probeVal[string]      `json:"compute_capability"`
	ComputeMode       probeVal[int]         `json:"compute_mode"`
	ECCMode           probeVal[[2]int]      `json:"ecc_mode"`
	GSPFirmware       probeVal[string]      `json:"gsp_firmware"`
	InfoROM           probeVal[string]      `json:"inforom_image"`
	MaxMemClock       probeVal[uint32]      `json:"max_mem_clock_mhz"`
	MaxSMClock        probeVal[uint32]      `json:"max_sm_clock_mhz"`
	Memory            probeVal[nvml.Memory] `json:"memory"`
	MIGMode           probeVal[[2]int]      `json:"mig_mode"`
	Name              probeVal[string]      `json:"name"`
	PCIDeviceID       probeVal[string]      `json:"pci_device_id"`
	PCISubsystemID    probeVal[string]      `json:"pci_subsystem_id"`
	PersistenceMode   probeVal[int]         `json:"persistence_mode"`
	PowerLimit        probeVal[uint32]      `json:"power_limit_mw"`
	Serial            probeVal[string]      `json:"serial"`
	UUID              probeVal[string]      `json:"uuid"`
	VBIOS             probeVal[string]      `json:"vbios"`
}

func ret(s string) nvml.Return {
	if s == "Success" || s == "" {
		return nvml.SUCCESS
	}
	return nvml.ERROR_NOT_SUPPORTED
}

func hexID(s string) uint32 {
	var v uint32
	fmt.Sscanf(s, "0x%x", &v)
	return v
}

// deviceFromProbe is a go-nvml mock device answering with the probe's values.
func deviceFromProbe(pd probeDevice) *mock.Device {
	var major, minor int
	fmt.Sscanf(pd.ComputeCapability.Value, "%d.%d", &major, &minor)
	return &mock.Device{
		GetNameFunc:  func() (string, nvml.Return) { return pd.Name.Value, ret(pd.Name.Ret) },
		GetBrandFunc: func() (nvml.BrandType, nvml.Return) { return nvml.BrandType(pd.Brand.Value), ret(pd.Brand.Ret) },
		GetArchitectureFunc: func() (nvml.DeviceArchitecture, nvml.Return) {
			return nvml.DeviceArchitecture(pd.Architecture.Value), ret(pd.Architecture.Ret)
		},
		GetCudaComputeCapabilityFunc: func() (int, int, nvml.Return) {
			return major, minor, ret(pd.ComputeCapability.Ret)
		},
		GetMemoryInfoFunc: func() (nvml.Memory, nvml.Return) { return pd.Memory.Value, ret(pd.Memory.Ret) },
		GetMigModeFunc: func() (int, int, nvml.Return) {
			return pd.MIGMode.Value[0], pd.MIGMode.Value[1], ret(pd.MIGMode.Ret)
		},
		GetEccModeFunc: func() (nvml.EnableState, nvml.EnableState, nvml.Return) {
			return nvml.EnableState(pd.ECCMode.Value[0]), nvml.EnableState(pd.ECCMode.Value[1]), ret(pd.ECCMode.Ret)
		},
		GetPersistenceModeFunc: func() (nvml.EnableState, nvml.Return) {
			return nvml.EnableState(pd.PersistenceMode.Value), ret(pd.PersistenceMode.Ret)
		},
		GetComputeModeFunc: func() (nvml.ComputeMode, nvml.Return) {
			return nvml.ComputeMode(pd.ComputeMode.Value), ret(pd.ComputeMode.Ret)
		},
		GetVbiosVersionFunc:        func() (string, nvml.Return) { return pd.VBIOS.Value, ret(pd.VBIOS.Ret) },
		GetInforomImageVersionFunc: func() (string, nvml.Return) { return pd.InfoROM.Value, ret(pd.InfoROM.Ret) },
		GetGspFirmwareVersionFunc:  func() (string, nvml.Return) { return pd.GSPFirmware.Value, ret(pd.GSPFirmware.Ret) },
		GetPciInfoFunc: func() (nvml.PciInfo, nvml.Return) {
			return nvml.PciInfo{PciDeviceId: hexID(pd.PCIDeviceID.Value), PciSubSystemId: hexID(pd.PCISubsystemID.Value)}, ret(pd.PCIDeviceID.Ret)
		},
		GetBoardPartNumberFunc:      func() (string, nvml.Return) { return pd.BoardPartNumber.Value, ret(pd.BoardPartNumber.Ret) },
		GetPowerManagementLimitFunc: func() (uint32, nvml.Return) { return pd.PowerLimit.Value, ret(pd.PowerLimit.Ret) },
		GetMaxClockInfoFunc: func(c nvml.ClockType) (uint32, nvml.Return) {
			if c == nvml.CLOCK_SM {
				return pd.MaxSMClock.Value, ret(pd.MaxSMClock.Ret)
			}
			return pd.MaxMemClock.Value, ret(pd.MaxMemClock.Ret)
		},
		GetUUIDFunc:   func() (string, nvml.Return) { return pd.UUID.Value, ret(pd.UUID.Ret) },
		GetSerialFunc: func() (string, nvml.Return) { return pd.Serial.Value, ret(pd.Serial.Ret) },
	}
}

// libFromProbe is a go-nvml mock library for the probe's host.
func libFromProbe(p probe, devices ...nvml.Device) *mock.Interface {
	return &mock.Interface{
		InitFunc:                          func() nvml.Return { return nvml.SUCCESS },
		ShutdownFunc:                      func() nvml.Return { return nvml.SUCCESS },
		SystemGetDriverVersionFunc:        func() (string, nvml.Return) { return p.NVML.DriverVersion.Value, nvml.SUCCESS },
		SystemGetCudaDriverVersion_v2Func: func() (int, nvml.Return) { return p.NVML.CUDADriverVersion.Value, nvml.SUCCESS },
		SystemGetNVMLVersionFunc:          func() (string, nvml.Return) { return p.NVML.NVMLVersion.Value, nvml.SUCCESS },
		DeviceGetCountFunc:                func() (int, nvml.Return) { return len(devices), nvml.SUCCESS },
		DeviceGetHandleByIndexFunc: func(i int) (nvml.Device, nvml.Return) {
			return devices[i], nvml.SUCCESS
		},
	}
}
