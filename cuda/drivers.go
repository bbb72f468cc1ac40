package cuda

import (
	"fmt"
	"strconv"
	"strings"
)

// DriverTableSource says where the driver table comes from, so that a
// reader can check it against NVIDIA's documents when a toolkit ships.
const DriverTableSource = "NVIDIA CUDA Toolkit Release Notes, table \"CUDA Toolkit and Minimum Required Driver Version\" (Linux x86_64), " +
	"and the CUDA Compatibility guide (minor-version compatibility, forward-compatibility packages); checked 2026-11"

// ToolkitMinDriver is each CUDA toolkit's own minimum Linux driver: with it
// or newer, every feature of that CUDA version works. 12.7 was never
// released; the 12.8 entry is the least certain of the list.
var ToolkitMinDriver = map[string]string{
	"11.0": "450.51.05", "11.1": "455.23", "11.2": "460.27.03", "11.3": "465.19.01",
	"11.4": "470.42.01", "11.5": "495.29.05", "11.6": "510.39.01", "11.7": "515.43.04",
	"11.8": "520.61.05",
	"12.0": "525.60.13", "12.1": "530.30.02", "12.2": "535.54.03", "12.3": "545.23.06",
	"12.4": "550.54.14", "12.5": "555.42.02", "12.6": "560.28.03", "12.8": "570.26",
	"12.9": "575.51.03",
	"13.0": "580.65.06",
}

// MinorCompatFloor is the oldest driver of each CUDA major that runs any
// minor version of that major (minor-version compatibility): CUDA 11.1+
// needs 450.80.02, 12.x 525.60.13, 13.x 580. Under the toolkit's own
// minimum, features needing a newer driver fail and PTX newer than the
// driver's JIT cannot be compiled.
var MinorCompatFloor = map[int]string{11: "450.80.02", 12: "525.60.13", 13: "580"}

// DriverOutcome is whether a driver can run an image's CUDA runtime.
type DriverOutcome string

const (
	// DriverRuns: the driver is at least the toolkit's own minimum.
	DriverRuns DriverOutcome = "runs"
	// DriverMinorCompat: runs through minor-version compatibility, with
	// limits (no PTX newer than the driver's JIT; some APIs missing).
	DriverMinorCompat DriverOutcome = "runs-minor-compat"
	// DriverForwardCompat: runs only through the image's cuda-compat
	// package, which NVIDIA supports on datacenter GPUs only.
	DriverForwardCompat DriverOutcome = "runs-forward-compat"
	// DriverTooOld: "CUDA driver version is insufficient for CUDA runtime
	// version".
	DriverTooOld DriverOutcome = "too-old"
	// DriverUnknown: the CUDA version is not in the table, or a version
	// does not parse.
	DriverUnknown DriverOutcome = "unknown"
)

// DriverVerdict is the outcome with the numbers behind it.
type DriverVerdict struct {
	Outcome   DriverOutcome `json:"outcome"`
	MinDriver string        `json:"minDriver,omitempty"`
	Reason    string        `json:"reason"`
}

// DriverSupports decides whether a host driver (e.g. "535.104.05") runs a
// CUDA runtime ("12.4"); compat says the image ships the forward
// compatibility package (cuda-compat).
func DriverSupports(driver, cudaVersion string, compat bool) DriverVerdict {
	dv, err := parseDotted(driver)
	if err != nil {
		return DriverVerdict{Outcome: DriverUnknown, Reason: fmt.Sprintf("driver version %q does not parse", driver)}
	}
	major, err := cudaMajor(cudaVersion)
	if err != nil {
		return DriverVerdict{Outcome: DriverUnknown, Reason: err.Error()}
	}
	need, ok := ToolkitMinDriver[MajorMinor(cudaVersion)]
	if !ok {
		return DriverVerdict{Outcome: DriverUnknown, Reason: fmt.Sprintf("CUDA %s is not in mlenv's driver table (%s)", cudaVersion, DriverTableSource)}
	}
	if compareDotted(dv, mustDotted(need)) >= 0 {
		return DriverVerdict{Outcome: DriverRuns, MinDriver: need,
			Reason: fmt.Sprintf("driver %s >= %s, CUDA %s's minimum", driver, need, cudaVersion)}
	}
	if floor, ok := MinorCompatFloor[major]; ok && compareDotted(dv, mustDotted(floor)) >= 0 {
		return DriverVerdict{Outcome: DriverMinorCompat, MinDriver: need,
			Reason: fmt.Sprintf("driver %s is older than CUDA %s's %s but >= %s, the CUDA %d.x floor: runs by minor-version compatibility; PTX newer than the driver's JIT and features needing a newer driver fail", driver, cudaVersion, need, floor, major)}
	}
	if compat {
		return DriverVerdict{Outcome: DriverForwardCompat, MinDriver: need,
			Reason: fmt.Sprintf("driver %s is older than CUDA %s's %s; the image ships cuda-compat, which works on datacenter GPUs with a supported driver branch only", driver, cudaVersion, need)}
	}
	return DriverVerdict{Outcome: DriverTooOld, MinDriver: need,
		Reason: fmt.Sprintf("driver %s is older than %s, which CUDA %s needs (\"CUDA driver version is insufficient for CUDA runtime version\")", driver, need, cudaVersion)}
}

// MajorMinor is a version's first two components ("12.4.1" is "12.4");
// a version with fewer is returned as it is.
func MajorMinor(v string) string {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return v
	}
	return parts[0] + "." + parts[1]
}

func cudaMajor(v string) (int, error) {
	d, err := parseDotted(v)
	if err != nil || len(d) < 2 {
		return 0, fmt.Errorf("CUDA version %q is not like 12.4", v)
	}
	return d[0], nil
}

// parseDotted reads "535.104.05" as [535 104 5].
func parseDotted(s string) ([]int, error) {
	if s == "" {
		return nil, fmt.Errorf("empty version")
	}
	var out []int
	for _, p := range strings.Split(s, ".") {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("version %q: %q is not a number", s, p)
		}
		out = append(out, n)
	}
	return out, nil
}

func mustDotted(s string) []int {
	d, err := parseDotted(s)
	if err != nil {
		panic(err)
	}
	return d
}

// compareDotted compares component by component; missing components are 0.
func compareDotted(a, b []int) int {
	for i := 0; i < len(a) || i < len(b); i++ {
		var x, y int
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// CompareVersions compares two dotted versions ("12.4" < "12.10"); ok is
// false when either does not parse.
func CompareVersions(a, b string) (cmp int, ok bool) {
	x, err1 := parseDotted(a)
	y, err2 := parseDotted(b)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return compareDotted(x, y), true
}
