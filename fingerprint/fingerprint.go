// Package fingerprint describes a host the way mlenv compares hosts: GPUs
// and driver through NVML, the CPU's instruction set through CPUID, the OS
// and the environment variables that change numerics. The description is
// canonical JSON with an id: the sha256 of the fields that matter for
// matching, so that two captures of the same host give the same id.
package fingerprint

import (
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/mlenv/mlenv/internal/canon"
)

// SchemaVersion is the version of the fingerprint format.
const SchemaVersion = 1

// PredicateType is the in-toto predicate type of a fingerprint statement.
const PredicateType = "https://mlenv.dev/fingerprint/v1"

// Fingerprint is a host description.
type Fingerprint struct {
	Version    int               `json:"version"`
	ID         string            `json:"id"`
	CapturedAt string            `json:"capturedAt,omitempty"`
	Identity   *HostIdentity     `json:"identity,omitempty"`
	GPU        GPU               `json:"gpu"`
	CPU        CPU               `json:"cpu"`
	OS         OS                `json:"os"`
	Env        map[string]string `json:"env"`
}

// HostIdentity names this particular machine: recorded, never compared.
type HostIdentity struct {
	Hostname string `json:"hostname,omitempty"`
}

// GPU is what NVML reports. Available is false when NVML could not be
// initialised at all; Reason then says why.
type GPU struct {
	Available         bool     `json:"available"`
	Reason            string   `json:"reason,omitempty"`
	DriverVersion     string   `json:"driverVersion,omitempty"`
	CUDADriverVersion string   `json:"cudaDriverVersion,omitempty"`
	NVMLVersion       string   `json:"nvmlVersion,omitempty"`
	Devices           []Device `json:"devices"`
	// Unavailable maps a system-level field to why it could not be read.
	Unavailable map[string]string `json:"unavailable,omitempty"`
}

// Device is one GPU (or one MIG device inside it).
type Device struct {
	Index             int         `json:"index"`
	Name              string      `json:"name,omitempty"`
	Brand             string      `json:"brand,omitempty"`
	Architecture      string      `json:"architecture,omitempty"`
	ComputeCapability string      `json:"computeCapability,omitempty"`
	MemoryTotalBytes  uint64      `json:"memoryTotalBytes,omitempty"`
	MIG               *ModePair   `json:"migMode,omitempty"`
	MIGDevices        []MIGDevice `json:"migDevices,omitempty"`
	ECC               *ModePair   `json:"eccMode,omitempty"`
	PersistenceMode   *bool       `json:"persistenceMode,omitempty"`
	ComputeMode       string      `json:"computeMode,omitempty"`
	VBIOS             string      `json:"vbios,omitempty"`
	InfoROM           string      `json:"inforom,omitempty"`
	GSPFirmware       string      `json:"gspFirmware,omitempty"`
	PCIDeviceID       string      `json:"pciDeviceId,omitempty"`
	PCISubsystemID    string      `json:"pciSubsystemId,omitempty"`
	BoardPartNumber   string      `json:"boardPartNumber,omitempty"`
	PowerLimitWatts   float64     `json:"powerLimitWatts,omitempty"`
	MaxSMClockMHz     uint32      `json:"maxSmClockMHz,omitempty"`
	MaxMemClockMHz    uint32      `json:"maxMemClockMHz,omitempty"`
	Identity          GPUIdentity `json:"identity"`
	Volatile          *Volatile   `json:"volatile,omitempty"`
	// Unavailable maps a field (its JSON name) to why NVML did not give it.
	Unavailable map[string]string `json:"unavailable,omitempty"`
}

// ModePair is a setting's current and pending (after reset) value.
type ModePair struct {
	Current bool `json:"current"`
	Pending bool `json:"pending"`
}

// MIGDevice is one MIG instance of a GPU.
type MIGDevice struct {
	Index            int    `json:"index"`
	Name             string `json:"name,omitempty"`
	MemoryTotalBytes uint64 `json:"memoryTotalBytes,omitempty"`
	UUID             string `json:"uuid,omitempty"`
}

// GPUIdentity names one board: recorded, never compared by default.
type GPUIdentity struct {
	UUID   string `json:"uuid,omitempty"`
	Serial string `json:"serial,omitempty"`
}

// Volatile values change from moment to moment and never enter the id.
type Volatile struct {
	MemoryUsedBytes uint64 `json:"memoryUsedBytes"`
	MemoryFreeBytes uint64 `json:"memoryFreeBytes"`
}

// NumericsEnv lists the environment variables that change which kernels
// run or how results round.
var NumericsEnv = []string{
	"CUBLAS_WORKSPACE_CONFIG", "CUBLASLT_WORKSPACE_SIZE", "NVIDIA_TF32_OVERRIDE",
	"CUDA_VISIBLE_DEVICES", "CUDA_MODULE_LOADING", "CUDA_LAUNCH_BLOCKING", "CUDA_DEVICE_ORDER",
	"NCCL_ALGO", "NCCL_PROTO", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "MKL_CBWR",
	"MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "OPENBLAS_CORETYPE",
	"OPENBLAS_NUM_THREADS", "PYTHONHASHSEED", "TF_DETERMINISTIC_OPS", "TF_CUDNN_DETERMINISTIC",
	"TF_ENABLE_ONEDNN_OPTS", "XLA_FLAGS", "TORCH_CUDNN_V8_API_DISABLED", "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE",
	"PYTORCH_CUDA_ALLOC_CONF",
}

