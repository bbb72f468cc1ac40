package lockfile

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/mlenv/mlenv/internal/testutil"
)

// pylockEntry is one [[packages]] entry with the predicate the test's own
// selection uses in place of its marker.
type pylockEntry struct {
	name, version, marker string
	when                  func(t fxTarget, extras, groups []string) bool
	native                bool
	kind                  string // "" wheels, "directory", "sdist"
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func pylockEntries() []pylockEntry {
	any3 := func(fxTarget, []string, []string) bool { return true }
	py := func(f func(fxTarget) bool) func(fxTarget, []string, []string) bool {
		return func(t fxTarget, _, _ []string) bool { return f(t) }
	}
	return []pylockEntry{
		{name: "trainer", version: "0.1.0", kind: "directory", when: any3},
		{name: "numpy", version: "1.26.4", marker: "python_full_version < '3.11'", when: py(pyBelow311), native: true},
		{name: "numpy", version: "2.0.2", marker: "python_full_version == '3.11.*'", when: py(pyIs311), native: true},
		{name: "numpy", version: "2.2.0", marker: "python_full_version >= '3.12'", when: py(pyFrom312), native: true},
		{name: "torch", version: "2.13.0", when: any3, native: true},
		{name: "nvidia-nccl-cu12", version: "2.27.3", marker: "platform_machine == 'x86_64' and sys_platform == 'linux'", when: py(onX86), native: true},
		{name: "colorama", version: "0.4.6", marker: "sys_platform == 'win32'", when: py(never)},
		{name: "pytest", version: "8.3.4", marker: "'dev' in dependency_groups", when: func(_ fxTarget, _, g []string) bool { return has(g, "dev") }},
		{name: "matplotlib", version: "3.10.0", marker: "'viz' in extras", when: func(_ fxTarget, e, _ []string) bool { return has(e, "viz") }, native: true},
		{name: "antlr4-python3-runtime", version: "4.9.3", marker: "'docs' in dependency_groups", kind: "sdist",
			when: func(_ fxTarget, _, g []string) bool { return has(g, "docs") }},
	}
}

func pylockTOML(es []pylockEntry) string {
	var b strings.Builder
	b.WriteString("lock-version = \"1.0\"\nrequires-python = \">=3.10\"\nextras = [\"viz\"]\ndependency-groups = [\"dev\", \"docs\"]\ndefault-groups = [\"dev\"]\ncreated-by = \"uv\"\n")
	for _, e := range es {
		fmt.Fprintf(&b, "\n[[packages]]\nname = %q\n", e.name)
		if e.kind != "directory" {
			fmt.Fprintf(&b, "version = %q\n", e.version)
		}
		if e.marker != "" {
			fmt.Fprintf(&b, "marker = %q\n", e.marker)
		}
		switch e.kind {
		case "directory":
			b.WriteString("directory = { path = \".\", editable = true }\n")
		case "sdist":
			fmt.Fprintf(&b, "sdist = { url = \"https://files.example.invalid/%s-%s.tar.gz\", hashes = { sha256 = %q } }\n", e.name, e.version, fxHash(e.name))
		default:
			b.WriteString("wheels = [\n")
			for _, w := range fxWheels(fxPkg{name: e.name, version: e.version, native: e.native}) {
				fmt.Fprintf(&b, "    { url = \"https://files.example.invalid/%s\", size = %d, hashes = { sha256 = %q } },\n", w, 1000+len(w), fxHash(w))
			}
			b.WriteString("]\n")
		}
	}
	return b.String()
}

func expectPylock(es []pylockEntry, t fxTarget, extras, groups []string) []string {
	var out []string
	for _, e := range es {
		if e.kind == "" && e.when(t, extras, groups) {
			out = append(out, e.name+"=="+e.version)
		}
	}
	sort.Strings(out)
	return out
}

func TestPylockInstallSetFollowsMarkersExtrasAndGroups(t *testing.T) {
	es := pylockEntries()
	lock := []byte(pylockTOML(es))
	cases := []struct {
		extras, groups []string
		effective      []string // the groups markers see
	}{
		{nil, nil, []string{"dev"}}, // default-groups
		{[]string{"viz"}, []string{}, []string{}},
	}
	for _, py := range []string{"3.10", "3.11", "3.12"} {
		for _, c := range cases {
			in := project(t, intentFor(py, "pylock: pylock.toml", c.extras, c.groups), map[string][]byte{"pylock.toml": lock})
			var notes []string
			got := lockedSets(t, in, &Resolver{Warn: func(s string) { notes = append(notes, s) }})
			for plat, arch := range map[string]string{"linux/amd64": "x86_64", "linux/arm64": "aarch64"} {
				want := expectPylock(es, fxTarget{py, arch}, c.extras, c.effective)
				if strings.Join(got[plat], " ") != strings.Join(want, " ") {
					t.Errorf("Python %s %s extras %v groups %v:\n got %v\nwant %v", py, plat, c.extras, c.groups, got[plat], want)
				}
			}
			all := strings.Join(notes, "\n")
			if !strings.Contains(all, "skipping trainer") || !strings.Contains(all, "colorama 0.4.6 is in") {
				t.Errorf("notes do not name the skipped project and the never-installed colorama:\n%s", all)
			}
		}
	}
}

func TestPylockSdistOnlyRefusedWithAdvice(t *testing.T) {
	lock := []byte(pylockTOML(pylockEntries()))
	in := project(t, intentFor("3.11", "pylock: pylock.toml", nil, []string{"docs"}), map[string][]byte{"pylock.toml": lock})
	_, err := (&Resolver{}).Resolve(context.Background(), in)
	wantFieldError(t, err, 0, "antlr4-python3-runtime 4.9.3 has only a source distribution")
	if err != nil && (!strings.Contains(err.Error(), "pip wheel") || !strings.Contains(err.Error(), "find-links")) {
		t.Errorf("refusal %q does not say how to provide a wheel", err)
	}
	if err != nil && !strings.Contains(err.Error(), filepath.Join(in.Dir, "pylock.toml")+":") {
		t.Errorf("refusal %q does not name the file and line", err)
	}

	// With the wheel the user built in a find-links folder, the lock goes on.
	w := testutil.Wheel{Name: "antlr4_python3_runtime", Version: "4.9.3", Files: map[string]string{"antlr4/__init__.py": ""}}
	wb := w.Bytes()
	in = project(t, intentFor("3.11", "pylock: pylock.toml\n  find-links: [built]", nil, []string{"docs"}),
		map[string][]byte{"pylock.toml": lock, "built/" + w.Filename(): wb})
	l, err := (&Resolver{}).Resolve(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, lw := range l.Wheels {
		if lw.Filename == w.Filename() {
			found = lw.SHA256 == sha(wb) && lw.URI == "built/"+w.Filename() && len(lw.Platforms) == 2
		}
	}
	if !found {
		t.Errorf("the find-links wheel is not locked with its own hash on both platforms: %+v", l.Wheels)
	}
}

func TestPylockOverlappingForksAndBadMarker(t *testing.T) {
	es := pylockEntries()
	es[2].marker = "python_full_version >= '3.10'" // now overlaps 1.26.4 on 3.10
	in := project(t, intentFor("3.10", "pylock: pylock.toml", nil, nil), map[string][]byte{"pylock.toml": []byte(pylockTOML(es))})
	_, err := (&Resolver{}).Resolve(context.Background(), in)
	wantFieldError(t, err, 0, "numpy is locked twice for Python 3.10.0")

	es = pylockEntries()
	es[1].marker = "python_full_version < 3.11" // unquoted version
	_, err = ParsePylock("pylock.toml", []byte(pylockTOML(es)), ".")
	wantFieldError(t, err, 15, "pylock.toml:15: packages[1] (numpy)")
}
