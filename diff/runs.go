package diff

import (
	"encoding/json"
	"strings"
)

// SBOMPackages reads the packages of an SPDX document the way diff
// compares them (verify's lineage check compares a training and a
// serving image's SBOMs with it).
func SBOMPackages(doc json.RawMessage) ([]Package, error) { return sbomPackages(doc) }

// numericsPrefixes are the packages that compute a model's numbers:
// frameworks, their kernels and math libraries, CUDA libraries. A change
// in any of them can change results; other packages (web servers, CLI
// tools) do not.
var numericsPrefixes = []string{
	EcoPython + "/torch", EcoPython + "/jax", EcoPython + "/tensorflow", EcoPython + "/numpy", EcoPython + "/scipy",
	EcoPython + "/triton", EcoPython + "/onnxruntime", EcoPython + "/nvidia-", EcoPython + "/xformers", EcoPython + "/flash-attn",
	EcoPython + "/mkl", EcoPython + "/intel-openmp", EcoPython + "/cupy",
	EcoDeb + "/libcudnn", EcoDeb + "/libcublas", EcoDeb + "/libnccl", EcoDeb + "/cuda-", EcoDeb + "/libcufft", EcoDeb + "/libcurand",
	EcoDeb + "/libcusolver", EcoDeb + "/libcusparse", EcoDeb + "/libopenblas", EcoDeb + "/libblas", EcoDeb + "/liblapack", EcoDeb + "/libmkl",
}

// NumericsPackage says whether a package key ("python/torch") names a
// package that computes a model's numbers.
func NumericsPackage(key string) bool {
	for _, p := range numericsPrefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}
