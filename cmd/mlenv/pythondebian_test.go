package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/mlenv/mlenv/image"
	"github.com/mlenv/mlenv/internal/testutil"
)

// TestPythonDebianImageRuns builds examples/python-debian (a Python 3.11
// interpreter from Debian packages plus the example wheel), unpacks the
// OCI output and runs the interpreter and the wheel's console script in a
// chroot. It needs the pinned .debs (fetched with apt-get) and root.
func TestPythonDebianImageRuns(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("the example pins linux/amd64 packages")
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skip("apt-get not found: cannot fetch the example's Debian packages")
	}
	example, _ := filepath.Abs("../../examples/python-debian")
	if out, err := exec.Command(filepath.Join(example, "fetch-debs.sh")).CombinedOutput(); err != nil {
		t.Skipf("could not fetch the pinned Debian packages (%v): %s", err, lastLine(string(out)))
	}
	if _, stderr, code := run(t, "lock", "--check", "-f", filepath.Join(example, "mlenv.yaml")); code != 0 {
		t.Skipf("the downloaded packages differ from those pinned in mlenv.lock (the mirror moved on?): %s", stderr)
	}
	out := filepath.Join(t.TempDir(), "layout")
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	stdout, stderr, code := run(t, "build", "--lock", filepath.Join(example, "mlenv.lock"), "--output", "oci:"+out)
	if code != 0 {
		t.Fatalf("build: %s", stderr)
	}
	img, err := image.ReadImage(context.Background(), "oci:"+out, "", image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := img.Digest(); d.String() != lastLine(stdout) {
		t.Errorf("layout holds %s, build printed %s", d, lastLine(stdout))
	}
	root := t.TempDir()
	if err := testutil.Unpack(img, root); err != nil {
		t.Fatal(err)
	}
	probe := exec.Command("chroot", root, "/usr/bin/python3", "-c", "import hello_mlenv, sys; print(hello_mlenv.__file__, sys.version_info[:2])")
	got, err := probe.CombinedOutput()
	if err != nil && (strings.Contains(string(got), "Operation not permitted") || os.Geteuid() != 0) {
		t.Skipf("chroot not permitted here: %s", got)
	}
	if err != nil {
		t.Fatalf("python3 in the image: %v: %s", err, got)
	}
	if want := "/usr/lib/python3/dist-packages/hello_mlenv/__init__.py (3, 11)"; strings.TrimSpace(string(got)) != want {
		t.Errorf("python3 printed %q, want %q", got, want)
	}
	got, err = exec.Command("chroot", root, "/usr/bin/hello-mlenv").CombinedOutput()
	if err != nil || strings.TrimSpace(string(got)) != "hello from mlenv" {
		t.Errorf("console script: %v: %q", err, got)
	}
}
