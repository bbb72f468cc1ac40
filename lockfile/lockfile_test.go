package lockfile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/mlenv/mlenv/internal/testutil"
)

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func wantFieldError(t *testing.T, err error, line int, contains string) {
	t.Helper()
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("want a FieldError, got %T: %v", err, err)
	}
	if line > 0 && fe.Line != line {
		t.Errorf("error %q: line %d, want %d", err, fe.Line, line)
	}
	if !strings.Contains(err.Error(), contains) {
		t.Errorf("error %q does not mention %q", err, contains)
	}
}

func TestIntentErrorsNameFileLineAndField(t *testing.T) {
	cases := []struct {
		name, yaml string
		line       int
		contains   string
	}{
		{"malformed yaml", "base: scratch\nplatforms: [linux/amd64\nname: x\n", 2, "mlenv.yaml:2"},
		{"unknown field", "base: scratch\nbasee: oops\n", 2, "basee"},
		{"bad sha256", "base: scratch\ndebs:\n  - path: a.deb\n  - url: https://example.invalid/b.deb\n    sha256: 1234\n", 5, "debs[1].sha256"},
		{"url without sha", "base: scratch\ndebs:\n  - url: https://example.invalid/b.deb\n", 3, "debs[0].sha256"},
		{"bad platform", "base: scratch\nplatforms:\n  - linux/amd64\n  - windows/amd64\n", 4, "platforms[1]"},
		{"missing base", "name: x\n", 1, "base"},
		{"relative dst", "base: scratch\nfiles:\n  - src: app\n    dst: app\n", 4, "files[0].dst"},
		{"bad python version", "base: scratch\npython:\n  version: 2.7\n  wheels: [{path: a.whl}]\n", 3, "python.version"},
		{"wrong type", "base: scratch\nepoch: soon\n", 2, "epoch"},
		{"empty", "", 0, "empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseIntent("mlenv.yaml", []byte(c.yaml))
			if err == nil {
				t.Fatal("accepted invalid intent")
			}
			wantFieldError(t, err, c.line, c.contains)
			if !strings.HasPrefix(err.Error(), "mlenv.yaml") {
				t.Errorf("error %q does not start with the file name", err)
			}
		})
	}
}

func TestLockEncodeIsCanonicalAndRoundTrips(t *testing.T) {
	l := &Lock{LockVersion: 1, Platforms: []string{"linux/amd64"}, Base: Base{Ref: "scratch"},
		Python: &Python{Version: "3.11", Prefix: "/usr/local", SitePackages: "/x", Interpreter: "/usr/bin/python3", Libc: "glibc 2.36"},
		Wheels: []Wheel{
			{Name: "zeta", Version: "1", Filename: "zeta-1-py3-none-any.whl", Platforms: []string{"linux/amd64"}, Artifact: Artifact{URI: "z.whl", SHA256: strings.Repeat("a", 64), Size: 3}},
			{Name: "alpha", Version: "1", Filename: "alpha-1-py3-none-any.whl", Platforms: []string{"linux/amd64"}, Artifact: Artifact{URI: "a.whl", SHA256: strings.Repeat("b", 64), Size: 4}},
		},
		Config:      ImageConfig{Env: []string{"B=2", "A=1"}},
		Compression: Compression{Algorithm: "gzip", Level: 1}}
	b1, err := l.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Index(string(b1), "alpha") > strings.Index(string(b1), "zeta") {
		t.Error("wheels are not sorted by name")
	}
	if strings.Index(string(b1), "A=1") > strings.Index(string(b1), "B=2") {
		t.Error("env is not sorted")
	}
	l2, err := ParseLock("mlenv.lock", b1)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := l2.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if string(b1) != string(b2) {
		t.Errorf("round trip changed the lock:\n%s\n---\n%s", b1, b2)
	}
	d1, _ := l.Digest()
	if d1 != "sha256:"+sha(b1) {
		t.Errorf("digest %s is not the sha256 of the encoding", d1)
	}
}

