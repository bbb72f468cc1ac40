package fingerprint

import "strings"

// cpuinfoFlag maps cpuid feature names to the Linux /proc/cpuinfo flag for
// the same feature (numerics-relevant ones), so the two can be checked
// against each other.
var cpuinfoFlag = map[string]string{
	"SSE4": "sse4_1", "SSE42": "sse4_2", "AVX": "avx", "AVX2": "avx2", "FMA3": "fma", "FMA4": "fma4", "F16C": "f16c",
	"AVX512F": "avx512f", "AVX512CD": "avx512cd", "AVX512BW": "avx512bw", "AVX512DQ": "avx512dq", "AVX512VL": "avx512vl",
	"AVX512IFMA": "avx512ifma", "AVX512VBMI": "avx512vbmi", "AVX512VBMI2": "avx512_vbmi2", "AVX512VNNI": "avx512_vnni",
	"AVX512BF16": "avx512_bf16", "AVX512FP16": "avx512_fp16", "AVX512BITALG": "avx512_bitalg",
	"AVX512VPOPCNTDQ": "avx512_vpopcntdq", "AVXVNNI": "avx_vnni", "AMXBF16": "amx_bf16", "AMXINT8": "amx_int8",
	"AMXTILE": "amx_tile",
}

// NumericsFromCpuinfo returns, in cpuid names, the numerics-relevant
// features that a /proc/cpuinfo "flags" line lists.
func NumericsFromCpuinfo(flagsLine string) []string {
	flags := map[string]bool{}
	for _, f := range strings.Fields(strings.TrimPrefix(strings.TrimSpace(flagsLine), "flags")) {
		flags[strings.TrimPrefix(f, ":")] = true
	}
	var names []string
	for name, flag := range cpuinfoFlag {
		if flags[flag] {
			names = append(names, name)
		}
	}
	return NumericsSubset(names)
}

// ComparableNumerics restricts a feature list to those /proc/cpuinfo can
// confirm.
func ComparableNumerics(features []string) []string {
	var out []string
	for _, f := range features {
		if _, ok := cpuinfoFlag[f]; ok {
			out = append(out, f)
		}
	}
	return NumericsSubset(out)
}
