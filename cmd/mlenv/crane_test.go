package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