func TestLockErrorsNameLine(t *testing.T) {
	good := `{
  "base": {"ref": "scratch"},
  "compression": {"algorithm": "gzip", "level": 1},
  "config": {},
  "epoch": 0,
  "lockVersion": 1,
  "platforms": ["linux/amd64"],
  "debs": [
    {"package": "a", "version": "1", "architecture": "all", "platforms": ["linux/amd64"],
     "uri": "a.deb", "sha256": "NOTHEX", "size": 1}
  ]
}`
	_, err := ParseLock("mlenv.lock", []byte(good))
	wantFieldError(t, err, 10, "debs[0].sha256")

	_, err = ParseLock("mlenv.lock", []byte("{\n  \"lockVersion\": 1,\n  \"base\": {\"ref\": \"scratch\"\n}\n"))
	wantFieldError(t, err, 0, "mlenv.lock")

	_, err = ParseLock("mlenv.lock", []byte("{\"lockVersion\": 1,\n\"surprise\": true}"))
	wantFieldError(t, err, 2, "surprise")
}

func TestWheelSelection(t *testing.T) {
	amd := Target{PythonVersion: "3.11", Implementation: "cp", Libc: "glibc 2.36", Platform: "linux/amd64"}
	arm := Target{PythonVersion: "3.11", Implementation: "cp", Libc: "glibc 2.36", Platform: "linux/arm64"}
	musl := Target{PythonVersion: "3.11", Implementation: "cp", Libc: "musl 1.2", Platform: "linux/amd64"}
	old := Target{PythonVersion: "3.11", Implementation: "cp", Libc: "glibc 2.17", Platform: "linux/amd64"}
	files := []string{
		"numpy-2.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
		"numpy-2.0-cp311-cp311-manylinux_2_28_aarch64.whl",
		"numpy-2.0-cp311-cp311-musllinux_1_1_x86_64.whl",
		"numpy-2.0-cp312-cp312-manylinux_2_17_x86_64.whl",
		"numpy-2.0-cp311-cp311-macosx_11_0_arm64.whl",
		"numpy-2.0-cp311-cp311-manylinux_2_28_x86_64.whl",
		"numpy-2.0.tar.gz",
	}
	cases := []struct {
		t    Target
		want string
	}{
		{amd, "numpy-2.0-cp311-cp311-manylinux_2_28_x86_64.whl"},
		{arm, "numpy-2.0-cp311-cp311-manylinux_2_28_aarch64.whl"},
		{musl, "numpy-2.0-cp311-cp311-musllinux_1_1_x86_64.whl"},
		{old, "numpy-2.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"},
	}
	for _, c := range cases {
		i, err := c.t.BestWheel("numpy", files)
		if err != nil {
			t.Fatalf("%s: %v", c.t.Platform, err)
		}
		if files[i] != c.want {
			t.Errorf("%s/%s: picked %s, want %s", c.t.Platform, c.t.Libc, files[i], c.want)
		}
	}
	// abi3 beats pure Python; pure Python is accepted.
	i, err := amd.BestWheel("x", []string{"x-1-py3-none-any.whl", "x-1-cp38-abi3-manylinux2014_x86_64.whl"})
	if err != nil || i != 1 {
		t.Errorf("abi3 wheel not preferred: %d %v", i, err)
	}
	// No wheel for the target: a clear error listing what exists.
	_, err = amd.BestWheel("y", []string{"y-1-cp311-cp311-win_amd64.whl"})
	if err == nil || !strings.Contains(err.Error(), "no wheel for CPython 3.11 on linux/amd64") {
		t.Errorf("unexpected error: %v", err)
	}
	// Only an sdist: refused, saying why.
	_, err = amd.BestWheel("z", []string{"z-1.tar.gz"})
	if err == nil || !strings.Contains(err.Error(), "source distribution") {
		t.Errorf("sdist not refused clearly: %v", err)
	}
	if _, err := ParseWheelFilename("torch-2.0.tar.gz"); err == nil || !strings.Contains(err.Error(), "wheels only") {
		t.Errorf("sdist filename not refused clearly: %v", err)
	}
}

