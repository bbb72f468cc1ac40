package verify

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mlenv/mlenv/attest"
	"github.com/mlenv/mlenv/cuda"
	"github.com/mlenv/mlenv/diff"
	"github.com/mlenv/mlenv/fingerprint"
)

// Check groups of --runtime.
const (
	GroupRun       = "will-it-run"
	GroupReproduce = "will-it-reproduce"
)

// GPUCode is the mlenv.cuda.v1 annotation of the SBOM's image package:
// the GPU code the image carries and the CUDA runtime it ships.
type GPUCode struct {
	Summary     cuda.Summary   `json:"summary"`
	CUDARuntime []cuda.Runtime `json:"cudaRuntime"`
	CUDACompat  bool           `json:"cudaCompat"`
}

// gpuCodeFromSBOM finds the annotation; nil when the SBOM has none.
func gpuCodeFromSBOM(sbom json.RawMessage) (*GPUCode, error) {
	var doc struct {
		Packages []struct {
			PrimaryPackagePurpose string `json:"primaryPackagePurpose"`
			Annotations           []struct {
				Comment string `json:"comment"`
			} `json:"annotations"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(sbom, &doc); err != nil {
		return nil, fmt.Errorf("SBOM is not SPDX JSON: %w", err)
	}
	for _, p := range doc.Packages {
		for _, a := range p.Annotations {
			if rest, ok := strings.CutPrefix(a.Comment, attest.CUDAAnnotationPrefix); ok {
				var g GPUCode
				if err := json.Unmarshal([]byte(rest), &g); err != nil {
					return nil, fmt.Errorf("SBOM annotation %s: %w", strings.TrimSpace(attest.CUDAAnnotationPrefix), err)
				}
				return &g, nil
			}
		}
	}
	return nil, nil
}

// newestRuntime is the highest CUDA runtime version the image ships: the
// one that asks the most of the driver.
func newestRuntime(rs []cuda.Runtime) (cuda.Runtime, bool) {
	var best cuda.Runtime
	for _, r := range rs {
		if best.Version == "" {
			best = r
			continue
		}
		if c, ok := cuda.CompareVersions(r.Version, best.Version); ok && c > 0 {
			best = r
		}
	}
	return best, best.Version != ""
}

// modeStatus is what a failed check becomes under a mode.
func modeStatus(m Mode) Status {
	if m == Enforce {
		return Fail
	}
	return WarnStatus
}

// willItRun checks the image against this host: the driver runs the
// image's CUDA runtime (NVIDIA's table), the image's GPU code covers each
// GPU's compute capability, the CPU architecture and the ISA features
// the policy says the image needs.
func willItRun(t *Target, code *GPUCode, sbomPresent bool, host *fingerprint.Fingerprint, p *Policy) []Check {
	mode := p.Runtime.WillRun
	bad := modeStatus(mode)
	var out []Check
	add := func(name string, st Status, exp, act, msg string) {
		out = append(out, Check{Name: name, Group: GroupRun, Status: st, Expected: exp, Actual: act, Message: msg})
	}
	if t.Arch != "" {
		st := Pass
		if t.Arch != host.CPU.GOARCH {
			st = bad
		}
		add("run.cpu.architecture", st, t.Arch, host.CPU.GOARCH, "the image's platform and this host's CPU")
	}
	if len(p.Runtime.RequiredCPUFeatures) > 0 {
		have := map[string]bool{}
		for _, f := range host.CPU.Features {
			have[f] = true
		}
		var missing []string
		for _, f := range p.Runtime.RequiredCPUFeatures {
			if !have[f] {
				missing = append(missing, f)
			}
		}
		st, msg := Pass, "every ISA feature the policy says the image needs is present"
		if len(missing) > 0 {
			st, msg = bad, "missing "+strings.Join(missing, ", ")+": code built for them stops with \"Illegal instruction\""
		}
		add("run.cpu.features", st, strings.Join(p.Runtime.RequiredCPUFeatures, " "), strings.Join(missing, " ")+presentSuffix(missing), msg)
	}
	if code == nil {
		msg := "the SBOM records no GPU code (no " + strings.TrimSpace(attest.CUDAAnnotationPrefix) + " annotation): the driver and compute capability were not checked"
		if !sbomPresent {
			msg = "no verified SBOM: the driver and compute capability were not checked"
		}
		add("run.gpu", bad, "GPU code recorded in the SBOM", "none", msg)
		return out
	}
	rt, shipsCUDA := newestRuntime(code.CUDARuntime)
	hasCode := len(code.Summary.SASS)+len(code.Summary.PTX) > 0
	if !shipsCUDA && !hasCode {
		add("run.gpu", Pass, "", "", "the image carries no CUDA runtime and no GPU code")
		return out
	}
	if !host.GPU.Available || len(host.GPU.Devices) == 0 {
		reason := host.GPU.Reason
		if reason == "" {
			reason = "no GPU devices"
		}
		add("run.gpu", bad, "an NVIDIA GPU and driver", "none ("+reason+")", "the image carries CUDA code; this host cannot run it")
		return out
	}
	if shipsCUDA {
		v := cuda.DriverSupports(host.GPU.DriverVersion, rt.Version, code.CUDACompat)
		st := Pass
		switch v.Outcome {
		case cuda.DriverMinorCompat, cuda.DriverForwardCompat:
			st = WarnStatus
		case cuda.DriverTooOld:
			st = bad
		case cuda.DriverUnknown:
			// Not in the table: the driver's own CUDA version decides.
			if c, ok := cuda.CompareVersions(host.GPU.CUDADriverVersion, cuda.MajorMinor(rt.Version)); ok && c >= 0 {
				st, v.Reason = Pass, fmt.Sprintf("%s; the driver reports CUDA %s >= %s", v.Reason, host.GPU.CUDADriverVersion, rt.Version)
			} else {
				st = bad
			}
		}
		exp := "driver for CUDA " + rt.Version
		if v.MinDriver != "" {
			exp = ">= " + v.MinDriver + " (CUDA " + rt.Version + ", " + rt.Source + ")"
		}
		add("run.gpu.driver", st, exp, host.GPU.DriverVersion+" (CUDA "+host.GPU.CUDADriverVersion+")", v.Reason)
	}
	if hasCode {
		targets := append(append([]string(nil), code.Summary.SASS...), code.Summary.PTX...)
		seen := map[string]bool{}
		for _, d := range host.GPU.Devices {
			if seen[d.ComputeCapability] {
				continue
			}
			seen[d.ComputeCapability] = true
			name := "run.gpu.computeCapability"
			if len(host.GPU.Devices) > 1 {
				name += "." + d.ComputeCapability
			}
			cc, err := cuda.ParseCapability(d.ComputeCapability)
			if err != nil {
				add(name, bad, strings.Join(targets, " "), d.ComputeCapability, "this GPU's compute capability is unknown: "+err.Error())
				continue
			}
			v := cuda.Check(targets, cc)
			st := Pass
			switch v.Outcome {
			case cuda.RunsJIT:
				st = WarnStatus
			case cuda.NoKernel:
				st = bad
			}
			add(name, st, strings.Join(targets, " "), d.Name+" "+d.ComputeCapability, v.Reason)
		}
	}
	return out
}

func presentSuffix(missing []string) string {
	if len(missing) == 0 {
		return "all present"
	}
	return " missing"
}

// willItReproduce is the host diff between the training fingerprint and
// this host, filtered to what changes results: diff's reproduce group,
// plus its run group (another CUDA driver version, no GPU, another CPU
// architecture also mean another result). Identities never count.
func willItReproduce(training, host *fingerprint.Fingerprint, p *Policy) []Check {
	mode := p.Runtime.WillReproduce
	bad := modeStatus(mode)
	if training == nil {
		return []Check{{Name: "reproduce", Group: GroupReproduce, Status: bad, Expected: "a signed training fingerprint", Actual: "none",
			Message: "nothing to compare this host with: attest the image with --fingerprint from the training host"}}
	}
	fs := diff.Filter(diff.Hosts(training, host), func(f diff.Finding) bool {
		return f.Group == diff.GroupReproduce || f.Group == diff.GroupRun
	})
	if len(fs) == 0 {
		return []Check{{Name: "reproduce", Group: GroupReproduce, Status: Pass, Expected: training.ID, Actual: host.ComputeID(),
			Message: "same GPU, driver, CUDA, CPU math path and numerics environment as the training host"}}
	}
	var out []Check
	for _, f := range fs {
		out = append(out, Check{Name: "reproduce." + f.Key, Group: GroupReproduce, Status: bad,
			Expected: orNone(f.A), Actual: orNone(f.B), Message: f.Consequence})
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
