package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlenv/mlenv/lockfile"
)

// The lock is the build's only input: SOURCE_DATE_EPOCH, set or not, valid
// or not, does not change what mlenv build makes from it.
func TestBuildIgnoresSourceDateEpoch(t *testing.T) {
	dir := t.TempDir()
	mustCopyDir(t, "../../examples/minimal", filepath.Join(dir, "project"))
	t.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
	lock := filepath.Join(dir, "project", "mlenv.lock")
	var digests []string
	for i, v := range []string{"", "1", "not-a-number"} {
		t.Setenv("SOURCE_DATE_EPOCH", v)
		out := "oci:" + filepath.Join(dir, "out", string(rune('a'+i)))
		stdout, stderr, code := run(t, "build", "--lock", lock, "--output", out)
		if code != 0 {
			t.Fatalf("build with SOURCE_DATE_EPOCH=%q: exit %d: %s", v, code, stderr)
		}
		digests = append(digests, lastLine(stdout))
	}
	if digests[0] != digests[1] || digests[0] != digests[2] {
		t.Errorf("SOURCE_DATE_EPOCH changed the build: unset %s, 1 %s, invalid %s", digests[0], digests[1], digests[2])
	}
	if digests[0] != exampleDigest {
		t.Errorf("digest %s, pinned %s", digests[0], exampleDigest)
	}
}

// mlenv lock owns SOURCE_DATE_EPOCH: a valid value overrides the intent's
// epoch, an invalid one is an error that names the variable and writes nothing.
func TestLockTakesSourceDateEpoch(t *testing.T) {
	dir := t.TempDir()
	mustCopyDir(t, "../../examples/minimal", dir)
	t.Setenv("XDG_CACHE_HOME", filepath.Join(t.TempDir(), "cache"))
	intent, lockPath := filepath.Join(dir, "mlenv.yaml"), filepath.Join(dir, "mlenv.lock")
	before, _ := os.ReadFile(lockPath)

	t.Setenv("SOURCE_DATE_EPOCH", "17e8")
	_, stderr, code := run(t, "lock", "-f", intent)
	if code != 2 || !strings.Contains(stderr, "SOURCE_DATE_EPOCH") {
		t.Errorf("invalid SOURCE_DATE_EPOCH: exit %d, %q", code, stderr)
	}
	if after, _ := os.ReadFile(lockPath); !bytes.Equal(before, after) {
		t.Error("the lock changed despite the error")
	}

	t.Setenv("SOURCE_DATE_EPOCH", "1234")
	if _, stderr, code := run(t, "lock", "-f", intent); code != 0 {
		t.Fatalf("lock: exit %d: %s", code, stderr)
	}
	l, err := lockfile.LoadLock(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	if l.Epoch != 1234 {
		t.Errorf("lock epoch %d, want SOURCE_DATE_EPOCH's 1234 over the intent's", l.Epoch)
	}

	t.Setenv("SOURCE_DATE_EPOCH", "") // empty is unset: the intent's epoch
	if _, stderr, code := run(t, "lock", "--check", "-f", intent); code != 1 {
		t.Errorf("a lock made with SOURCE_DATE_EPOCH=1234 is not stale without it: exit %d, %s", code, stderr)
	}
	if _, stderr, code := run(t, "lock", "-f", intent); code != 0 {
		t.Fatalf("lock: exit %d: %s", code, stderr)
	}
	if after, _ := os.ReadFile(lockPath); !bytes.Equal(before, after) {
		t.Error("relocking without SOURCE_DATE_EPOCH did not give back the committed lock")
	}
}
