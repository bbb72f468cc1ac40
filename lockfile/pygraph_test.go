package lockfile

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// The fixtures below are written in the shapes uv writes (uv.lock revision
// 3 with a workspace; `uv export --format pylock.toml`). Each marker comes
// with a plain Go predicate ("when") that the test's own walk uses, so the
// expected install set is computed without the code under test.

type fxTarget struct{ py, arch string } // "3.11", "x86_64"

type fxDep struct {
	name, version, marker string
	when                  func(fxTarget) bool
	extras                []string
}

type fxPkg struct {
	name, version string
	source        string // TOML inline table
	forks         []string
	forkWhen      func(fxTarget) bool
	deps          []fxDep
	optional      map[string][]fxDep
	groups        map[string][]fxDep
	native        bool     // cp3X wheels for both arches (else py3-none-any)
	archs         []string // native wheels only for these (default both)
	sdistOnly     bool
}

func always(fxTarget) bool { return true }

var (
	pyBelow311 = func(t fxTarget) bool { return t.py == "3.10" }
	pyIs311    = func(t fxTarget) bool { return t.py == "3.11" }
	pyFrom311  = func(t fxTarget) bool { return t.py != "3.10" }
	pyFrom312  = func(t fxTarget) bool { return t.py == "3.12" }
	onX86      = func(t fxTarget) bool { return t.arch == "x86_64" }
	never      = func(fxTarget) bool { return false }
)

const registry = `{ registry = "https://pypi.org/simple" }`

func uvWorkspace() []fxPkg {
	return []fxPkg{
		{name: "trainer", version: "0.1.0", source: `{ editable = "." }`,
			deps: []fxDep{
				{name: "torch", when: always},
				{name: "trainer-utils", when: always},
				{name: "colorama", marker: "sys_platform == 'win32'", when: never},
				{name: "exceptiongroup", marker: "python_full_version < '3.11'", when: pyBelow311},
				{name: "tomli", marker: "python_version < '3.11'", when: pyBelow311},
				{name: "rpds-py", version: "0.20.0", marker: "python_full_version < '3.11'", when: pyBelow311},
				{name: "rpds-py", version: "0.22.3", marker: "python_full_version >= '3.11'", when: pyFrom311},
				{name: "nvidia-nccl-cu12", marker: "platform_machine == 'x86_64' and sys_platform == 'linux'", when: onX86},
				{name: "jsonschema", extras: []string{"format"}, when: always},
			},
			optional: map[string][]fxDep{"viz": {{name: "matplotlib", when: always}}},
			groups: map[string][]fxDep{
				"dev":  {{name: "pytest", when: always}, {name: "ruff", when: always}},
				"lint": {{name: "mypy", when: always}},
			}},
		{name: "trainer-utils", version: "0.1.0", source: `{ editable = "packages/utils" }`,
			deps: []fxDep{{name: "numpy", when: always}, {name: "typing-extensions", marker: "python_full_version == '3.11.*'", when: pyIs311}}},
		{name: "torch", version: "2.13.0", source: registry, native: true,
			deps: []fxDep{
				{name: "numpy", when: always}, {name: "filelock", when: always},
				{name: "triton", marker: "platform_machine == 'x86_64'", when: onX86},
				{name: "typing-extensions", marker: "python_version >= '3.12'", when: pyFrom312},
			}},
		{name: "numpy", version: "2.2.1", source: registry, native: true},
		{name: "filelock", version: "3.16.1", source: registry},
		{name: "triton", version: "3.5.0", source: registry, native: true, archs: []string{"x86_64"}},
		{name: "typing-extensions", version: "4.12.2", source: registry},
		{name: "colorama", version: "0.4.6", source: registry},
		{name: "exceptiongroup", version: "1.2.2", source: registry},
		{name: "tomli", version: "2.2.1", source: registry},
		{name: "rpds-py", version: "0.20.0", source: registry, native: true, forks: []string{"python_full_version < '3.11'"}, forkWhen: pyBelow311},
		{name: "rpds-py", version: "0.22.3", source: registry, native: true, forks: []string{"python_full_version >= '3.11'"}, forkWhen: pyFrom311},
		{name: "nvidia-nccl-cu12", version: "2.27.3", source: registry, native: true, archs: []string{"x86_64", "aarch64"}},
		{name: "jsonschema", version: "4.23.0", source: registry,
			deps:     []fxDep{{name: "attrs", when: always}},
			optional: map[string][]fxDep{"format": {{name: "rfc3339-validator", when: always}}, "format-nongpl": {{name: "webcolors", when: always}}}},
		{name: "attrs", version: "24.3.0", source: registry},
		{name: "rfc3339-validator", version: "0.1.4", source: registry},
		{name: "webcolors", version: "24.11.1", source: registry},
		{name: "matplotlib", version: "3.10.0", source: registry, native: true, deps: []fxDep{{name: "numpy", when: always}}},
		{name: "pytest", version: "8.3.4", source: registry,
			deps: []fxDep{
				{name: "iniconfig", when: always},
				{name: "colorama", marker: "sys_platform == 'win32'", when: never},
				{name: "exceptiongroup", marker: "python_full_version < '3.11'", when: pyBelow311},
			}},
		{name: "iniconfig", version: "2.0.0", source: registry},
		{name: "ruff", version: "0.8.4", source: registry, native: true},
		{name: "mypy", version: "1.14.0", source: registry, native: true},
	}
}

