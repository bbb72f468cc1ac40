package cuda

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Target is a GPU code target: sm_XY (SASS) or compute_XY (PTX), with an
// optional "a" (architecture-specific) or "f" (family-specific) suffix.
type Target struct {
	PTX          bool
	Major, Minor int
	Suffix       string // "", "a" or "f"
}

var targetRe = regexp.MustCompile(`^(sm|compute)_(\d+)([af]?)$`)

// ParseTarget reads "sm_90a", "compute_80", "sm_100f", ...
func ParseTarget(s string) (Target, error) {
	m := targetRe.FindStringSubmatch(s)
	if m == nil {
		return Target{}, fmt.Errorf("%q is not a CUDA target like sm_90 or compute_90", s)
	}
	n, _ := strconv.Atoi(m[2])
	if n < 10 {
		return Target{}, fmt.Errorf("%q: architecture number too small", s)
	}
	return Target{PTX: m[1] == "compute", Major: n / 10, Minor: n % 10, Suffix: m[3]}, nil
}

func (t Target) String() string {
	p := "sm"
	if t.PTX {
		p = "compute"
	}
	return fmt.Sprintf("%s_%d%d%s", p, t.Major, t.Minor, t.Suffix)
}

// Capability is a GPU compute capability like 9.0.
type Capability struct{ Major, Minor int }

// ParseCapability reads "9.0".
func ParseCapability(s string) (Capability, error) {
	a, b, ok := strings.Cut(s, ".")
	ma, err1 := strconv.Atoi(a)
	mi, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil {
		return Capability{}, fmt.Errorf("%q is not a compute capability like 9.0", s)
	}
	return Capability{ma, mi}, nil
}

func (c Capability) String() string { return fmt.Sprintf("%d.%d", c.Major, c.Minor) }

// Outcome of running code on a GPU.
type Outcome string

const (
	// Runs: SASS for this GPU is present.
	Runs Outcome = "runs"
	// RunsJIT: only PTX fits; the driver compiles it at first start
	// (slower start, and only if the driver's JIT knows that PTX version).
	RunsJIT Outcome = "runs-jit"
	// NoKernel: "no kernel image is available for execution on the device".
	NoKernel Outcome = "no-kernel"
)

// RunsOn says whether one target's code can execute on a GPU of compute
// capability c. The rules are NVIDIA's (CUDA C++ Programming Guide,
// "Binary Compatibility" and "PTX Compatibility"; CUDA Compatibility
// guide; and the CUDA 12.9 notes on family-specific targets):
//
//   - SASS for sm_XY runs on compute capability X.Z when Z >= Y: binary
//     compatibility holds within a major version, from a minor version to
//     later ones, never across majors.
//   - sm_XYa (architecture-specific, e.g. sm_90a's wgmma) runs only on
//     exactly X.Y.
//   - sm_XYf (family-specific) runs on the later minors of the same major
//     family (X.Z with Z >= Y).
//   - PTX for compute_XY is JIT-compiled by the driver for any GPU of
//     compute capability >= X.Y; compute_XYa PTX only for exactly X.Y,
//     compute_XYf within its family.
func (t Target) RunsOn(c Capability) Outcome {
	if t.Suffix == "a" {
		if c.Major == t.Major && c.Minor == t.Minor {
			return t.outcome()
		}
		return NoKernel
	}
	if t.PTX && t.Suffix == "" {
		if c.Major > t.Major || c.Major == t.Major && c.Minor >= t.Minor {
			return RunsJIT
		}
		return NoKernel
	}
	// Plain SASS and family-specific code: same major, later or equal minor.
	if c.Major == t.Major && c.Minor >= t.Minor {
		return t.outcome()
	}
	return NoKernel
}

func (t Target) outcome() Outcome {
	if t.PTX {
		return RunsJIT
	}
	return Runs
}

// Verdict is the best outcome over a set of targets, with the target
// that gives it.
type Verdict struct {
	Outcome Outcome `json:"outcome"`
	Target  string  `json:"target,omitempty"`
	Reason  string  `json:"reason"`
}

// Check decides whether code built for targets runs on capability c:
// any fitting SASS wins; else fitting PTX means JIT (a warning, not a
// pass); else no kernel.
func Check(targets []string, c Capability) Verdict {
	best := Verdict{Outcome: NoKernel}
	for _, s := range targets {
		t, err := ParseTarget(s)
		if err != nil {
			continue
		}
		switch t.RunsOn(c) {
		case Runs:
			return Verdict{Outcome: Runs, Target: s, Reason: fmt.Sprintf("%s SASS runs on compute capability %s", s, c)}
		case RunsJIT:
			if best.Outcome == NoKernel {
				best = Verdict{Outcome: RunsJIT, Target: s, Reason: fmt.Sprintf("no SASS for compute capability %s; the driver must JIT-compile %s PTX at first start", c, s)}
			}
		}
	}
	if best.Outcome == NoKernel {
		best.Reason = fmt.Sprintf("no code for compute capability %s among %s: \"no kernel image is available for execution on the device\"", c, strings.Join(targets, ", "))
	}
	return best
}
