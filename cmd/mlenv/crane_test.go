package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlenv/mlenv/lockfile"
)

// The tar: output of the offline example passes crane's own validation
// (manifest, config and every layer digested against their descriptors),
// not only mlenv's reader. CI installs crane (scripts/install-test-tools.sh).
func TestTarOutputPassesCraneValidate(t *testing.T) {
	crane, err := exec.LookPath("crane")
	if err != nil {
		t.Skip("crane is not installed (scripts/install-test-tools.sh installs it): cannot check the tarball with it")
	}
	lock, _ := filepath.Abs("../../examples/minimal/mlenv.lock")
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("SOURCE_DATE_EPOCH", "")
	out := filepath.Join(t.TempDir(), "image.tar")
	if _, stderr, code := run(t, "build", "--lock", lock, "--output", "tar:"+out); code != 0 {
		t.Fatalf("build: exit %d: %s", code, stderr)
	}
	b, err := exec.Command(crane, "validate", "--tarball", out).CombinedOutput()
	if err != nil || !strings.Contains(string(b), "PASS") {
		t.Fatalf("crane validate: %v\n%s", err, b)
	}
}

// TestSplicedImagePassesCraneAndUmoci: the offline example locked with
// the spliced layout (its wheel's members copied as deflate streams into
// the layer) is read by tools users have, not only by mlenv: crane
// validates the tar: output (every layer's digest and diffID recomputed
// from the compressed bytes), and umoci unpacks the oci: output and finds
// the wheel's module in the root file system.
func TestSplicedImagePassesCraneAndUmoci(t *testing.T) {
	crane, craneErr := exec.LookPath("crane")
	umoci, umociErr := exec.LookPath("umoci")
	if craneErr != nil && umociErr != nil {
		t.Skip("neither crane nor umoci is installed (scripts/install-test-tools.sh installs both): cannot check a spliced image with them")
	}
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../../examples/minimal")); err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(dir, "mlenv.lock")
	l, err := lockfile.LoadLock(lock)
	if err != nil {
		t.Fatal(err)
	}
	l.Compression.Layout = lockfile.LayoutSplice
	enc, err := l.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lock, enc, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("SOURCE_DATE_EPOCH", "")
	if crane != "" {
		out := filepath.Join(t.TempDir(), "image.tar")
		stdout, stderr, code := run(t, "build", "--lock", lock, "--output", "tar:"+out)
		if code != 0 {
			t.Fatalf("build: exit %d: %s", code, stderr)
		}
		if strings.Contains(stdout, "sha256:2acf296830f8e51054b974ffccf890f2a7af520ba6f92ae68968fb7938ca8298") {
			t.Fatal("the spliced build has the classic example's digest: nothing was spliced")
		}
		b, err := exec.Command(crane, "validate", "--tarball", out).CombinedOutput()
		if err != nil || !strings.Contains(string(b), "PASS") {
			t.Fatalf("crane validate: %v\n%s", err, b)
		}
	}
	if umoci != "" {
		layout := filepath.Join(t.TempDir(), "layout")
		if _, stderr, code := run(t, "build", "--lock", lock, "--output", "oci:"+layout+":v1"); code != 0 {
			t.Fatalf("build: exit %d: %s", code, stderr)
		}
		bundle := filepath.Join(t.TempDir(), "bundle")
		if b, err := exec.Command(umoci, "unpack", "--rootless", "--image", layout+":v1", bundle).CombinedOutput(); err != nil {
			t.Fatalf("umoci unpack: %v\n%s", err, b)
		}
		mods, _ := filepath.Glob(filepath.Join(bundle, "rootfs", "usr", "*", "lib", "python3*", "site-packages", "hello_mlenv", "__init__.py"))
		if len(mods) != 1 {
			t.Fatalf("umoci's rootfs lacks the wheel's hello_mlenv/__init__.py (found %v)", mods)
		}
	}
}
