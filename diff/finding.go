// Package diff says what differs between two environment descriptions
// (lockfiles, images, host fingerprints, attestation bundles) and why it
// matters. It is the engine behind `mlenv diff` and the "will it
// reproduce" check of `mlenv verify` (a filtered diff of two hosts). It
// never writes to the terminal: callers render the findings.
package diff

// Kind says how one value differs between A and B.
type Kind string

const (
	// Added: present in B only.
	Added Kind = "added"
	// Removed: present in A only.
	Removed Kind = "removed"
	// Changed: present in both, with other values.
	Changed Kind = "changed"
)

// Group names which question a difference bears on, so that a policy can
// filter: verify's "will it run" and "will it reproduce" checks each take
// the findings of their group.
type Group string

const (
	// GroupRun: the difference can stop the workload from starting or
	// running at all (driver too old for the CUDA, missing ISA features,
	// another CPU architecture, no GPU).
	GroupRun Group = "run"
	// GroupReproduce: the workload runs, but results may differ (other
	// kernels, other rounding, other reduction order).
	GroupReproduce Group = "reproduce"
	// GroupInfo: recorded for the reader, neither of the above.
	GroupInfo Group = "info"
)

// Sections, in the order they are shown. A Finding's Section is one of
// these.
const (
	SectionBase     = "base"
	SectionPackages = "packages"
	SectionConfig   = "config"
	SectionLayers   = "layers"
	SectionFiles    = "files"
	SectionHost     = "host"
	// SectionDatasets and SectionRun compare two training runs (lineage
	// statements): diff/runs.go.
	SectionDatasets = "datasets"
	SectionRun      = "run"
)

// Sections lists every section in display order.
var Sections = []string{SectionBase, SectionPackages, SectionConfig, SectionLayers, SectionFiles, SectionHost, SectionDatasets, SectionRun}

// Finding is one difference between A and B. Its JSON form is part of
// `mlenv diff --output json` and is stable: fields are only ever added.
type Finding struct {
	// Section is one of Sections.
	Section string `json:"section"`
	// Key names what differs inside the section, e.g. "gpu.driverVersion",
	// "cpu.numericsFeatures.AVX512F", "env.NVIDIA_TF32_OVERRIDE",
	// "python/numpy", "config.env.LANG", "/app/main.py".
	Key string `json:"key"`
	// Kind is added (B only), removed (A only) or changed.
	Kind Kind `json:"kind"`
	// A and B are the values on each side, as text ("" when absent).
	A string `json:"a,omitempty"`
	B string `json:"b,omitempty"`
	// Detail says more when A and B alone do not show it (for files:
	// which attributes changed; for packages: "same version, other hash").
	Detail string `json:"detail,omitempty"`
	// Consequence is one line on what the difference means for running or
	// reproducing, where one is known.
	Consequence string `json:"consequence,omitempty"`
	// Group is run, reproduce or info.
	Group Group `json:"group,omitempty"`
}

// Filter keeps the findings for which keep returns true.
func Filter(fs []Finding, keep func(Finding) bool) []Finding {
	var out []Finding
	for _, f := range fs {
		if keep(f) {
			out = append(out, f)
		}
	}
	return out
}

// InGroup is a Filter predicate: findings of group g.
func InGroup(g Group) func(Finding) bool {
	return func(f Finding) bool { return f.Group == g }
}
