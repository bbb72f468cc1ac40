//go:build !cgo

package fingerprint

// Without cgo there is no NVML (go-nvml dlopens the library through cgo):
// the fingerprint says so and carries on with CPU and OS.
func captureGPU() GPU {
	return GPU{Reason: "NVML not available in this build (built with CGO_ENABLED=0)", Devices: []Device{}}
}

// FormatCUDAVersion turns NVML's 13000 into "13.0".
func FormatCUDAVersion(v int) string {
	return formatCUDA(v)
}
