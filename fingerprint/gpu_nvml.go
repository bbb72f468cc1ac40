//go:build cgo

package fingerprint

import (
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

func captureGPU() GPU {
	return ReadGPU(nvml.New())
}

// ReadGPU reads every GPU through an NVML interface (the real library, or
// go-nvml's mocks in tests). Only a failed Init means "no GPU readable";
// any other failing call leaves its one field empty, with the reason.
func ReadGPU(lib nvml.Interface) GPU {
	g := GPU{Devices: []Device{}}
	if ret := lib.Init(); ret != nvml.SUCCESS {
		g.Reason = initReason(ret)
		return g
	}
	defer lib.Shutdown()
	g.Available = true
	miss := func(field string, ret nvml.Return) {
		if g.Unavailable == nil {
			g.Unavailable = map[string]string{}
		}
		g.Unavailable[field] = retName(ret)
	}
	if v, ret := lib.SystemGetDriverVersion(); ret == nvml.SUCCESS {
		g.DriverVersion = v
	} else {
		miss("driverVersion", ret)
	}
	if v, ret := lib.SystemGetCudaDriverVersion_v2(); ret == nvml.SUCCESS {
		g.CUDADriverVersion = FormatCUDAVersion(v)
	} else {
		miss("cudaDriverVersion", ret)
	}
	if v, ret := lib.SystemGetNVMLVersion(); ret == nvml.SUCCESS {
		g.NVMLVersion = v
	} else {
		miss("nvmlVersion", ret)
	}
	n, ret := lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		miss("devices", ret)
		return g
	}
	for i := 0; i < n; i++ {
		dev, ret := lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			g.Devices = append(g.Devices, Device{Index: i, Unavailable: map[string]string{"device": retName(ret)}})
			continue
		}
		g.Devices = append(g.Devices, readDevice(i, dev))
	}
	return g
}

// FormatCUDAVersion turns NVML's 13000 into "13.0" (major = v/1000,
// minor = v%1000/10).
func FormatCUDAVersion(v int) string {
	return formatCUDA(v)
}

func readDevice(i int, dev nvml.Device) Device {
	d := Device{Index: i}
	miss := func(field string, ret nvml.Return) {
		if d.Unavailable == nil {
			d.Unavailable = map[string]string{}
		}
		d.Unavailable[field] = retName(ret)
	}
	str := func(field string, get func() (string, nvml.Return), dst *string) {
		if v, ret := get(); ret == nvml.SUCCESS {
			*dst = v
		} else {
			miss(field, ret)
		}
	}
	str("name", dev.GetName, &d.Name)
	if b, ret := dev.GetBrand(); ret == nvml.SUCCESS {
		d.Brand = brandName(b)
	} else {
		miss("brand", ret)
	}
	if a, ret := dev.GetArchitecture(); ret == nvml.SUCCESS {
		d.Architecture = archName(a)
	} else {
		miss("architecture", ret)
	}
	if major, minor, ret := dev.GetCudaComputeCapability(); ret == nvml.SUCCESS {
		d.ComputeCapability = fmt.Sprintf("%d.%d", major, minor)
	} else {
		miss("computeCapability", ret)
	}
	if m, ret := dev.GetMemoryInfo(); ret == nvml.SUCCESS {
		d.MemoryTotalBytes = m.Total
		d.Volatile = &Volatile{MemoryUsedBytes: m.Used, MemoryFreeBytes: m.Free}
	} else {
		miss("memoryTotalBytes", ret)
	}
	if cur, pend, ret := dev.GetMigMode(); ret == nvml.SUCCESS {
		d.MIG = &ModePair{Current: cur == nvml.DEVICE_MIG_ENABLE, Pending: pend == nvml.DEVICE_MIG_ENABLE}
		if d.MIG.Current {
			d.MIGDevices, _ = readMIG(dev, miss)
		}
	} else {
		miss("migMode", ret)
	}
	if cur, pend, ret := dev.GetEccMode(); ret == nvml.SUCCESS {
		d.ECC = &ModePair{Current: cur == nvml.FEATURE_ENABLED, Pending: pend == nvml.FEATURE_ENABLED}
	} else {
		miss("eccMode", ret)
	}
	if p, ret := dev.GetPersistenceMode(); ret == nvml.SUCCESS {
		on := p == nvml.FEATURE_ENABLED
		d.PersistenceMode = &on
	} else {
		miss("persistenceMode", ret)
	}
	if m, ret := dev.GetComputeMode(); ret == nvml.SUCCESS {
		d.ComputeMode = computeModeName(m)
	} else {
		miss("computeMode", ret)
	}
	str("vbios", dev.GetVbiosVersion, &d.VBIOS)
	str("inforom", dev.GetInforomImageVersion, &d.InfoROM)
	if v, ret := dev.GetGspFirmwareVersion(); ret == nvml.SUCCESS {
		d.GSPFirmware = v
	} else {
		miss("gspFirmware", ret)
	}
	if p, ret := dev.GetPciInfo(); ret == nvml.SUCCESS {
		d.PCIDeviceID = fmt.Sprintf("0x%08x", p.PciDeviceId)
		d.PCISubsystemID = fmt.Sprintf("0x%08x", p.PciSubSystemId)
	} else {
		miss("pciDeviceId", ret)
	}
	str("boardPartNumber", dev.GetBoardPartNumber, &d.BoardPartNumber)
	if mw, ret := dev.GetPowerManagementLimit(); ret == nvml.SUCCESS {
		d.PowerLimitWatts = float64(mw) / 1000
	} else {
		miss("powerLimitWatts", ret)
	}
	if c, ret := dev.GetMaxClockInfo(nvml.CLOCK_SM); ret == nvml.SUCCESS {
		d.MaxSMClockMHz = c
	} else {
		miss("maxSmClockMHz", ret)
	}
	if c, ret := dev.GetMaxClockInfo(nvml.CLOCK_MEM); ret == nvml.SUCCESS {
		d.MaxMemClockMHz = c
	} else {
		miss("maxMemClockMHz", ret)
	}
	str("uuid", dev.GetUUID, &d.Identity.UUID)
	str("serial", dev.GetSerial, &d.Identity.Serial)
	return d
}

