package lockfile

// pylock.toml (PEP 751): one list of packages, each with the marker that
// says where it applies. Markers are evaluated in the lock-file context:
// "extras" and "dependency_groups" are the sets the intent selects
// (default-groups when python.groups is not given).

import (
	"context"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

type pylockFile struct {
	LockVersion     string          `toml:"lock-version"`
	Environments    []string        `toml:"environments"`
	RequiresPython  string          `toml:"requires-python"`
	Extras          []string        `toml:"extras"`
	DependencyGroup []string        `toml:"dependency-groups"`
	DefaultGroups   []string        `toml:"default-groups"`
	Packages        []pylockPackage `toml:"packages"`
}

type pylockPackage struct {
	Name           string         `toml:"name"`
	Version        string         `toml:"version"`
	Marker         string         `toml:"marker"`
	RequiresPython string         `toml:"requires-python"`
	Wheels         []pylockWheel  `toml:"wheels"`
	Sdist          *pylockWheel   `toml:"sdist"`
	Archive        *pylockWheel   `toml:"archive"`
	Directory      map[string]any `toml:"directory"`
	VCS            map[string]any `toml:"vcs"`

	marker         *Marker
	requiresPython []Specifier
	files          []pyFile
	line           int
}

type pylockWheel struct {
	Name   string            `toml:"name"`
	URL    string            `toml:"url"`
	Path   string            `toml:"path"`
	Size   *int64            `toml:"size"`
	Hashes map[string]string `toml:"hashes"`
}

// Pylock is a parsed and checked pylock.toml.
type Pylock struct {
	File           string
	envs           []*Marker
	requiresPython []Specifier
	extras, groups map[string]bool
	defaultGroups  []string
	pkgs           []pylockPackage
}

// ParsePylock reads a pylock.toml; relative paths are relative to relTo.
func ParsePylock(file string, data []byte, relTo string) (*Pylock, error) {
	var pl pylockFile
	if err := toml.Unmarshal(data, &pl); err != nil {
		return nil, tomlError(file, err)
	}
	if !strings.HasPrefix(pl.LockVersion, "1.") {
		return nil, &FieldError{File: file, Line: findLine(data, "lock-version"), Field: "lock-version", Msg: fmt.Sprintf("%q is not a PEP 751 version 1.x lock", pl.LockVersion)}
	}
	lines := newLineIndex(data, "[[packages]]")
	l := &Pylock{File: file, pkgs: pl.Packages, extras: map[string]bool{}, groups: map[string]bool{}}
	for _, e := range pl.Environments {
		m, err := ParseMarker(e)
		if err != nil {
			return nil, &FieldError{File: file, Line: findLine(data, "environments"), Field: "environments", Msg: err.Error()}
		}
		l.envs = append(l.envs, m)
	}
	var err error
	if l.requiresPython, err = parseSpecifierSet(pl.RequiresPython); err != nil {
		return nil, &FieldError{File: file, Line: findLine(data, "requires-python"), Field: "requires-python", Msg: err.Error()}
	}
	for _, e := range pl.Extras {
		l.extras[NormalizeName(e)] = true
	}
	for _, g := range pl.DependencyGroup {
		l.groups[NormalizeName(g)] = true
	}
	for _, g := range pl.DefaultGroups {
		l.defaultGroups = append(l.defaultGroups, NormalizeName(g))
	}
	for i := range l.pkgs {
		p := &l.pkgs[i]
		p.line = lines.table(i)
		fail := func(field, format string, args ...any) error {
			return &FieldError{File: file, Line: lines.find(i, field), Field: fmt.Sprintf("packages[%d] (%s)", i, p.Name), Msg: fmt.Sprintf(format, args...)}
		}
		if p.Name == "" {
			return nil, fail("name", "has no name")
		}
		if p.Marker != "" {
			if p.marker, err = ParseMarker(p.Marker); err != nil {
				return nil, fail("marker", "%v", err)
			}
		}
		if p.requiresPython, err = parseSpecifierSet(p.RequiresPython); err != nil {
			return nil, fail("requires-python", "%v", err)
		}
		ws := p.Wheels
		if p.Archive != nil && strings.HasSuffix(strings.SplitN(p.Archive.URL+p.Archive.Path, "?", 2)[0], ".whl") {
			ws = append(ws, *p.Archive) // a wheel given as an archive URL
		}
		for j, w := range ws {
			name, uri := w.Name, w.URL
			if uri == "" && w.Path != "" {
				uri = path.Join(relTo, w.Path)
			}
			if uri == "" {
				return nil, fail("wheels", "wheels[%d] has neither url nor path", j)
			}
			if name == "" {
				name = path.Base(strings.SplitN(uri, "?", 2)[0])
			}
			sum := w.Hashes["sha256"]
			if !isSHA256(sum) {
				return nil, fail("wheels", "wheels[%d] has no sha256 hash: mlenv pins every file", j)
			}
			size := int64(-1)
			if w.Size != nil {
				size = *w.Size
			}
			p.files = append(p.files, pyFile{Filename: name, URI: uri, SHA256: sum, Size: size})
		}
	}
	return l, nil
}

// parseSpecifierSet parses comma-separated clauses (">=3.10, <4").
func parseSpecifierSet(s string) ([]Specifier, error) {
	var out []Specifier
	for _, c := range strings.Split(s, ",") {
		if strings.TrimSpace(c) == "" {
			continue
		}
		sp, err := ParseSpecifier(c)
		if err != nil {
			return nil, err
		}
		out = append(out, sp)
	}
	return out, nil
}

func specifiersContain(set []Specifier, version string) bool {
	for _, sp := range set {
		if !sp.Contains(version) {
			return false
		}
	}
	return true
}

// selectFor picks the packages whose marker holds on the target.
func (l *Pylock) selectFor(ctx context.Context, s *pySelect) ([]pyPackage, []PyDecision, error) {
	for _, e := range s.extras {
		if !l.extras[e] {
			return nil, nil, fmt.Errorf("python.extras: %q is not among the extras %s declares (%s)", e, l.File, strings.Join(slices.Sorted(maps.Keys(l.extras)), ", "))
		}
	}
	groups := s.groups
	if !s.groupsSet {
		groups = l.defaultGroups
	}
	for _, g := range s.groups {
		if !l.groups[g] {
			return nil, nil, fmt.Errorf("python.groups: %q is not among the dependency-groups %s declares (%s)", g, l.File, strings.Join(slices.Sorted(maps.Keys(l.groups)), ", "))
		}
	}
	env := s.target.MarkerEnv(s.extras, groups)
	full := env.Vars["python_full_version"]
	if !specifiersContain(l.requiresPython, full) {
		return nil, nil, fmt.Errorf("%s: requires-python does not admit Python %s", l.File, full)
	}
	if len(l.envs) > 0 {
		ok := false
		for _, m := range l.envs {
			v, err := m.Eval(env)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: environments: %w", l.File, err)
			}
			ok = ok || v
		}
		if !ok {
			return nil, nil, fmt.Errorf("%s does not cover Python %s on %s: none of its environments matches; re-lock for this target", l.File, full, s.target.Platform)
		}
	}
	var pkgs []pyPackage
	var ds []PyDecision
	chosen := map[string]int{}
	for i := range l.pkgs {
		p := &l.pkgs[i]
		d := PyDecision{Source: l.File, Package: p.Name, Version: p.Version, Platform: s.target.Platform, Python: s.target.PythonVersion}
		src := fmt.Sprintf("%s:%d: %s", l.File, p.line, p.Name)
		in := true
		d.Reason = "no marker: every target"
		if p.marker != nil {
			v, err := p.marker.Eval(env)
			if err != nil {
				return nil, nil, &FieldError{File: l.File, Line: p.line, Field: p.Name, Msg: err.Error()}
			}
			in = v
			d.Reason = fmt.Sprintf("marker `%s` is %v", p.Marker, v)
		}
		if in && p.RequiresPython != "" {
			if !specifiersContain(p.requiresPython, full) {
				in, d.Reason = false, fmt.Sprintf("requires-python %q excludes Python %s", p.RequiresPython, full)
			}
		}
		if !in {
			ds = append(ds, d)
			continue
		}
		if prev, dup := chosen[NormalizeName(p.Name)]; dup {
			return nil, nil, &FieldError{File: l.File, Line: p.line, Field: p.Name,
				Msg: fmt.Sprintf("%s is locked twice for Python %s on %s (lines %d and %d): their markers overlap", p.Name, full, s.target.Platform, l.pkgs[prev].line, p.line)}
		}
		chosen[NormalizeName(p.Name)] = i
		pkg := pyPackage{Name: p.Name, Version: p.Version, Files: p.files, Source: src}
		if len(p.files) == 0 {
			got, ok, err := s.fromFindLinks(ctx, p.Name, p.Version, src)
			if err != nil {
				return nil, nil, err
			}
			switch {
			case ok:
				pkg = got
				d.Reason += "; wheel from find-links"
			case p.Directory != nil:
				d.Skipped = true
				d.Reason = fmt.Sprintf("directory %v: your own code is not installed from the lock (put its wheel in a find-links folder, or copy it with files:)", p.Directory["path"])
				ds = append(ds, d)
				continue
			default:
				what := "no wheel"
				switch {
				case p.Sdist != nil:
					what = "only a source distribution"
				case p.VCS != nil:
					what = "only a VCS source"
				case p.Archive != nil:
					what = "only a source archive"
				}
				return nil, nil, &FieldError{File: l.File, Line: p.line, Field: p.Name, Msg: fmt.Sprintf("%s %s has %s: mlenv installs wheels only. %s", p.Name, p.Version, what, findLinksAdvice(p.Name, p.Version))}
			}
		}
		d.Installed = true
		pkgs = append(pkgs, pkg)
		ds = append(ds, d)
	}
	return pkgs, ds, nil
}