func TestMarkers(t *testing.T) {
	amd := Target{PythonVersion: "3.11", Implementation: "cp", Libc: "glibc 2.36", Platform: "linux/amd64"}
	cases := map[string]bool{
		`sys_platform == "linux"`:                                         true,
		`sys_platform == "win32"`:                                         false,
		`python_version >= "3.8" and platform_machine == "x86_64"`:        true,
		`python_version < "3.10" or (os_name == 'posix' and extra == '')`: true,
		`platform_machine == "aarch64"`:                                   false,
		`python_full_version >= "3.11.0"`:                                 true,
		`"linux" in sys_platform`:                                         true,
		`platform_system not in "Windows Darwin"`:                         true,
	}
	for m, want := range cases {
		got, err := amd.EvalMarker(m)
		if err != nil {
			t.Errorf("%s: %v", m, err)
			continue
		}
		if got != want {
			t.Errorf("%s = %v, want %v", m, got, want)
		}
	}
	if _, err := amd.EvalMarker(`nonsense_var == "1"`); err == nil {
		t.Error("unknown marker variable accepted")
	}
}

// project writes an intent and its inputs to a temporary folder.
func project(t *testing.T, intent string, files map[string][]byte) *Intent {
	t.Helper()
	dir := t.TempDir()
	for n, b := range files {
		writeFile(t, dir, n, b)
	}
	p := writeFile(t, dir, "mlenv.yaml", []byte(intent))
	in, err := LoadIntent(p)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func TestResolvePylockAppliesMarkersAndPicksPerPlatform(t *testing.T) {
	pure := testutil.Wheel{Name: "pure", Version: "1.0", Files: map[string]string{"pure/__init__.py": ""}}
	native := testutil.Wheel{Name: "native", Version: "2.0", Files: map[string]string{"native/__init__.py": ""}, Tag: "cp311-cp311-manylinux_2_17_x86_64"}
	nativeArm := testutil.Wheel{Name: "native", Version: "2.0", Files: map[string]string{"native/__init__.py": ""}, Tag: "cp311-cp311-manylinux_2_17_aarch64"}
	win := testutil.Wheel{Name: "winonly", Version: "1", Files: map[string]string{"w.py": ""}, Tag: "py3-none-win_amd64"}
	pb, nb, ab, wb := pure.Bytes(), native.Bytes(), nativeArm.Bytes(), win.Bytes()
	pylock := fmt.Sprintf(`lock-version = "1.0"
created-by = "test"

[[packages]]
name = "pure"
version = "1.0"
[[packages.wheels]]
path = "wheels/%s"
size = %d
hashes = {sha256 = "%s"}

[[packages]]
name = "native"
version = "2.0"
[[packages.wheels]]
path = "wheels/%s"
hashes = {sha256 = "%s"}
[[packages.wheels]]
path = "wheels/%s"
hashes = {sha256 = "%s"}

[[packages]]
name = "winonly"
version = "1"
marker = "sys_platform == 'win32'"
[[packages.wheels]]
path = "wheels/%s"
hashes = {sha256 = "%s"}
`, pure.Filename(), len(pb), sha(pb), native.Filename(), sha(nb), nativeArm.Filename(), sha(ab), win.Filename(), sha(wb))
	in := project(t, "base: scratch\nplatforms: [linux/amd64, linux/arm64]\npython:\n  version: \"3.11\"\n  pylock: pylock.toml\n", map[string][]byte{
		"pylock.toml": []byte(pylock), "wheels/" + pure.Filename(): pb, "wheels/" + native.Filename(): nb,
		"wheels/" + nativeArm.Filename(): ab, "wheels/" + win.Filename(): wb,
	})
	l, err := (&Resolver{}).Resolve(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, w := range l.Wheels {
		got[w.Filename] = strings.Join(w.Platforms, ",")
		if w.Size <= 0 {
			t.Errorf("%s: size %d not learned", w.Filename, w.Size)
		}
	}
	want := map[string]string{
		pure.Filename():      "linux/amd64,linux/arm64",
		native.Filename():    "linux/amd64",
		nativeArm.Filename(): "linux/arm64",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("locked wheels %v, want %v", got, want)
	}
}

func TestPylockMalformedNamesLine(t *testing.T) {
	_, err := ParsePylock("pylock.toml", []byte("lock-version = \"1.0\"\n[[packages]]\nname = \n"), ".")
	wantFieldError(t, err, 3, "pylock.toml:3")
	// sdist-only packages are refused when a target selects them: see
	// TestPylockSdistOnlyRefusedWithAdvice.
}

func TestUVLockSkipsProjectAndNonLinuxOnly(t *testing.T) {
	w := testutil.Wheel{Name: "dep", Version: "1.0", Files: map[string]string{"dep.py": ""}}
	b := w.Bytes()
	uv := fmt.Sprintf(`version = 1
requires-python = ">=3.11"

[[package]]
name = "myproject"
version = "0.1.0"
source = { editable = "." }
dependencies = [{ name = "dep" }, { name = "pywin32", marker = "sys_platform == 'win32'" }]

[[package]]
name = "dep"
version = "1.0"
source = { registry = "https://pypi.org/simple" }
wheels = [{ path = "%s", hash = "sha256:%s", size = %d }]

[[package]]
name = "pywin32"
version = "306"
source = { registry = "https://pypi.org/simple" }
wheels = [{ url = "https://files.example.invalid/pywin32-306-cp311-cp311-win_amd64.whl", hash = "sha256:%s", size = 1 }]
`, w.Filename(), sha(b), len(b), strings.Repeat("c", 64))
	in := project(t, "base: scratch\npython:\n  version: \"3.11\"\n  uv-lock: uv.lock\n", map[string][]byte{"uv.lock": []byte(uv), w.Filename(): b})
	var warnings []string
	l, err := (&Resolver{Warn: func(s string) { warnings = append(warnings, s) }}).Resolve(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Wheels) != 1 || l.Wheels[0].Name != "dep" {
		t.Fatalf("wheels %+v, want only dep", l.Wheels)
	}
	if !strings.Contains(strings.Join(warnings, "\n"), "pywin32 306 is in") {
		t.Errorf("warnings %v should name the skipped pywin32", warnings)
	}
}

func TestRequirementsFromIndexAndFindLinks(t *testing.T) {
	a := testutil.Wheel{Name: "alpha", Version: "1.0", Files: map[string]string{"alpha.py": ""}}
	b := testutil.Wheel{Name: "beta", Version: "2.0", Files: map[string]string{"beta.py": ""}}
	ab, bb := a.Bytes(), b.Bytes()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/simple/beta/":
			if r.Header.Get("Accept") != "application/vnd.pypi.simple.v1+json" {
				http.Error(w, "want JSON", http.StatusNotAcceptable)
				return
			}
			json.NewEncoder(w).Encode(map[string]any{"files": []map[string]any{
				{"filename": b.Filename(), "url": "../../files/" + b.Filename(), "hashes": map[string]string{"sha256": sha(bb)}},
				{"filename": "beta-2.0.tar.gz", "url": "../../files/beta-2.0.tar.gz", "hashes": map[string]string{"sha256": strings.Repeat("d", 64)}},
			}})
		case "/files/" + b.Filename():
			w.Write(bb)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	reqs := fmt.Sprintf("# generated\nalpha==1.0 \\\n    --hash=sha256:%s\nbeta==2.0 --hash=sha256:%s ; python_version >= \"3.8\"\n", sha(ab), sha(bb))
	in := project(t, fmt.Sprintf("base: scratch\npython:\n  version: \"3.11\"\n  requirements: requirements.txt\n  find-links: [wheels]\n  index-url: %s/simple\n", srv.URL),
		map[string][]byte{"requirements.txt": []byte(reqs), "wheels/" + a.Filename(): ab})
	cache := t.TempDir()
	r := &Resolver{Fetcher: newFetcher(cache, in.Dir)}
	l, err := r.Resolve(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Wheels) != 2 {
		t.Fatalf("got %d wheels", len(l.Wheels))
	}
	if l.Wheels[0].URI != "wheels/"+a.Filename() {
		t.Errorf("alpha uri %q", l.Wheels[0].URI)
	}
	if l.Wheels[1].URI != srv.URL+"/files/"+b.Filename() || l.Wheels[1].Size != int64(len(bb)) {
		t.Errorf("beta pinned as %+v", l.Wheels[1])
	}
}

func TestRequirementsRejectsUnpinned(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"numpy>=1.0 --hash=sha256:" + strings.Repeat("a", 64) + "\n", "not pinned"},
		{"numpy==1.0\n", "has no --hash"},
		{"\n\nnumpy==1.0 --hash=md5:abc\n", "only sha256"},
		{"-e ./local\n", "not supported"},
	} {
		_, err := ParseRequirements("req.txt", []byte(c.text))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.text, err, c.want)
		}
	}
	_, err := ParseRequirements("req.txt", []byte("\n\nnumpy==1.0 --hash=md5:abc\n"))
	wantFieldError(t, err, 3, "req.txt:3")
}