func fxHash(s string) string { return sha([]byte(s)) }

func fxWheels(p fxPkg) []string {
	if !p.native {
		return []string{fmt.Sprintf("%s-%s-py3-none-any.whl", strings.ReplaceAll(p.name, "-", "_"), p.version)}
	}
	archs := p.archs
	if archs == nil {
		archs = []string{"x86_64", "aarch64"}
	}
	var out []string
	for _, py := range []string{"310", "311", "312"} {
		for _, a := range archs {
			out = append(out, fmt.Sprintf("%s-%s-cp%s-cp%s-manylinux_2_17_%s.manylinux2014_%s.whl", strings.ReplaceAll(p.name, "-", "_"), p.version, py, py, a, a))
		}
	}
	return out
}

func fxDepTOML(d fxDep, pkgs []fxPkg) string {
	var parts []string
	parts = append(parts, fmt.Sprintf("name = %q", d.name))
	if d.version != "" {
		parts = append(parts, fmt.Sprintf("version = %q", d.version), "source = "+registry)
	}
	if d.marker != "" {
		parts = append(parts, fmt.Sprintf("marker = %q", d.marker))
	}
	if len(d.extras) > 0 {
		parts = append(parts, fmt.Sprintf("extra = [%q]", d.extras[0]))
	}
	return "    { " + strings.Join(parts, ", ") + " },\n"
}

// uvLockTOML writes the workspace as uv does.
func uvLockTOML(pkgs []fxPkg) string {
	var b strings.Builder
	b.WriteString("version = 1\nrevision = 3\nrequires-python = \">=3.10\"\nresolution-markers = [\n    \"python_full_version >= '3.11'\",\n    \"python_full_version < '3.11'\",\n]\n\n[manifest]\nmembers = [\n    \"trainer\",\n    \"trainer-utils\",\n]\n")
	for _, p := range pkgs {
		fmt.Fprintf(&b, "\n[[package]]\nname = %q\nversion = %q\nsource = %s\n", p.name, p.version, p.source)
		if len(p.forks) > 0 {
			b.WriteString("resolution-markers = [\n")
			for _, f := range p.forks {
				fmt.Fprintf(&b, "    %q,\n", f)
			}
			b.WriteString("]\n")
		}
		if len(p.deps) > 0 {
			b.WriteString("dependencies = [\n")
			for _, d := range p.deps {
				b.WriteString(fxDepTOML(d, pkgs))
			}
			b.WriteString("]\n")
		}
		if p.source == registry {
			if p.sdistOnly {
				fmt.Fprintf(&b, "sdist = { url = \"https://files.example.invalid/%s-%s.tar.gz\", hash = \"sha256:%s\", size = 100 }\n", p.name, p.version, fxHash(p.name+"sdist"))
			} else {
				b.WriteString("wheels = [\n")
				for _, w := range fxWheels(p) {
					fmt.Fprintf(&b, "    { url = \"https://files.example.invalid/%s\", hash = \"sha256:%s\", size = %d },\n", w, fxHash(w), 1000+len(w))
				}
				b.WriteString("]\n")
			}
		}
		for _, sec := range []struct {
			name string
			m    map[string][]fxDep
		}{{"optional-dependencies", p.optional}, {"dev-dependencies", p.groups}} {
			if len(sec.m) == 0 {
				continue
			}
			fmt.Fprintf(&b, "\n[package.%s]\n", sec.name)
			for _, k := range slices.Sorted(maps.Keys(sec.m)) {
				fmt.Fprintf(&b, "%s = [\n", k)
				for _, d := range sec.m[k] {
					b.WriteString(fxDepTOML(d, pkgs))
				}
				b.WriteString("]\n")
			}
		}
	}
	return b.String()
}

