package lockfile

// uv.lock: a resolution for every platform at once. What a target installs
// is the dependency graph walked from the workspace's roots, with each
// edge's marker evaluated for the target, forks chosen by their
// resolution-markers, and optional dependencies and dependency groups only
// where the intent names them (as `uv sync --no-dev` does by default).

import (
	"context"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// maxUVDepth bounds the dependency walk, which recurses once per package
// on the chain: a chain of a million packages would overflow the
// goroutine stack (a fatal error); real ones are a few dozen deep.
const maxUVDepth = 10_000

// uvMaxRevision is the newest uv.lock revision this reader knows.
const uvMaxRevision = 3

type uvLockFile struct {
	Version  int `toml:"version"`
	Revision int `toml:"revision"`
	Manifest struct {
		Members []string `toml:"members"`
	} `toml:"manifest"`
	Packages []uvPackage `toml:"package"`
}

type uvPackage struct {
	Name                 string             `toml:"name"`
	Version              string             `toml:"version"`
	Source               map[string]any     `toml:"source"`
	ResolutionMarkers    []string           `toml:"resolution-markers"`
	Dependencies         []uvDep            `toml:"dependencies"`
	OptionalDependencies map[string][]uvDep `toml:"optional-dependencies"`
	DevDependencies      map[string][]uvDep `toml:"dev-dependencies"`
	Wheels               []uvWheel          `toml:"wheels"`
	Sdist                *uvWheel           `toml:"sdist"`

	norm    string
	line    int
	forks   []*Marker
	files   []pyFile
	sources string // "editable", "virtual", "directory", "git", ... when not a registry
}

type uvDep struct {
	Name    string         `toml:"name"`
	Version string         `toml:"version"`
	Source  map[string]any `toml:"source"`
	Marker  string         `toml:"marker"`
	Extra   []string       `toml:"extra"`

	marker *Marker
}

type uvWheel struct {
	URL  string `toml:"url"`
	Path string `toml:"path"`
	Hash string `toml:"hash"`
	Size *int64 `toml:"size"`
}

// UVLock is a parsed and checked uv.lock.
type UVLock struct {
	File   string
	pkgs   []uvPackage
	byName map[string][]int
	roots  []int
	lines  *lineIndex
}

// ParseUVLock reads a uv.lock; relative wheel paths are relative to relTo.
// Structural problems (unknown revision, an edge to a package not in the
// lock, a marker that does not parse) are errors naming the line.
func ParseUVLock(file string, data []byte, relTo string) (*UVLock, error) {
	var ul uvLockFile
	if err := toml.Unmarshal(data, &ul); err != nil {
		return nil, tomlError(file, err)
	}
	lines := newLineIndex(data, "[[package]]")
	if ul.Version != 1 || ul.Revision > uvMaxRevision || ul.Revision < 0 {
		return nil, &FieldError{File: file, Line: findLine(data, "revision"), Field: "version",
			Msg: fmt.Sprintf("uv.lock version %d revision %d is not one mlenv reads (version 1, revisions 1 to %d): update mlenv, or re-lock with a uv that writes this format", ul.Version, ul.Revision, uvMaxRevision)}
	}
	u := &UVLock{File: file, pkgs: ul.Packages, byName: map[string][]int{}, lines: lines}
	for i := range u.pkgs {
		p := &u.pkgs[i]
		p.line = lines.table(i)
		if p.Name == "" {
			return nil, &FieldError{File: file, Line: p.line, Msg: "package without a name"}
		}
		p.norm = NormalizeName(p.Name)
		u.byName[p.norm] = append(u.byName[p.norm], i)
		for _, k := range []string{"editable", "virtual", "directory", "path", "git", "url", "workspace"} {
			if _, ok := p.Source[k]; ok {
				p.sources = k
			}
		}
		if _, ok := p.Source["registry"]; ok {
			p.sources = ""
		}
		for _, rm := range p.ResolutionMarkers {
			m, err := ParseMarker(rm)
			if err != nil {
				return nil, &FieldError{File: file, Line: lines.find(i, "resolution-markers"), Field: p.Name, Msg: err.Error()}
			}
			p.forks = append(p.forks, m)
		}
		for j, w := range p.Wheels {
			uri := w.URL
			if uri == "" {
				uri = path.Join(relTo, w.Path)
			}
			sum, ok := strings.CutPrefix(w.Hash, "sha256:")
			if !ok || !isSHA256(sum) {
				return nil, &FieldError{File: file, Line: lines.find(i, "wheels"), Field: p.Name, Msg: fmt.Sprintf("wheels[%d] has no sha256 hash: mlenv pins every file", j)}
			}
			size := int64(-1)
			if w.Size != nil {
				size = *w.Size
			}
			p.files = append(p.files, pyFile{Filename: path.Base(strings.SplitN(uri, "?", 2)[0]), URI: uri, SHA256: sum, Size: size})
		}
	}
	// Every edge must lead to a package in the lock, with a marker that
	// parses. A large lock repeats a few markers thousands of times.
	parsed := map[string]*Marker{}
	for i := range u.pkgs {
		p := &u.pkgs[i]
		err := p.eachDepList(func(what string, deps []uvDep) error {
			for k := range deps {
				d := &deps[k]
				if _, ok := u.byName[NormalizeName(d.Name)]; !ok {
					return &FieldError{File: file, Line: u.depLine(i, d.Name), Field: p.Name,
						Msg: fmt.Sprintf("%s lists %s in %s, but no [[package]] named %s is in the lock: the file is damaged or hand-edited; run `uv lock` again", p.Name, d.Name, what, d.Name)}
				}
				if d.Marker != "" {
					m, ok := parsed[d.Marker]
					if !ok {
						var err error
						if m, err = ParseMarker(d.Marker); err != nil {
							return &FieldError{File: file, Line: u.depLine(i, d.Name), Field: p.Name, Msg: fmt.Sprintf("dependency %s: %v", d.Name, err)}
						}
						parsed[d.Marker] = m
					}
					d.marker = m
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	u.roots = u.findRoots(ul.Manifest.Members)
	if len(u.roots) == 0 && len(u.pkgs) > 0 {
		return nil, &FieldError{File: file, Msg: "no workspace root: no package has source { editable = \".\" } or { virtual = \".\" } and [manifest] lists no members"}
	}
	return u, nil
}

// depLine is the line of package i's edge to name, for messages only:
// searching it for every edge made a package with 50,000 edges take
// minutes to parse.
func (u *UVLock) depLine(i int, name string) int {
	return u.lines.find(i, `"`+name+`"`)
}

// findLine is the first line that starts with key, or 0.
func findLine(data []byte, key string) int {
	for n, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), key) {
			return n + 1
		}
	}
	return 0
}

func (p *uvPackage) eachDepList(f func(what string, deps []uvDep) error) error {
	if err := f("dependencies", p.Dependencies); err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(p.OptionalDependencies)) {
		if err := f("optional-dependencies."+k, p.OptionalDependencies[k]); err != nil {
			return err
		}
	}
	for _, k := range slices.Sorted(maps.Keys(p.DevDependencies)) {
		if err := f("dev-dependencies."+k, p.DevDependencies[k]); err != nil {
			return err
		}
	}
	return nil
}

// findRoots: the workspace members, and the project at "." itself.
func (u *UVLock) findRoots(members []string) []int {
	want := map[string]bool{}
	for _, m := range members {
		want[NormalizeName(m)] = true
	}
	var roots []int
	for i, p := range u.pkgs {
		at := ""
		for _, k := range []string{"editable", "virtual"} {
			if s, ok := p.Source[k].(string); ok {
				at = s
			}
		}
		_, ws := p.Source["workspace"]
		if want[p.norm] || at == "." || ws {
			roots = append(roots, i)
		}
	}
	return roots
}

type uvNode struct {
	pkg   int
	extra string // "" for the package itself, an extra, or "group:NAME"
}

// selectFor walks the graph for one target.
func (u *UVLock) selectFor(ctx context.Context, s *pySelect) ([]pyPackage, []PyDecision, error) {
	if err := u.checkNames(s); err != nil {
		return nil, nil, err
	}
	env := s.env
	env.ExtraSet = u.conflictNames(s)
	state := map[uvNode]int{}
	via := map[int]string{}
	// Why a name was left out, kept per name (every locked version of it
	// shares the reasons) and once per reason: noting each reason on each
	// candidate made 5,000 edges into 5,000 forks quadratic.
	rejected := map[string]*reasons{}
	reject := func(name, why string) {
		name = NormalizeName(name)
		r := rejected[name]
		if r == nil {
			r = &reasons{seen: map[string]bool{}}
			rejected[name] = r
		}
		r.add(why)
	}
	// An edge's fork depends only on its name and version on one target.
	type pickKey struct{ name, version string }
	type picked struct {
		q   int
		why string
		err error
	}
	picks := map[pickKey]picked{}
	var stack []string
	var visit func(n uvNode) error
	visit = func(n uvNode) error {
		p := &u.pkgs[n.pkg]
		if len(stack) == maxUVDepth {
			return &FieldError{File: u.File, Line: p.line, Field: p.Name,
				Msg: fmt.Sprintf("dependency chain deeper than %d packages (from %s): real ones are a few dozen deep; the file is damaged or hostile", maxUVDepth, strings.Join(stack[:3], " -> "))}
		}
		state[n] = 1
		stack = append(stack, p.Name)
		var deps []uvDep
		switch {
		case n.extra == "":
			deps = p.Dependencies
		case strings.HasPrefix(n.extra, "group:"):
			deps = p.DevDependencies[strings.TrimPrefix(n.extra, "group:")]
		default:
			deps = p.OptionalDependencies[n.extra]
		}
		for _, d := range deps {
			if d.marker != nil {
				ok, err := d.marker.Eval(env)
				if err != nil {
					return &FieldError{File: u.File, Line: u.depLine(n.pkg, d.Name), Field: p.Name, Msg: err.Error()}
				}
				if !ok {
					reject(d.Name, fmt.Sprintf("marker `%s` is false (edge from %s)", d.Marker, p.Name))
					continue
				}
			}
			key := pickKey{NormalizeName(d.Name), d.Version}
			pk, done := picks[key]
			if !done {
				pk.q, pk.why, pk.err = u.pick(d, env)
				picks[key] = pk
			}
			q, why, err := pk.q, pk.why, pk.err
			if err != nil {
				return &FieldError{File: u.File, Line: u.depLine(n.pkg, d.Name), Field: p.Name, Msg: err.Error()}
			}
			if q < 0 {
				reject(d.Name, why)
				continue
			}
			kids := []uvNode{{q, ""}}
			for _, e := range d.Extra {
				kids = append(kids, uvNode{q, NormalizeName(e)})
			}
			for _, k := range kids {
				switch state[k] {
				case 1:
					return &FieldError{File: u.File, Line: u.depLine(n.pkg, d.Name), Field: p.Name,
						Msg: fmt.Sprintf("dependency cycle: %s -> %s: mlenv installs an acyclic graph; re-lock, or report the cycle to the packages' maintainers", strings.Join(stack, " -> "), u.pkgs[q].Name)}
				case 0:
					if _, ok := via[q]; !ok {
						why := "required by " + p.Name
						if n.extra != "" {
							why += " [" + n.extra + "]"
						}
						if d.Marker != "" {
							why += fmt.Sprintf(" (marker `%s` is true)", d.Marker)
						}
						via[q] = why
					}
					if err := visit(k); err != nil {
						return err
					}
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = 2
		return nil
	}
	isRoot := map[int]bool{}
	for _, r := range u.roots {
		isRoot[r] = true
	}
	for _, r := range u.roots {
		p := &u.pkgs[r]
		nodes := []uvNode{{r, ""}}
		// s.extras and s.groups are normalised names (newPySelect).
		for _, e := range s.extras {
			if _, ok := p.OptionalDependencies[e]; ok {
				nodes = append(nodes, uvNode{r, e})
			}
		}
		for _, g := range s.groups {
			if _, ok := p.DevDependencies[g]; ok {
				nodes = append(nodes, uvNode{r, "group:" + g})
			}
		}
		// What the intent leaves out, said for the packages it concerns.
		for k, deps := range p.OptionalDependencies {
			if !slices.Contains(s.extras, NormalizeName(k)) {
				for _, d := range deps {
					reject(d.Name, fmt.Sprintf("extra %q of %s not selected (python.extras)", k, p.Name))
				}
			}
		}
		for g, deps := range p.DevDependencies {
			if !slices.Contains(s.groups, NormalizeName(g)) {
				for _, d := range deps {
					reject(d.Name, fmt.Sprintf("dependency group %q of %s not selected (python.groups)", g, p.Name))
				}
			}
		}
		for _, n := range nodes {
			if state[n] == 0 {
				if err := visit(n); err != nil {
					return nil, nil, err
				}
			}
		}
	}
	var pkgs []pyPackage
	var ds []PyDecision
	for i := range u.pkgs {
		p := &u.pkgs[i]
		d := PyDecision{Source: u.File, Package: p.Name, Version: p.Version, Platform: s.target.Platform, Python: s.target.PythonVersion}
		why, in := via[i]
		switch {
		case isRoot[i]:
			d.Reason, d.Skipped = "workspace root: your own code is not installed from the lock (add its wheel under python.wheels, or copy it with files:)", true
		case !in:
			d.Reason = "not reached from the workspace roots"
			if r := rejected[p.norm]; r != nil {
				d.Reason = r.String()
			}
		default:
			pkg, note, err := u.installable(ctx, s, i)
			if err != nil {
				return nil, nil, err
			}
			if note != "" {
				d.Reason, d.Skipped = note, true
				break
			}
			d.Installed, d.Reason = true, why
			pkgs = append(pkgs, pkg)
		}
		ds = append(ds, d)
	}
	return pkgs, ds, nil
}

// installable turns a reached package into what to install: its locked
// wheels, or a wheel from find-links for an sdist-only, directory or git
// package. A local directory or editable package without such a wheel is
// skipped with a note (it is the user's own code); an sdist without one
// is an error that says how to provide the wheel.
func (u *UVLock) installable(ctx context.Context, s *pySelect, i int) (pyPackage, string, error) {
	p := &u.pkgs[i]
	src := fmt.Sprintf("%s:%d: %s", u.File, p.line, p.Name)
	if len(p.files) > 0 {
		return pyPackage{Name: p.Name, Version: p.Version, Files: p.files, Source: src}, "", nil
	}
	pkg, ok, err := s.fromFindLinks(ctx, p.Name, p.Version, src)
	if err != nil || ok {
		return pkg, "", err
	}
	switch p.sources {
	case "editable", "virtual", "directory", "workspace":
		return pyPackage{}, fmt.Sprintf("local %s source: not installed from the lock (put its wheel in a find-links folder to install it)", p.sources), nil
	}
	what := "no wheel"
	if p.Sdist != nil {
		what = "only a source distribution"
	} else if p.sources != "" {
		what = "a " + p.sources + " source and no wheel"
	}
	return pyPackage{}, "", &FieldError{File: u.File, Line: p.line, Field: p.Name, Msg: fmt.Sprintf("%s %s has %s in the lock: mlenv installs wheels only. %s", p.Name, p.Version, what, findLinksAdvice(p.Name, p.Version))}
}

// pick chooses the locked package an edge leads to on this target: by the
// edge's version when it names one, else by the forks' resolution-markers.
// -1 with a reason when no fork applies to the target.
func (u *UVLock) pick(d uvDep, env MarkerEnv) (int, string, error) {
	cands := u.byName[NormalizeName(d.Name)]
	if d.Version != "" {
		var same []int
		for _, c := range cands {
			if u.pkgs[c].Version == d.Version {
				same = append(same, c)
			}
		}
		if len(same) == 0 {
			return -1, "", fmt.Errorf("dependency %s %s: that version of %s is not in the lock", d.Name, d.Version, d.Name)
		}
		cands = same
	}
	if len(cands) == 1 {
		return cands[0], "", nil
	}
	var match []int
	var forks []string
	for _, c := range cands {
		p := &u.pkgs[c]
		ok := len(p.forks) == 0
		for _, m := range p.forks {
			v, err := m.Eval(env)
			if err != nil {
				return -1, "", err
			}
			if v {
				ok = true
				break
			}
		}
		if ok {
			match = append(match, c)
		}
		forks = append(forks, fmt.Sprintf("%s for `%s`", p.Version, strings.Join(p.ResolutionMarkers, "` or `")))
	}
	switch len(match) {
	case 1:
		return match[0], "", nil
	case 0:
		return -1, fmt.Sprintf("fork: no locked version of %s has resolution-markers that match this target (%s)", d.Name, strings.Join(forks, "; ")), nil
	}
	return -1, "", fmt.Errorf("%s is locked %d times and more than one fork matches this target (%s)", d.Name, len(match), strings.Join(forks, "; "))
}

// conflictNames are the selected extras and groups of the roots as uv
// encodes them in conflict markers: "extra-<len>-<package>-<extra>" and
// "group-<len>-<package>-<group>", the package's normalised name.
func (u *UVLock) conflictNames(s *pySelect) map[string]bool {
	set := map[string]bool{}
	for _, r := range u.roots {
		p := &u.pkgs[r]
		for _, e := range s.extras {
			if _, ok := p.OptionalDependencies[e]; ok {
				set[fmt.Sprintf("extra-%d-%s-%s", len(p.norm), p.norm, e)] = true
			}
		}
		for _, g := range s.groups {
			if _, ok := p.DevDependencies[g]; ok {
				set[fmt.Sprintf("group-%d-%s-%s", len(p.norm), p.norm, g)] = true
			}
		}
	}
	return set
}

// checkNames refuses extras and groups that no root declares.
func (u *UVLock) checkNames(s *pySelect) error {
	extras, groups := map[string]bool{}, map[string]bool{}
	for _, r := range u.roots {
		for k := range u.pkgs[r].OptionalDependencies {
			extras[NormalizeName(k)] = true
		}
		for k := range u.pkgs[r].DevDependencies {
			groups[NormalizeName(k)] = true
		}
	}
	for _, e := range s.extras {
		if !extras[e] {
			return fmt.Errorf("python.extras: %q is not an extra of the workspace in %s (extras: %s)", e, u.File, strings.Join(slices.Sorted(maps.Keys(extras)), ", "))
		}
	}
	for _, g := range s.groups {
		if !groups[g] {
			return fmt.Errorf("python.groups: %q is not a dependency group of the workspace in %s (groups: %s)", g, u.File, strings.Join(slices.Sorted(maps.Keys(groups)), ", "))
		}
	}
	return nil
}

// reasons are the distinct reasons a package was left out, in the order
// first given; the first three are kept and the others counted.
type reasons struct {
	seen  map[string]bool
	first []string
}

func (r *reasons) add(why string) {
	if r.seen[why] {
		return
	}
	r.seen[why] = true
	if len(r.first) < 3 {
		r.first = append(r.first, why)
	}
}

func (r *reasons) String() string {
	s := strings.Join(r.first, "; ")
	if more := len(r.seen) - len(r.first); more > 0 {
		s += fmt.Sprintf("; and %d more", more)
	}
	return s
}