func TestResolveRegistryBaseByTag(t *testing.T) {
	host := testutil.Registry(t, nil)
	img := testutil.RandomImage(t, "linux", "amd64")
	ref := testutil.Push(t, img, host+"/base:v1")
	in := project(t, fmt.Sprintf("base: %s\n", ref), nil)
	l, err := (&Resolver{}).Resolve(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	if l.Base.Digest != d.String() || l.Base.Manifests["linux/amd64"] != d.String() {
		t.Errorf("base pinned as %+v, want %s", l.Base, d)
	}
	if !strings.HasSuffix(l.Base.Ref, "@"+d.String()) {
		t.Errorf("base ref %q does not carry the digest", l.Base.Ref)
	}
	// A single-platform base cannot serve arm64.
	in = project(t, fmt.Sprintf("base: %s\nplatforms: [linux/arm64]\n", ref), nil)
	if _, err := (&Resolver{}).Resolve(context.Background(), in); err == nil || !strings.Contains(err.Error(), "not linux/arm64") {
		t.Errorf("platform mismatch not reported: %v", err)
	}
}

func TestResolveMultiPlatformIndexBase(t *testing.T) {
	host := testutil.Registry(t, nil)
	amd, arm := testutil.RandomImage(t, "linux", "amd64"), testutil.RandomImage(t, "linux", "arm64")
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
	ref, _ := name.ParseReference(host + "/cuda:12")
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	in := project(t, "base: "+ref.String()+"\nplatforms: [linux/arm64, linux/amd64]\n", nil)
	l, err := (&Resolver{}).Resolve(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	ad, _ := amd.Digest()
	rd, _ := arm.Digest()
	id, _ := idx.Digest()
	if l.Base.Digest != id.String() || l.Base.Manifests["linux/amd64"] != ad.String() || l.Base.Manifests["linux/arm64"] != rd.String() {
		t.Errorf("base pinned as %+v", l.Base)
	}
	if _, err := (&Resolver{}).Resolve(context.Background(), project(t, "base: "+host+"/missing:1\n", nil)); err == nil || !strings.Contains(err.Error(), "mlenv.yaml:1: base") {
		t.Errorf("missing base: %v", err)
	}
}
