package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestBuildOutputs: tar:- puts the tarball on stdout and the digest on
// stderr's last line; oci:DIR:TAG and oci:DIR (an existing empty folder)
// print the same digest; a malformed --output fails before any build.
func TestBuildOutputs(t *testing.T) {
	lock, _ := filepath.Abs("../../examples/minimal/mlenv.lock")
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("SOURCE_DATE_EPOCH", "")

	stdout, stderr, code := run(t, "build", "--lock", lock, "--output", "tar:-")
	if code != 0 {
		t.Fatalf("tar:-: exit %d: %s", code, stderr)
	}
	if got := lastLine(stderr); got != exampleDigest {
		t.Errorf("tar:-: stderr's last line %q, want the digest %s", got, exampleDigest)
	}
	img, err := tarball.Image(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader([]byte(stdout))), nil }, nil)
	if err != nil {
		t.Fatalf("stdout is no tarball: %v", err)
	}
	if layers, err := img.Layers(); err != nil || len(layers) == 0 {
		t.Errorf("tarball from stdout: %d layers, %v", len(layers), err)
	}

	dir := t.TempDir() // exists and is empty, like `oci:.` in a fresh folder
	for _, out := range []string{"oci:" + dir, "oci:" + dir + ":v1"} {
		stdout, stderr, code := run(t, "build", "--lock", lock, "--offline", "--output", out)
		if code != 0 || lastLine(stdout) != exampleDigest {
			t.Errorf("%s: exit %d, stdout %q: %s", out, code, stdout, stderr)
		}
	}

	_, stderr, code = run(t, "build", "--lock", lock, "--output", "tar:")
	if code != 2 || !strings.Contains(stderr, "--output") || !strings.Contains(stderr, "expected tar:FILE") || strings.Contains(stderr, "wrote") {
		t.Errorf("malformed output: exit %d: %s", code, stderr)
	}
}

// An output that names an existing file that is not a tarball (the lock,
// typed for --lock) is refused before the build starts, and left as it was.
func TestBuildRefusesToOverwriteANonTarballFirst(t *testing.T) {
	dir := t.TempDir()
	lockBytes, err := os.ReadFile(filepath.Join("..", "..", "examples", "minimal", "mlenv.lock"))
	if err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(dir, "mlenv.lock")
	os.WriteFile(victim, lockBytes, 0o644)
	cache := t.TempDir()
	_, stderr, code := run(t, "build", "--lock", filepath.Join("..", "..", "examples", "minimal", "mlenv.lock"),
		"--cache-dir", cache, "--output", "tar:"+victim)
	if code != 2 || !strings.Contains(stderr, "not a tar archive") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if b, _ := os.ReadFile(victim); string(b) != string(lockBytes) {
		t.Error("the file named as output was changed")
	}
	if blobs, _ := filepath.Glob(filepath.Join(cache, "blobs", "sha256", "*")); len(blobs) != 0 {
		t.Errorf("the build ran before the output was checked: %d blobs in the cache", len(blobs))
	}
}
