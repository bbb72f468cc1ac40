package diff

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/mlenv/mlenv/fingerprint"
)

// Hosts compares two host fingerprints field by field over what the
// fingerprint's match view compares (identities, clocks, power limits and
// volatile values are never compared) plus the kernel. Every finding is in
// SectionHost, carries a Group, and a Consequence where one is known.
// The order is stable: GPU, CPU, OS, environment.
//
// verify's "will it reproduce" is Filter(Hosts(training, node),
// InGroup(GroupReproduce)); "will it run" takes GroupRun.
func Hosts(a, b *fingerprint.Fingerprint) []Finding {
	var h hostDiff
	h.gpu(a.GPU, b.GPU)
	h.cpu(a.CPU, b.CPU)
	h.os(a.OS, b.OS)
	h.env(a.Env, b.Env)
	return h.out
}

type hostDiff struct{ out []Finding }

// add records one difference when a and b differ; an empty side makes it
// added or removed.
func (h *hostDiff) add(key, a, b string, g Group, consequence string) {
	h.out = appendConsequence(h.out, SectionHost, key, a, b, consequence, g)
}

func (h *hostDiff) gpu(a, b fingerprint.GPU) {
	if a.Available != b.Available || (len(a.Devices) > 0) != (len(b.Devices) > 0) {
		c := "GPU on A only: CUDA code cannot run on B; CPU fallbacks give other numbers"
		if len(b.Devices) > 0 {
			c = "GPU on B only: CUDA code that ran on B cannot run on A; CPU fallbacks give other numbers"
		}
		h.out = append(h.out, Finding{Section: SectionHost, Key: "gpu", Kind: Changed,
			A: gpuSummary(a), B: gpuSummary(b), Group: GroupRun, Consequence: c})
		return
	}
	if !a.Available {
		return
	}
	h.add("gpu.cudaDriverVersion", a.CUDADriverVersion, b.CUDADriverVersion, GroupRun, cudaDriverConsequence(a, b))
	drv := ""
	if a.CUDADriverVersion == b.CUDADriverVersion {
		drv = "other driver build: PTX is JIT-compiled by the driver, so PTX-only kernels may compile differently"
	}
	h.add("gpu.driverVersion", a.DriverVersion, b.DriverVersion, GroupReproduce, drv)
	h.add("gpu.count", strconv.Itoa(len(a.Devices)), strconv.Itoa(len(b.Devices)), GroupReproduce,
		"other GPU count: data-parallel runs shard and reduce in another order, results differ")

	av, bv := deviceViews(a.Devices), deviceViews(b.Devices)
	if homogeneous(av) && homogeneous(bv) {
		h.devices("gpu.device.", av[0], bv[0])
		return
	}
	for i := 0; i < max(len(av), len(bv)); i++ {
		prefix := fmt.Sprintf("gpu[%d].", i)
		switch {
		case i >= len(av):
			h.add(strings.TrimSuffix(prefix, "."), "", bv[i].name, GroupReproduce, "")
		case i >= len(bv):
			h.add(strings.TrimSuffix(prefix, "."), av[i].name, "", GroupReproduce, "")
		default:
			h.devices(prefix, av[i], bv[i])
		}
	}
}

// deviceView is the compared part of one GPU, as text.
type deviceView struct {
	name, arch, cc, memory, mig, migDevices, ecc, pciDeviceID string
}

func deviceViews(ds []fingerprint.Device) []deviceView {
	out := make([]deviceView, 0, len(ds))
	for _, d := range ds {
		v := deviceView{name: d.Name, arch: d.Architecture, cc: d.ComputeCapability,
			mig: modeText(d.MIG), ecc: modeText(d.ECC), pciDeviceID: d.PCIDeviceID}
		if d.MemoryTotalBytes > 0 {
			v.memory = fmt.Sprintf("%.1f GiB", float64(d.MemoryTotalBytes)/(1<<30))
		}
		var names []string
		for _, m := range d.MIGDevices {
			names = append(names, m.Name)
		}
		v.migDevices = strings.Join(names, ", ")
		out = append(out, v)
	}
	return out
}

func homogeneous(vs []deviceView) bool {
	for _, v := range vs[1:] {
		if v != vs[0] {
			return false
		}
	}
	return len(vs) > 0
}

func (h *hostDiff) devices(prefix string, a, b deviceView) {
	h.add(prefix+"name", a.name, b.name, GroupReproduce,
		"other GPU model: other SM count and clocks, so autotuned kernels (cuDNN benchmark, Triton) may choose differently")
	h.add(prefix+"architecture", a.arch, b.arch, GroupReproduce, "")
	cc := ""
	if a.cc != "" && b.cc != "" {
		cc = fmt.Sprintf("compute capability %s vs %s: other cuBLAS/cuDNN kernels, bitwise equality not expected; the image needs SASS or PTX for both", a.cc, b.cc)
	}
	h.add(prefix+"computeCapability", a.cc, b.cc, GroupReproduce, cc)
	h.add(prefix+"memory", a.memory, b.memory, GroupReproduce,
		"other GPU memory: batch sizes tuned on one may not fit the other; workspace-dependent algorithms may differ")
	h.add(prefix+"migMode", a.mig, b.mig, GroupReproduce,
		"MIG slices have fewer SMs and less memory than the whole GPU: kernel choice and speed differ")
	h.add(prefix+"migDevices", a.migDevices, b.migDevices, GroupReproduce, "other MIG layout: other SM and memory share per instance")
	h.add(prefix+"eccMode", a.ecc, b.ecc, GroupReproduce,
		"ECC changes usable memory, and without it memory errors go undetected")
	h.add(prefix+"pciDeviceId", a.pciDeviceID, b.pciDeviceID, GroupInfo, "other board variant of the GPU")
}

