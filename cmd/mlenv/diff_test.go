package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/mlenv/mlenv/diff"
	"github.com/mlenv/mlenv/internal/testutil"
)

// buildExample builds the offline example (or a changed copy of it) and
// returns the image as oci:DIR.
func buildExample(t *testing.T, dir string, change func(project string)) (lock, image string) {
	t.Helper()
	example, _ := filepath.Abs("../../examples/minimal")
	project := filepath.Join(dir, "project")
	mustCopyDir(t, example, project)
	lock = filepath.Join(project, "mlenv.lock")
	if change != nil {
		change(project)
		if _, stderr, code := run(t, "lock", "-f", filepath.Join(project, "mlenv.yaml"), "-o", lock); code != 0 {
			t.Fatalf("lock: %s", stderr)
		}
	}
	image = "oci:" + filepath.Join(dir, "out")
	if _, stderr, code := run(t, "build", "--lock", lock, "--output", image); code != 0 {
		t.Fatalf("build: %s", stderr)
	}
	return lock, image
}

func diffJSON(t *testing.T, args ...string) (diff.Result, int) {
	t.Helper()
	stdout, stderr, code := run(t, append([]string{"diff", "--output", "json"}, args...)...)
	var r diff.Result
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("diff %v: %v\n%s\n%s", args, err, stdout, stderr)
	}
	// Every JSON answer holds to the documented schema.
	sch, err := jsonschema.NewCompiler().Compile("../../diff/schema.json")
	must(t, err)
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(stdout))
	must(t, err)
	if err := sch.Validate(inst); err != nil {
		t.Errorf("diff %v: output does not match diff/schema.json: %v", args, err)
	}
	return r, code
}

func keysOf(r diff.Result, section string) []string {
	var out []string
	for _, f := range r.Findings {
		if section == "" || f.Section == section {
			out = append(out, f.Section+":"+f.Key)
		}
	}
	return out
}