func readMIG(dev nvml.Device, miss func(string, nvml.Return)) ([]MIGDevice, error) {
	n, ret := dev.GetMaxMigDeviceCount()
	if ret != nvml.SUCCESS {
		miss("migDevices", ret)
		return nil, ret
	}
	var out []MIGDevice
	for i := 0; i < n; i++ {
		md, ret := dev.GetMigDeviceHandleByIndex(i)
		if ret == nvml.ERROR_NOT_FOUND {
			continue // an empty slot
		}
		if ret != nvml.SUCCESS {
			miss(fmt.Sprintf("migDevices[%d]", i), ret)
			continue
		}
		m := MIGDevice{Index: i}
		if name, ret := md.GetName(); ret == nvml.SUCCESS {
			m.Name = name
		}
		if mem, ret := md.GetMemoryInfo(); ret == nvml.SUCCESS {
			m.MemoryTotalBytes = mem.Total
		}
		if u, ret := md.GetUUID(); ret == nvml.SUCCESS {
			m.UUID = u
		}
		out = append(out, m)
	}
	return out, nil
}

// initReason explains why NVML could not start, in words a user acts on.
func initReason(ret nvml.Return) string {
	switch ret {
	case nvml.ERROR_LIBRARY_NOT_FOUND:
		return "NVML library not found (libnvidia-ml.so.1): no NVIDIA driver installed, or not mounted into this container"
	case nvml.ERROR_DRIVER_NOT_LOADED:
		return "NVIDIA driver not loaded: the kernel module is not running"
	case nvml.ERROR_NO_PERMISSION:
		return "insufficient permissions to talk to the NVIDIA driver (check /dev/nvidia* access)"
	}
	return "NVML could not be initialised: " + retName(ret)
}

// retName is a stable name for an NVML return code (the real library's
// strings differ from the mock's, so neither is used).
func retName(ret nvml.Return) string {
	switch ret {
	case nvml.ERROR_NOT_SUPPORTED:
		return "NOT_SUPPORTED"
	case nvml.ERROR_NO_PERMISSION:
		return "NO_PERMISSION"
	case nvml.ERROR_GPU_IS_LOST:
		return "GPU_IS_LOST"
	case nvml.ERROR_NOT_FOUND:
		return "NOT_FOUND"
	case nvml.ERROR_INVALID_ARGUMENT:
		return "INVALID_ARGUMENT"
	case nvml.ERROR_UNINITIALIZED:
		return "UNINITIALIZED"
	case nvml.ERROR_FUNCTION_NOT_FOUND:
		return "FUNCTION_NOT_FOUND (driver too old for this call)"
	case nvml.ERROR_UNKNOWN:
		return "UNKNOWN"
	}
	return fmt.Sprintf("NVML_ERROR_%d", int(ret))
}

func archName(a nvml.DeviceArchitecture) string {
	names := map[nvml.DeviceArchitecture]string{
		nvml.DEVICE_ARCH_KEPLER: "Kepler", nvml.DEVICE_ARCH_MAXWELL: "Maxwell", nvml.DEVICE_ARCH_PASCAL: "Pascal",
		nvml.DEVICE_ARCH_VOLTA: "Volta", nvml.DEVICE_ARCH_TURING: "Turing", nvml.DEVICE_ARCH_AMPERE: "Ampere",
		nvml.DEVICE_ARCH_ADA: "Ada", nvml.DEVICE_ARCH_HOPPER: "Hopper", nvml.DEVICE_ARCH_BLACKWELL: "Blackwell",
	}
	if n, ok := names[a]; ok {
		return n
	}
	return fmt.Sprintf("arch-%d", int(a))
}

func brandName(b nvml.BrandType) string {
	names := map[nvml.BrandType]string{
		nvml.BRAND_TESLA: "Tesla", nvml.BRAND_QUADRO: "Quadro", nvml.BRAND_GEFORCE: "GeForce",
		nvml.BRAND_NVIDIA: "NVIDIA", nvml.BRAND_NVIDIA_RTX: "NVIDIA RTX", nvml.BRAND_TITAN: "Titan",
	}
	if n, ok := names[b]; ok {
		return n
	}
	return fmt.Sprintf("brand-%d", int(b))
}

func computeModeName(m nvml.ComputeMode) string {
	switch m {
	case nvml.COMPUTEMODE_DEFAULT:
		return "Default"
	case nvml.COMPUTEMODE_EXCLUSIVE_THREAD:
		return "ExclusiveThread"
	case nvml.COMPUTEMODE_PROHIBITED:
		return "Prohibited"
	case nvml.COMPUTEMODE_EXCLUSIVE_PROCESS:
		return "ExclusiveProcess"
	}
	return fmt.Sprintf("mode-%d", int(m))
}