// expectUV is the plain walk: from the roots, follow every edge whose
// predicate holds, to the package with that name (and version, or the
// fork whose predicate holds), with the extras the edge names.
func expectUV(pkgs []fxPkg, t fxTarget, extras, groups []string) []string {
	find := func(d fxDep) *fxPkg {
		for i := range pkgs {
			p := &pkgs[i]
			if p.name != d.name || (d.version != "" && p.version != d.version) {
				continue
			}
			if d.version == "" && p.forkWhen != nil && !p.forkWhen(t) {
				continue
			}
			return p
		}
		panic("fixture edge to nowhere: " + d.name)
	}
	got := map[string]bool{}
	var walk func(deps []fxDep)
	walk = func(deps []fxDep) {
		for _, d := range deps {
			if !d.when(t) {
				continue
			}
			p := find(d)
			key := p.name + "==" + p.version
			if !got[key] {
				got[key] = true
				walk(p.deps)
			}
			for _, e := range d.extras {
				walk(p.optional[e])
			}
		}
	}
	for _, p := range pkgs {
		if p.source == registry {
			continue // roots are the editable members
		}
		walk(p.deps)
		for _, e := range extras {
			walk(p.optional[e])
		}
		for _, g := range groups {
			walk(p.groups[g])
		}
	}
	for _, p := range pkgs { // the roots themselves are never installed
		if p.source != registry {
			delete(got, p.name+"=="+p.version)
		}
	}
	var out []string
	for k := range got {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// lockedSets resolves an intent and returns, per platform, name==version
// of every wheel it locked.
func lockedSets(t *testing.T, in *Intent, r *Resolver) map[string][]string {
	t.Helper()
	l, err := r.Resolve(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, w := range l.Wheels {
		for _, p := range w.Platforms {
			out[p] = append(out[p], w.Name+"=="+w.Version)
		}
	}
	for _, v := range out {
		sort.Strings(v)
	}
	return out
}

func intentFor(py, lockKey string, extras, groups []string) string {
	s := fmt.Sprintf("base: scratch\nplatforms: [linux/amd64, linux/arm64]\npython:\n  version: %q\n  %s\n", py, lockKey)
	if extras != nil {
		s += fmt.Sprintf("  extras: [%s]\n", strings.Join(extras, ", "))
	}
	if groups != nil {
		s += fmt.Sprintf("  groups: [%s]\n", strings.Join(groups, ", "))
	}
	return s
}

func TestUVLockInstallSetIsTheGraphWalk(t *testing.T) {
	pkgs := uvWorkspace()
	lock := []byte(uvLockTOML(pkgs))
	cases := []struct{ extras, groups []string }{{nil, nil}, {[]string{"viz"}, []string{"dev"}}}
	for _, py := range []string{"3.10", "3.11", "3.12"} {
		for _, c := range cases {
			in := project(t, intentFor(py, "uv-lock: uv.lock", c.extras, c.groups), map[string][]byte{"uv.lock": lock})
			var notes []string
			got := lockedSets(t, in, &Resolver{Warn: func(s string) { notes = append(notes, s) }})
			for plat, arch := range map[string]string{"linux/amd64": "x86_64", "linux/arm64": "aarch64"} {
				want := expectUV(pkgs, fxTarget{py, arch}, c.extras, c.groups)
				if strings.Join(got[plat], " ") != strings.Join(want, " ") {
					t.Errorf("Python %s %s extras %v groups %v:\n got %v\nwant %v", py, plat, c.extras, c.groups, got[plat], want)
				}
			}
			all := strings.Join(notes, "\n")
			for _, n := range []string{"colorama 0.4.6 is in", "skipping trainer 0.1.0", "skipping trainer-utils 0.1.0", "webcolors 24.11.1 is in"} {
				if !strings.Contains(all, n) {
					t.Errorf("Python %s: no note %q in:\n%s", py, n, all)
				}
			}
		}
	}
}

func TestUVLockExplainSaysWhy(t *testing.T) {
	in := project(t, intentFor("3.11", "uv-lock: uv.lock", nil, nil), map[string][]byte{"uv.lock": []byte(uvLockTOML(uvWorkspace()))})
	why := map[string]string{}
	r := &Resolver{Explain: func(d PyDecision) {
		state := "out"
		if d.Installed {
			state = "in"
		}
		why[d.Package+" "+d.Version+" "+d.Platform] = state + ": " + d.Reason + " " + d.Wheel
	}}
	if _, err := r.Resolve(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"colorama 0.4.6 linux/amd64":          "out: marker `sys_platform == 'win32'` is false",
		"rpds-py 0.20.0 linux/arm64":          "out: marker `python_full_version < '3.11'` is false",
		"rpds-py 0.22.3 linux/arm64":          "in: required by trainer (marker `python_full_version >= '3.11'` is true) rpds_py-0.22.3-cp311-cp311-manylinux_2_17_aarch64",
		"pytest 8.3.4 linux/amd64":            `out: dependency group "dev" of trainer not selected`,
		"matplotlib 3.10.0 linux/amd64":       `out: extra "viz" of trainer not selected`,
		"triton 3.5.0 linux/arm64":            "out: marker `platform_machine == 'x86_64'` is false (edge from torch)",
		"trainer 0.1.0 linux/amd64":           "out: workspace root",
		"rfc3339-validator 0.1.4 linux/amd64": "in: required by jsonschema",
	}
	for k, w := range want {
		if !strings.HasPrefix(why[k], w) && !strings.Contains(why[k], w) {
			t.Errorf("%s: explained %q, want %q", k, why[k], w)
		}
	}
}

func TestUVLockBadInputNamesFileLineAndPackage(t *testing.T) {
	head := "version = 1\nrevision = 3\nrequires-python = \">=3.10\"\n"
	root := "\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\nsource = { virtual = \".\" }\n"
	pkg := func(name, deps string) string {
		w := name + "-1.0-py3-none-any.whl"
		return fmt.Sprintf("\n[[package]]\nname = %q\nversion = \"1.0\"\nsource = %s\n%swheels = [{ url = \"https://files.example.invalid/%s\", hash = \"sha256:%s\", size = 10 }]\n", name, registry, deps, w, fxHash(w))
	}
	cases := []struct {
		name, lock string
		line       int
		contains   []string
	}{
		{"cycle", head + root + "dependencies = [{ name = \"a\" }]\n" + pkg("a", "dependencies = [{ name = \"b\" }]\n") + pkg("b", "dependencies = [{ name = \"a\" }]\n"),
			22, []string{"cycle", "app -> a -> b -> a", "b"}},
		{"edge to a missing package", head + root + "dependencies = [{ name = \"a\" }]\n" + pkg("a", "dependencies = [{ name = \"ghost\" }]\n"),
			15, []string{"ghost", "a lists ghost"}},
		{"unknown revision", "version = 1\nrevision = 9\n" + root, 2, []string{"revision 9", "update mlenv"}},
		{"marker that does not parse", head + root + "dependencies = [{ name = \"a\", marker = \"python_version >>= '3'\" }]\n" + pkg("a", ""),
			9, []string{"app", "dependency a", "python_version >>="}},
		{"fork marker that does not parse", head + root + "dependencies = [{ name = \"a\" }]\n" + strings.Replace(pkg("a", ""), "source", "resolution-markers = [\"sys_platform = 'x'\"]\nsource", 1),
			14, []string{"a", "sys_platform = 'x'"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := project(t, intentFor("3.11", "uv-lock: uv.lock", nil, nil), map[string][]byte{"uv.lock": []byte(c.lock)})
			_, err := (&Resolver{}).Resolve(context.Background(), in)
			wantFieldError(t, err, c.line, filepath.Join(in.Dir, "uv.lock")+fmt.Sprintf(":%d", c.line))
			for _, s := range c.contains {
				if err != nil && !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

func TestUVLockUnknownExtraOrGroupRefused(t *testing.T) {
	lock := []byte(uvLockTOML(uvWorkspace()))
	for _, c := range []struct{ intent, want string }{
		{intentFor("3.11", "uv-lock: uv.lock", []string{"cuda"}, nil), `"cuda" is not an extra`},
		{intentFor("3.11", "uv-lock: uv.lock", nil, []string{"docs"}), `"docs" is not a dependency group`},
	} {
		in := project(t, c.intent, map[string][]byte{"uv.lock": lock})
		if _, err := (&Resolver{}).Resolve(context.Background(), in); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want %q", err, c.want)
		}
	}
}