func modeText(m *fingerprint.ModePair) string {
	switch {
	case m == nil:
		return ""
	case m.Current:
		return "on"
	default:
		return "off"
	}
}

func gpuSummary(g fingerprint.GPU) string {
	if len(g.Devices) == 0 {
		if g.Reason != "" {
			return "none (" + g.Reason + ")"
		}
		return "none"
	}
	counts := map[string]int{}
	for _, d := range g.Devices {
		counts[d.Name]++
	}
	var parts []string
	for name, n := range counts {
		parts = append(parts, fmt.Sprintf("%d × %s", n, name))
	}
	sort.Strings(parts)
	s := strings.Join(parts, ", ")
	if g.DriverVersion != "" {
		s += ", driver " + g.DriverVersion
	}
	if g.CUDADriverVersion != "" {
		s += " (CUDA " + g.CUDADriverVersion + ")"
	}
	return s
}

// cudaDriverConsequence: the CUDA driver version is the newest CUDA the
// driver runs, so the side with the lower one refuses images built for the
// other's.
func cudaDriverConsequence(a, b fingerprint.GPU) string {
	av, aok := parseMajorMinor(a.CUDADriverVersion)
	bv, bok := parseMajorMinor(b.CUDADriverVersion)
	if !aok || !bok || av == bv {
		return ""
	}
	lowSide, low, high := "B", b, a
	if av[0] < bv[0] || (av[0] == bv[0] && av[1] < bv[1]) {
		lowSide, low, high = "A", a, b
	}
	return fmt.Sprintf("driver %s on %s supports CUDA up to %s: an image built for %s will not start there",
		majorOf(low.DriverVersion), lowSide, low.CUDADriverVersion, high.CUDADriverVersion)
}

func majorOf(driver string) string {
	m, _, _ := strings.Cut(driver, ".")
	return m
}

func parseMajorMinor(s string) ([2]int, bool) {
	maj, mnr, ok := strings.Cut(s, ".")
	if !ok {
		return [2]int{}, false
	}
	a, err1 := strconv.Atoi(maj)
	b, err2 := strconv.Atoi(mnr)
	return [2]int{a, b}, err1 == nil && err2 == nil
}

func (h *hostDiff) cpu(a, b fingerprint.CPU) {
	h.add("cpu.goarch", a.GOARCH, b.GOARCH, GroupRun,
		"other CPU architecture: an image built for one does not run on the other")
	h.add("cpu.vendor", a.Vendor, b.Vendor, GroupReproduce,
		"MKL and oneDNN dispatch on the CPU vendor: float results may differ in the last bits")
	if a.Family != b.Family || a.Model != b.Model {
		h.add("cpu.familyModel", fmt.Sprintf("%d/%d", a.Family, a.Model), fmt.Sprintf("%d/%d", b.Family, b.Model), GroupReproduce,
			"other CPU generation: math libraries may tune block sizes and kernels differently")
	}
	h.add("cpu.brand", a.Brand, b.Brand, GroupInfo, "")
	if a.X86Level != b.X86Level && a.X86Level != 0 && b.X86Level != 0 {
		hi, lo, loSide := a.X86Level, b.X86Level, "B"
		if a.X86Level < b.X86Level {
			hi, lo, loSide = b.X86Level, a.X86Level, "A"
		}
		h.add("cpu.x86Level", "x86-64-v"+strconv.Itoa(a.X86Level), "x86-64-v"+strconv.Itoa(b.X86Level), GroupRun,
			fmt.Sprintf("binaries built for x86-64-v%d stop with \"Illegal instruction\" on %s (v%d)", hi, loSide, lo))
	}
	af, bf := set(a.NumericsFeatures), set(b.NumericsFeatures)
	for _, f := range union(af, bf) {
		switch {
		case af[f] && !bf[f]:
			h.out = append(h.out, Finding{Section: SectionHost, Key: "cpu.numericsFeatures." + f, Kind: Removed,
				A: f, Group: GroupReproduce, Consequence: featureConsequence(f, "A")})
		case bf[f] && !af[f]:
			h.out = append(h.out, Finding{Section: SectionHost, Key: "cpu.numericsFeatures." + f, Kind: Added,
				B: f, Group: GroupReproduce, Consequence: featureConsequence(f, "B")})
		}
	}
}

