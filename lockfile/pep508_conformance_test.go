package lockfile

import (
	"encoding/json"
	"os"
	"sort"
	"testing"
)

// The vectors are pypa/packaging's own test data (tests/test_version.py,
// tests/test_specifiers.py, tests/test_markers.py), carried over by
// testdata/packaging/extract.py; vectors.json names the commit.
type packagingVectors struct {
	Source              string      `json:"source"`
	VersionsSorted      []string    `json:"versions_sorted"`
	VersionsInvalid     []string    `json:"versions_invalid"`
	VersionsNormalized  [][2]string `json:"versions_normalized"`
	SpecifiersValid     []string    `json:"specifiers_valid"`
	SpecifiersInvalid   []string    `json:"specifiers_invalid"`
	SpecifierContains   [][3]any    `json:"specifier_contains"`
	SpecifierInvalidVer [][3]any    `json:"specifier_invalid_version"`
	SpecifierArbitrary  [][3]any    `json:"specifier_arbitrary"`
	MarkersValid        []string    `json:"markers_valid"`
	MarkersInvalid      []string    `json:"markers_invalid"`
	MarkersEvaluate     [][3]any    `json:"markers_evaluate"`
	MarkersSets         [][2]any    `json:"markers_sets"`
}

func loadVectors(t *testing.T) packagingVectors {
	t.Helper()
	b, err := os.ReadFile("testdata/packaging/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v packagingVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.VersionsSorted) < 50 || len(v.SpecifierContains) < 100 || len(v.MarkersValid) < 1000 {
		t.Fatalf("vectors.json looks truncated: %d versions, %d specifier cases, %d markers", len(v.VersionsSorted), len(v.SpecifierContains), len(v.MarkersValid))
	}
	return v
}

func TestPEP440VersionVectors(t *testing.T) {
	v := loadVectors(t)
	parsed := make([]Version, len(v.VersionsSorted))
	for i, s := range v.VersionsSorted {
		p, err := ParseVersion(s)
		if err != nil {
			t.Errorf("valid version %q refused: %v", s, err)
			continue
		}
		parsed[i] = p
	}
	// VERSIONS is listed in ascending order; every pair must compare so.
	for i := range parsed {
		for j := range parsed {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := parsed[i].Compare(parsed[j]); got != want {
				t.Errorf("Compare(%q, %q) = %d, want %d", v.VersionsSorted[i], v.VersionsSorted[j], got, want)
			}
		}
	}
	shuffled := append([]Version(nil), parsed...)
	sort.Slice(shuffled, func(a, b int) bool { return shuffled[a].String() > shuffled[b].String() })
	sort.SliceStable(shuffled, func(a, b int) bool { return shuffled[a].Compare(shuffled[b]) < 0 })
	for i := range shuffled {
		if shuffled[i].Compare(parsed[i]) != 0 {
			t.Fatalf("sorting gives %s at %d, want %s", shuffled[i], i, parsed[i])
		}
	}
	for _, s := range v.VersionsInvalid {
		if _, err := ParseVersion(s); err == nil {
			t.Errorf("invalid version %q accepted", s)
		}
	}
	for _, c := range v.VersionsNormalized {
		p, err := ParseVersion(c[0])
		if err != nil {
			t.Errorf("%q: %v", c[0], err)
			continue
		}
		if p.String() != c[1] {
			t.Errorf("normalised %q = %q, want %q", c[0], p.String(), c[1])
		}
	}
}

func TestPEP440SpecifierVectors(t *testing.T) {
	v := loadVectors(t)
	for _, s := range v.SpecifiersValid {
		if _, err := ParseSpecifier(s); err != nil {
			t.Errorf("valid specifier %q refused: %v", s, err)
		}
	}
	for _, s := range v.SpecifiersInvalid {
		if _, err := ParseSpecifier(s); err == nil {
			t.Errorf("invalid specifier %q accepted", s)
		}
	}
	check := func(version, spec string, want bool) {
		t.Helper()
		sp, err := ParseSpecifier(spec)
		if err != nil {
			t.Errorf("%s: %v", spec, err)
			return
		}
		if got := sp.Contains(version); got != want {
			t.Errorf("%q in %q = %v, want %v", version, spec, got, want)
		}
	}
	for _, c := range v.SpecifierContains {
		check(c[0].(string), c[1].(string), c[2].(bool))
	}
	for _, c := range v.SpecifierArbitrary {
		check(c[0].(string), c[1].(string), c[2].(bool))
	}
	for _, c := range v.SpecifierInvalidVer {
		check(c[1].(string), c[0].(string), c[2].(bool))
	}
	t.Logf("%d specifier cases from %s", len(v.SpecifierContains)+len(v.SpecifierArbitrary)+len(v.SpecifierInvalidVer), v.Source)
}

