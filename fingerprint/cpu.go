package fingerprint

import (
	"runtime"
	"sort"
	"strings"

	"github.com/klauspost/cpuid/v2"
)

// CPU is what CPUID says about the processor.
type CPU struct {
	Vendor        string `json:"vendor"`
	Brand         string `json:"brand"`
	Family        int    `json:"family"`
	Model         int    `json:"model"`
	Stepping      int    `json:"stepping"`
	PhysicalCores int    `json:"physicalCores"`
	LogicalCores  int    `json:"logicalCores"`
	GOARCH        string `json:"goarch"`
	// X86Level is the x86-64 microarchitecture level (1-4), 0 elsewhere.
	X86Level int      `json:"x86Level,omitempty"`
	Features []string `json:"features"`
	// NumericsFeatures is the subset that decides which math kernels run.
	NumericsFeatures []string `json:"numericsFeatures"`
}

// numericsFeatures are the CPUID features (cpuid names) that change which
// math kernels libraries pick: vector widths, FMA, reduced-precision dot
// products and matrix tiles.
var numericsFeatures = map[string]bool{
	"SSE4": true, "SSE42": true, "AVX": true, "AVX2": true, "FMA3": true, "FMA4": true, "F16C": true,
	"AVX512F": true, "AVX512CD": true, "AVX512BW": true, "AVX512DQ": true, "AVX512VL": true,
	"AVX512IFMA": true, "AVX512VBMI": true, "AVX512VBMI2": true, "AVX512VNNI": true,
	"AVX512BF16": true, "AVX512FP16": true, "AVX512BITALG": true, "AVX512VPOPCNTDQ": true,
	"AVXVNNI": true, "AVXVNNIINT8": true, "AVXIFMA": true, "AVX10": true,
	"AMXBF16": true, "AMXINT8": true, "AMXTILE": true, "AMXFP16": true, "AMXFP8": true,
	"ASIMD": true, "ASIMDDP": true, "ASIMDHP": true, "FPHP": true, "SVE": true, "SVE2": true,
	"SME": true, "I8MM": true, "BF16": true,
}

func captureCPU() CPU {
	c := cpuid.CPU
	out := CPU{
		Vendor: c.VendorString, Brand: strings.TrimSpace(c.BrandName),
		Family: c.Family, Model: c.Model, Stepping: c.Stepping,
		PhysicalCores: c.PhysicalCores, LogicalCores: c.LogicalCores,
		GOARCH: runtime.GOARCH, Features: c.FeatureSet(),
	}
	if runtime.GOARCH == "amd64" {
		out.X86Level = c.X64Level()
	}
	sort.Strings(out.Features)
	out.NumericsFeatures = NumericsSubset(out.Features)
	return out
}

// NumericsSubset picks the numerics-relevant names from a feature list.
func NumericsSubset(features []string) []string {
	out := []string{}
	for _, f := range features {
		if numericsFeatures[f] {
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return out
}