// featureConsequence says what one ISA feature on one side only changes.
func featureConsequence(f, side string) string {
	on := f + " on " + side + " only: "
	switch {
	case strings.HasPrefix(f, "AMX"):
		return on + "oneDNN runs bf16/int8 matmuls on AMX tiles there: other kernels, results may differ"
	case strings.Contains(f, "VNNI") || strings.Contains(f, "BF16") || strings.Contains(f, "FP16") || f == "I8MM":
		return on + "int8/bf16/fp16 dot products use other instructions: quantized and low-precision results may differ"
	case strings.HasPrefix(f, "AVX512") || strings.HasPrefix(f, "AVX10"):
		return on + "oneDNN/MKL pick other kernels, float results may differ in the last bits"
	case strings.HasPrefix(f, "FMA"):
		return on + "fused multiply-add rounds once instead of twice: float results differ in the last bits"
	case strings.HasPrefix(f, "AVX") || strings.HasPrefix(f, "SSE") || f == "F16C":
		return on + "vectorised kernels differ, and binaries built for it stop with \"Illegal instruction\" without it"
	default:
		return on + "math libraries pick other vector kernels, float results may differ in the last bits"
	}
}

func (h *hostDiff) os(a, b fingerprint.OS) {
	h.add("os.kernel", a.Kernel, b.Kernel, GroupInfo, "")
	h.add("os.distribution", distText(a.Distribution), distText(b.Distribution), GroupInfo, "")
	h.add("os.glibc", a.Glibc, b.Glibc, GroupReproduce,
		"libm's exp/log/pow differ between glibc releases: float results may differ in the last bits")
}

func distText(d fingerprint.Distribution) string {
	return strings.TrimSpace(d.ID + " " + d.VersionID)
}

// envConsequence: what each numerics variable changes.
var envConsequence = map[string]string{
	"NVIDIA_TF32_OVERRIDE":             "TF32 for float32 matmuls switched: results differ well beyond the last bits",
	"TORCH_ALLOW_TF32_CUBLAS_OVERRIDE": "TF32 for float32 matmuls switched: results differ well beyond the last bits",
	"CUBLAS_WORKSPACE_CONFIG":          "cuBLAS determinism setting: without a fixed workspace results may vary run to run",
	"CUBLASLT_WORKSPACE_SIZE":          "cuBLASLt workspace size changes which algorithms are eligible",
	"CUDA_VISIBLE_DEVICES":             "other GPUs or another GPU count visible to the process",
	"OMP_NUM_THREADS":                  "thread count sets the reduction order: sums differ in the last bits",
	"MKL_NUM_THREADS":                  "thread count sets the reduction order: sums differ in the last bits",
	"OPENBLAS_NUM_THREADS":             "thread count sets the reduction order: sums differ in the last bits",
	"MKL_CBWR":                         "MKL conditional numerical reproducibility mode: other code paths",
	"MKL_ENABLE_INSTRUCTIONS":          "MKL limited to another instruction set: other kernels",
	"ONEDNN_MAX_CPU_ISA":               "oneDNN limited to another instruction set: other kernels",
	"DNNL_MAX_CPU_ISA":                 "oneDNN limited to another instruction set: other kernels",
	"OPENBLAS_CORETYPE":                "OpenBLAS forced to another core type: other kernels",
	"PYTHONHASHSEED":                   "hash randomisation differs: set and dict-of-set iteration order, and so data order, may differ",
	"TF_DETERMINISTIC_OPS":             "TensorFlow deterministic ops switched: results may vary run to run",
	"TF_CUDNN_DETERMINISTIC":           "cuDNN deterministic algorithms switched: results may vary run to run",
	"TF_ENABLE_ONEDNN_OPTS":            "TensorFlow oneDNN kernels switched: float results may differ in the last bits",
	"XLA_FLAGS":                        "other XLA compilation flags: other fused kernels",
	"NCCL_ALGO":                        "other NCCL algorithm: all-reduce sums in another order",
	"NCCL_PROTO":                       "other NCCL protocol",
	"CUDA_LAUNCH_BLOCKING":             "synchronous launches: slower, numerics unchanged",
	"CUDA_MODULE_LOADING":              "lazy or eager module loading: start-up time and memory differ",
	"PYTORCH_CUDA_ALLOC_CONF":          "other caching allocator settings: memory use differs, and so may OOM behaviour",
	"TORCH_CUDNN_V8_API_DISABLED":      "other cuDNN API: other algorithm choice",
}

func (h *hostDiff) env(a, b map[string]string) {
	for _, k := range union(keys(a), keys(b)) {
		c := envConsequence[k]
		if c == "" {
			c = "changes which kernels run or how results round"
		}
		h.add("env."+k, a[k], b[k], GroupReproduce, c)
	}
}

func set(list []string) map[string]bool {
	m := map[string]bool{}
	for _, s := range list {
		m[s] = true
	}
	return m
}

func keys[V any](m map[string]V) map[string]bool {
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}

// union is the sorted union of two sets.
func union(a, b map[string]bool) []string {
	var out []string
	for k := range a {
		out = append(out, k)
	}
	for k := range b {
		if !a[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