func TestPEP508MarkerVectors(t *testing.T) {
	v := loadVectors(t)
	for _, s := range v.MarkersValid {
		if _, err := ParseMarker(s); err != nil {
			t.Errorf("valid marker %q refused: %v", s, err)
		}
	}
	for _, s := range v.MarkersInvalid {
		if _, err := ParseMarker(s); err == nil {
			t.Errorf("invalid marker %q accepted", s)
		}
	}
	for _, nl := range []string{"\n", "\r", "\r\n"} {
		if _, err := ParseMarker(`python_version >= "3"` + nl); err == nil {
			t.Errorf("marker with a trailing %q accepted", nl)
		}
	}
	// packaging evaluates the cases without an environment on the host
	// running the tests; here that host is a Linux CPython.
	linux := Target{PythonVersion: "3.11", Platform: "linux/amd64"}
	for _, c := range v.MarkersEvaluate {
		src, want := c[0].(string), c[2].(bool)
		m, err := ParseMarker(src)
		if err != nil {
			t.Errorf("%q: %v", src, err)
			continue
		}
		env := MarkerEnv{Vars: linux.markerEnv()}
		if overrides, ok := c[1].(map[string]any); ok {
			for k, val := range overrides {
				env.Vars[k] = val.(string)
			}
		}
		got, err := m.Eval(env)
		if err != nil || got != want {
			t.Errorf("%q with %v = %v, %v; want %v", src, c[1], got, err, want)
		}
	}
	for _, c := range v.MarkersSets {
		src, want := c[0].(string), c[1].(bool)
		m, err := ParseMarker(src)
		if err != nil {
			t.Errorf("%q: %v", src, err)
			continue
		}
		set := map[string]bool{"foo": true, "bar": true}
		got, err := m.Eval(MarkerEnv{Vars: linux.markerEnv(), Extras: set, Groups: set})
		if err != nil || got != want {
			t.Errorf("%q with {foo, bar} = %v, %v; want %v", src, got, err, want)
		}
	}
}

// Cases from tests/test_markers.py that are code, not data tables.
func TestPEP508MarkerRules(t *testing.T) {
	env := func(kv ...string) MarkerEnv {
		e := MarkerEnv{Vars: map[string]string{}}
		for i := 0; i+1 < len(kv); i += 2 {
			e.Vars[kv[i]] = kv[i+1]
		}
		return e
	}
	cases := []struct {
		marker string
		env    MarkerEnv
		want   bool
	}{
		{`"2.7.9" < python_full_version`, env("python_full_version", "2.7.10"), true},
		{`"2.7.9" < python_full_version`, env("python_full_version", "2.7.8"), false},
		{`"b" < python_full_version`, env("python_full_version", "c"), false},
		{`"b" < python_full_version`, env("python_full_version", "a"), false},
		{`python_full_version > "3.6.2"`, env("python_full_version", "3.11.0a5"), true},
		{`extra == "im_valid"`, env("extra", ""), false},
		{`(extra == "Foo_Bar" or extra == "Baz") and python_version >= "3"`, env("extra", "foo-bar", "python_version", "3.12"), true},
		{`"S_P__A_M" in extras`, MarkerEnv{Extras: map[string]bool{"s-p-a-m": true}}, true},
		{`"Foo_Bar" not in dependency_groups`, MarkerEnv{Groups: map[string]bool{"foo-bar": true}}, false},
	}
	for _, c := range cases {
		m, err := ParseMarker(c.marker)
		if err != nil {
			t.Errorf("%q: %v", c.marker, err)
			continue
		}
		if got, err := m.Eval(c.env); err != nil || got != c.want {
			t.Errorf("%q = %v, %v; want %v", c.marker, got, err, c.want)
		}
	}
	undefined := []struct {
		marker string
		env    MarkerEnv
	}{
		{`'2.7.0' ~= os_name`, env("os_name", "posix")},
		{`os_name === 'posix'`, env("os_name", "posix")},
		{`"foo" in extras`, env()}, // outside a lock file extras is undefined
		{`extras == "foo"`, MarkerEnv{Extras: map[string]bool{}}},
		{`dependency_groups >= "foo"`, MarkerEnv{Groups: map[string]bool{}}},
	}
	for _, c := range undefined {
		m, err := ParseMarker(c.marker)
		if err != nil {
			t.Errorf("%q: %v", c.marker, err)
			continue
		}
		if got, err := m.Eval(c.env); err == nil {
			t.Errorf("%q evaluated to %v, want an error", c.marker, got)
		}
	}
}

// The bug of issue 13: "==" with ".*" must match by prefix.
func TestMarkerWildcardForks(t *testing.T) {
	forks := []string{`python_full_version < '3.11'`, `python_full_version == '3.11.*'`, `python_full_version >= '3.12'`}
	for _, py := range []string{"3.10", "3.11", "3.11.7", "3.12", "3.13"} {
		tg := Target{PythonVersion: py, Platform: "linux/amd64"}
		n := 0
		for _, f := range forks {
			ok, err := tg.EvalMarker(f)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				n++
			}
		}
		if n != 1 {
			t.Errorf("Python %s: %d of the three numpy forks match, want exactly 1", py, n)
		}
	}
}
