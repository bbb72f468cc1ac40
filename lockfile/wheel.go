package lockfile

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// WheelName is a parsed wheel filename (binary distribution format spec):
// {distribution}-{version}(-{build})?-{python}-{abi}-{platform}.whl
type WheelName struct {
	Distribution string
	Version      string
	Build        string
	// Tags is the expanded set of "python-abi-platform" triples.
	Tags []string
}

// NormalizeName is PEP 503's normalisation of a project name: lowercase,
// runs of "-", "_" and "." become one "-". (A loop, not a regexp: a large
// lock normalises every name and edge.)
func NormalizeName(name string) string {
	var b strings.Builder
	b.Grow(len(name))
	sep := false
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '-' || c == '_' || c == '.':
			sep = true
			continue
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		}
		if sep {
			b.WriteByte('-')
			sep = false
		}
		b.WriteByte(c)
	}
	if sep {
		b.WriteByte('-')
	}
	return b.String()
}

// ParseWheelFilename parses a wheel file name; an sdist gets a clear refusal.
func ParseWheelFilename(filename string) (WheelName, error) {
	if strings.HasSuffix(filename, ".tar.gz") || strings.HasSuffix(filename, ".zip") {
		return WheelName{}, fmt.Errorf("%s is a source distribution: mlenv installs wheels only and never runs a build backend; build a wheel (e.g. `pip wheel --no-deps`) and lock that", filename)
	}
	if !strings.HasSuffix(filename, ".whl") {
		return WheelName{}, fmt.Errorf("%q is not a wheel file name (*.whl)", filename)
	}
	parts := strings.Split(strings.TrimSuffix(filename, ".whl"), "-")
	if len(parts) != 5 && len(parts) != 6 {
		return WheelName{}, fmt.Errorf("%q is not a valid wheel file name: want name-version[-build]-python-abi-platform.whl", filename)
	}
	w := WheelName{Distribution: parts[0], Version: parts[1]}
	if len(parts) == 6 {
		w.Build = parts[2]
	}
	n := len(parts)
	for _, py := range strings.Split(parts[n-3], ".") {
		for _, abi := range strings.Split(parts[n-2], ".") {
			for _, plat := range strings.Split(parts[n-1], ".") {
				w.Tags = append(w.Tags, py+"-"+abi+"-"+plat)
			}
		}
	}
	return w, nil
}

// Target is what an installed wheel must run on.
type Target struct {
	PythonVersion  string // "3.11"
	Implementation string // "cp"
	Libc           string // "glibc 2.36" or "musl 1.2"
	Platform       string // "linux/amd64"
}

func (t Target) machine() string {
	if strings.HasSuffix(t.Platform, "/arm64") {
		return "aarch64"
	}
	return "x86_64"
}

func (t Target) minor() int {
	parts := strings.Split(t.PythonVersion, ".")
	if len(parts) < 2 {
		return 0
	}
	m, _ := strconv.Atoi(parts[1])
	return m
}

// platformTags lists the platform tags the target accepts, best first,
// following the manylinux (PEP 600) and musllinux (PEP 656) rules.
func (t Target) platformTags() []string {
	arch := t.machine()
	kind, ver, _ := strings.Cut(t.Libc, " ")
	maj, min := 0, 0
	if a, b, ok := strings.Cut(ver, "."); ok {
		maj, _ = strconv.Atoi(a)
		min, _ = strconv.Atoi(b)
	}
	var tags []string
	if kind == "musl" {
		for m := min; m >= 0; m-- {
			tags = append(tags, fmt.Sprintf("musllinux_%d_%d_%s", maj, m, arch))
		}
		return tags
	}
	for m := min; m >= 5; m-- {
		tags = append(tags, fmt.Sprintf("manylinux_%d_%d_%s", maj, m, arch))
		// The legacy aliases rank where their glibc version does.
		switch m {
		case 17:
			tags = append(tags, "manylinux2014_"+arch)
		case 12:
			if arch == "x86_64" {
				tags = append(tags, "manylinux2010_"+arch)
			}
		case 5:
			if arch == "x86_64" {
				tags = append(tags, "manylinux1_"+arch)
			}
		}
	}
	return tags
}

// SupportedTags lists every tag the target accepts, most specific first,
// in the order pypa/packaging's sys_tags uses for CPython.
func (t Target) SupportedTags() []string {
	minor := t.minor()
	cp := fmt.Sprintf("cp3%d", minor)
	plats := t.platformTags()
	var tags []string
	for _, p := range plats {
		tags = append(tags, cp+"-"+cp+"-"+p)
	}
	for _, p := range plats {
		tags = append(tags, cp+"-abi3-"+p)
	}
	for _, p := range plats {
		tags = append(tags, cp+"-none-"+p)
	}
	for m := minor - 1; m >= 2; m-- {
		for _, p := range plats {
			tags = append(tags, fmt.Sprintf("cp3%d-abi3-%s", m, p))
		}
	}
	pys := []string{fmt.Sprintf("py3%d", minor), "py3"}
	for m := minor - 1; m >= 0; m-- {
		pys = append(pys, fmt.Sprintf("py3%d", m))
	}
	for _, py := range pys {
		for _, p := range plats {
			tags = append(tags, py+"-none-"+p)
		}
	}
	tags = append(tags, cp+"-none-any")
	for _, py := range pys {
		tags = append(tags, py+"-none-any")
	}
	return tags
}

// tagRankCache holds each target's tag -> rank map: SupportedTags builds
// hundreds of strings, and a large lock asks for it once per package.
var tagRankCache sync.Map // Target -> map[string]int

func (t Target) tagRanks() map[string]int {
	if m, ok := tagRankCache.Load(t); ok {
		return m.(map[string]int)
	}
	tags := t.SupportedTags()
	m := make(map[string]int, len(tags))
	for i, tag := range tags {
		if _, dup := m[tag]; !dup {
			m[tag] = i
		}
	}
	tagRankCache.Store(t, m)
	return m
}

// Rank returns how well a wheel fits the target (lower is better) and
// whether it fits at all.
func (t Target) Rank(w WheelName) (int, bool) {
	ranks := t.tagRanks()
	best, ok := 0, false
	for _, wt := range w.Tags {
		if r, fits := ranks[wt]; fits && (!ok || r < best) {
			best, ok = r, true
		}
	}
	return best, ok
}

// BestWheel picks the best-fitting file name among candidates, or reports
// why none fits.
func (t Target) BestWheel(project string, filenames []string) (int, error) {
	bestIdx, bestRank := -1, 0
	var sdists, seen []string
	for i, f := range filenames {
		w, err := ParseWheelFilename(f)
		if err != nil {
			if strings.HasSuffix(f, ".tar.gz") || strings.HasSuffix(f, ".zip") {
				sdists = append(sdists, f)
			}
			continue
		}
		seen = append(seen, f)
		if r, ok := t.Rank(w); ok && (bestIdx < 0 || r < bestRank) {
			bestIdx, bestRank = i, r
		}
	}
	if bestIdx >= 0 {
		return bestIdx, nil
	}
	if len(seen) == 0 && len(sdists) > 0 {
		return -1, fmt.Errorf("%s has only a source distribution (%s): mlenv installs wheels only; build a wheel and lock it", project, sdists[0])
	}
	return -1, fmt.Errorf("%s has no wheel for CPython %s on %s (%s); wheels available: %s", project, t.PythonVersion, t.Platform, t.Libc, strings.Join(seen, ", "))
}