// Two builds of the offline example that differ by one wheel version, one
// environment variable and one application file.
func TestDiffTwoBuildsOfTheExample(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
	lockA, imgA := buildExample(t, filepath.Join(dir, "a"), nil)
	_, imgB := buildExample(t, filepath.Join(dir, "b"), func(project string) {
		w := testutil.Wheel{Name: "hello_mlenv", Version: "0.2.0",
			Files: map[string]string{
				"hello_mlenv/__init__.py":                              "def main():\n    print(\"hello from mlenv 0.2\")\n    return 0\n",
				"hello_mlenv-0.2.0.data/data/share/hello-mlenv/README": "data file installed under the prefix\n",
			},
			EntryPoints: "[console_scripts]\nhello-mlenv = hello_mlenv:main\n"}
		must(t, os.WriteFile(filepath.Join(project, w.Filename()), w.Bytes(), 0o644))
		y, err := os.ReadFile(filepath.Join(project, "mlenv.yaml"))
		must(t, err)
		s := strings.Replace(string(y), "hello_mlenv-0.1.0-py3-none-any.whl", w.Filename(), 1)
		s = strings.Replace(s, `PYTHONHASHSEED: "0"`, `PYTHONHASHSEED: "1"`, 1)
		must(t, os.WriteFile(filepath.Join(project, "mlenv.yaml"), []byte(s), 0o644))
		must(t, os.WriteFile(filepath.Join(project, "app", "train.py"), []byte("print('changed')\n"), 0o644))
	})

	r, code := diffJSON(t, imgA, imgB)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	got := strings.Join(keysOf(r, ""), " ")
	nonLayer := strings.Join(append(keysOf(r, diff.SectionPackages), keysOf(r, diff.SectionConfig)...), " ")
	if nonLayer != "packages:python/hello-mlenv config:env.PYTHONHASHSEED" {
		t.Errorf("findings besides layers: %s (all: %s)", nonLayer, got)
	}
	if n := r.Counts[diff.SectionLayers]; n < 1 || n > 2 {
		t.Errorf("%d layers differ, want the wheel's and the app's: %s", n, got)
	}
	if r.Counts[diff.SectionFiles] != 0 {
		t.Errorf("files compared without --files: %s", got)
	}
	for _, f := range r.Findings {
		if f.Key == "python/hello-mlenv" && (f.A != "0.1.0" || f.B != "0.2.0") {
			t.Errorf("wheel: %+v", f)
		}
	}

	// --files names the app file.
	r, _ = diffJSON(t, "--files", "--only", "files", imgA, imgB)
	files := strings.Join(keysOf(r, diff.SectionFiles), " ")
	if !strings.Contains(files, "files:/app/train.py") || strings.Contains(files, "/app/config.json") {
		t.Errorf("--files: %s", files)
	}

	// The lock against the image built from it: no package differences,
	// and (mlenv builds it) nothing else either.
	r, code = diffJSON(t, lockA, imgA)
	if code != 0 || !r.Same || strings.Join(r.Compared, ",") != "packages,config" {
		t.Errorf("lock vs its image: exit %d %+v", code, r)
	}
	// The same lock against the other image: its packages and its lock.
	r, _ = diffJSON(t, lockA, imgB)
	if got := strings.Join(keysOf(r, ""), " "); got != "packages:python/hello-mlenv config:env.PYTHONHASHSEED config:labels.dev.mlenv.lock.digest" {
		t.Errorf("lock vs other image: %s", got)
	}

	// Identical inputs: exit 0 and nothing but the summary line.
	stdout, _, code := run(t, "diff", imgA, imgA)
	if code != 0 || strings.Count(stdout, "\n") != 1 || !strings.HasPrefix(stdout, "same: ") {
		t.Errorf("identical: exit %d, output %q", code, stdout)
	}

	// Human output: summary first, sections grouped, no color off a terminal.
	stdout, _, _ = run(t, "diff", imgA, imgB)
	if !strings.HasPrefix(stdout, "different: 1 package, 1 config field, ") || !strings.Contains(stdout, "\npackages\n") ||
		!strings.Contains(stdout, "~ python/hello-mlenv") || strings.Contains(stdout, "\x1b[") {
		t.Errorf("text output:\n%s", stdout)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestDiffBadInput(t *testing.T) {
	dir := t.TempDir()
	unknown := filepath.Join(dir, "notes.txt")
	must(t, os.WriteFile(unknown, []byte("just some text\n"), 0o644))
	otherJSON := filepath.Join(dir, "other.json")
	must(t, os.WriteFile(otherJSON, []byte(`{"hello": "world"}`), 0o644))

	// An image whose only layer is not a tar.
	junk := static.NewLayer([]byte(strings.Repeat("not a tar ", 200)), types.DockerLayer)
	img, err := mutate.AppendLayers(empty.Image, junk)
	must(t, err)
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	img, err = mutate.ConfigFile(img, cf)
	must(t, err)
	badDir := filepath.Join(dir, "bad")
	lp, err := layout.Write(badDir, empty.Index)
	must(t, err)
	must(t, lp.AppendImage(img))
	goodDir := filepath.Join(dir, "good")
	lp, err = layout.Write(goodDir, empty.Index)
	must(t, err)
	must(t, lp.AppendImage(testutil.RandomImage(t, "linux", "amd64")))

	reg := testutil.Registry(t, nil)
	missing := filepath.Join(dir, "missing.lock")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"missing file", []string{missing, "oci:" + goodDir}, "no such file"},
		{"unknown format", []string{unknown, "oci:" + goodDir}, "unknown format"},
		{"unknown JSON", []string{otherJSON, "oci:" + goodDir}, "neither an mlenv.lock"},
		{"layer not a tar", []string{"oci:" + goodDir, "oci:" + badDir, "--files"}, "B: layer 0"},
		{"unresolvable ref", []string{reg + "/nothing/here:v1", "oci:" + goodDir}, "opening image " + reg + "/nothing/here:v1"},
		{"unknown section", []string{"--only", "pkgs", unknown, unknown}, `unknown section "pkgs"`},
	} {
		stdout, stderr, code := run(t, append([]string{"diff"}, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: exit %d, stderr %q, want 2 and %q (stdout %q)", c.name, code, stderr, c.want, stdout)
		}
		if stdout != "" {
			t.Errorf("%s: wrote %q to stdout on error", c.name, stdout)
		}
	}
}

func TestDiffUnreadableFile(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("running as root: file permissions do not stop root from reading")
	}
	f := filepath.Join(t.TempDir(), "host.json")
	must(t, os.WriteFile(f, []byte("{}"), 0o000))
	_, stderr, code := run(t, "diff", f, f)
	if code != 2 || !strings.Contains(stderr, "permission denied") {
		t.Errorf("exit %d, %q", code, stderr)
	}
}

// An image and a host fingerprint share nothing: that is an error, not
// "same".
func TestDiffNothingInCommon(t *testing.T) {
	dir := t.TempDir()
	lp, err := layout.Write(dir, empty.Index)
	must(t, err)
	must(t, lp.AppendImage(testutil.RandomImage(t, "linux", "amd64")))
	host := filepath.Join(t.TempDir(), "host.json")
	must(t, os.WriteFile(host, []byte(`{"version":1,"gpu":{"available":false,"devices":[]},"cpu":{},"os":{},"env":{}}`), 0o644))
	_, stderr, code := run(t, "diff", "oci:"+dir, host)
	if code != 2 || !strings.Contains(stderr, "nothing to compare") {
		t.Errorf("exit %d, %q", code, stderr)
	}
}

func TestDiffColorOnlyWhenAsked(t *testing.T) {
	r := &diff.Result{Summary: "different: 1 config field", Counts: map[string]int{"config": 1},
		Findings: []diff.Finding{{Section: "config", Key: "env.X", Kind: diff.Added, B: "1"}}}
	var colored, plain strings.Builder
	printDiff(&colored, r, true)
	printDiff(&plain, r, false)
	if !strings.Contains(colored.String(), "\x1b[32m  + env.X") || strings.Contains(plain.String(), "\x1b[") {
		t.Errorf("colored %q\nplain %q", colored.String(), plain.String())
	}
	t.Setenv("NO_COLOR", "1")
	if useColor(os.Stdout) {
		t.Error("NO_COLOR set, color still used")
	}
}