// Options controls a capture.
type Options struct {
	// Now stamps capturedAt (default time.Now); it never enters the id.
	Now func() time.Time
	// Getenv reads the environment (default os.Getenv).
	Getenv func(string) string
	// Root is prefixed to every file read (/etc/os-release, /proc/...);
	// tests point it at a fixture tree. Default "/".
	Root string
}

// Capture describes this host. It never fails: what cannot be read is
// recorded with the reason.
func Capture(o Options) *Fingerprint {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Root == "" {
		o.Root = "/"
	}
	fp := &Fingerprint{Version: SchemaVersion, CapturedAt: o.Now().UTC().Format(time.RFC3339)}
	if h, err := os.Hostname(); err == nil {
		fp.Identity = &HostIdentity{Hostname: h}
	}
	fp.GPU = captureGPU()
	fp.CPU = captureCPU()
	fp.OS = captureOS(o)
	fp.Env = captureEnv(o.Getenv)
	fp.ID = fp.ComputeID()
	return fp
}

func captureEnv(getenv func(string) string) map[string]string {
	env := map[string]string{}
	for _, k := range NumericsEnv {
		if v := getenv(k); v != "" {
			env[k] = v
		}
	}
	return env
}

// matchView is the part of a fingerprint that two hosts must share to
// match: no identities, no volatile values, no timestamps, nothing an
// operator tunes at run time (power limits, persistence, clocks).
type matchView struct {
	GPU struct {
		Available         bool          `json:"available"`
		DriverVersion     string        `json:"driverVersion"`
		CUDADriverVersion string        `json:"cudaDriverVersion"`
		Devices           []deviceMatch `json:"devices"`
	} `json:"gpu"`
	CPU struct {
		Vendor   string   `json:"vendor"`
		Family   int      `json:"family"`
		Model    int      `json:"model"`
		GOARCH   string   `json:"goarch"`
		X86Level int      `json:"x86Level"`
		Numerics []string `json:"numericsFeatures"`
	} `json:"cpu"`
	OS struct {
		Distribution string `json:"distribution"`
		Glibc        string `json:"glibc"`
	} `json:"os"`
	Env map[string]string `json:"env"`
}

type deviceMatch struct {
	Name              string   `json:"name"`
	Architecture      string   `json:"architecture"`
	ComputeCapability string   `json:"computeCapability"`
	MemoryTotalBytes  uint64   `json:"memoryTotalBytes"`
	MIG               bool     `json:"mig"`
	MIGDevices        []string `json:"migDevices"`
	ECC               bool     `json:"ecc"`
	PCIDeviceID       string   `json:"pciDeviceId"`
}

// ComputeID is "sha256:<hex>" of the canonical JSON of the match view.
func (fp *Fingerprint) ComputeID() string {
	var v matchView
	v.GPU.Available = fp.GPU.Available
	v.GPU.DriverVersion = fp.GPU.DriverVersion
	v.GPU.CUDADriverVersion = fp.GPU.CUDADriverVersion
	for _, d := range fp.GPU.Devices {
		m := deviceMatch{Name: d.Name, Architecture: d.Architecture, ComputeCapability: d.ComputeCapability,
			MemoryTotalBytes: d.MemoryTotalBytes, PCIDeviceID: d.PCIDeviceID}
		if d.MIG != nil {
			m.MIG = d.MIG.Current
		}
		if d.ECC != nil {
			m.ECC = d.ECC.Current
		}
		for _, md := range d.MIGDevices {
			m.MIGDevices = append(m.MIGDevices, md.Name)
		}
		v.GPU.Devices = append(v.GPU.Devices, m)
	}
	v.CPU.Vendor, v.CPU.Family, v.CPU.Model = fp.CPU.Vendor, fp.CPU.Family, fp.CPU.Model
	v.CPU.GOARCH, v.CPU.X86Level = fp.CPU.GOARCH, fp.CPU.X86Level
	v.CPU.Numerics = append([]string(nil), fp.CPU.NumericsFeatures...)
	sort.Strings(v.CPU.Numerics)
	v.OS.Distribution = fp.OS.Distribution.ID + " " + fp.OS.Distribution.VersionID
	v.OS.Glibc = fp.OS.Glibc
	v.Env = fp.Env
	id, err := canon.SHA256(v)
	if err != nil {
		return ""
	}
	return id
}

// JSON is the canonical, indented encoding.
func (fp *Fingerprint) JSON() ([]byte, error) { return canon.Indent(fp) }

func formatCUDA(v int) string {
	return strconv.Itoa(v/1000) + "." + strconv.Itoa(v%1000/10)
}
