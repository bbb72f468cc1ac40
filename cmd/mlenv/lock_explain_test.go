package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func fakeWheel(name string) string {
	s := sha256.Sum256([]byte(name))
	return fmt.Sprintf(`{ url = "https://files.example.invalid/%s", hash = "sha256:%s", size = 10 }`, name, hex.EncodeToString(s[:]))
}

// A uv.lock whose only Windows package is explained per platform, named in
// a note, and left out of mlenv.lock; a damaged one exits 2 naming the line.
func TestLockExplainAndBadUVLock(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	dir := t.TempDir()
	uv := `version = 1
revision = 3
requires-python = ">=3.11"

[[package]]
name = "app"
version = "0.1.0"
source = { virtual = "." }
dependencies = [
    { name = "colorama", marker = "sys_platform == 'win32'" },
    { name = "numpy" },
]

[[package]]
name = "colorama"
version = "0.4.6"
source = { registry = "https://pypi.org/simple" }
wheels = [` + fakeWheel("colorama-0.4.6-py2.py3-none-any.whl") + `]

[[package]]
name = "numpy"
version = "2.2.1"
source = { registry = "https://pypi.org/simple" }
wheels = [` + fakeWheel("numpy-2.2.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl") + `]
`
	os.WriteFile(filepath.Join(dir, "uv.lock"), []byte(uv), 0o644)
	intent := filepath.Join(dir, "mlenv.yaml")
	os.WriteFile(intent, []byte("base: scratch\npython:\n  version: \"3.11\"\n  uv-lock: uv.lock\n"), 0o644)
	_, stderr, code := run(t, "lock", "--explain", "-f", intent)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"colorama 0.4.6\n  linux/amd64 python 3.11: out  marker `sys_platform == 'win32'` is false (edge from app)",
		"numpy 2.2.1\n  linux/amd64 python 3.11: in   required by app -> numpy-2.2.1-cp311",
		"warning: colorama 0.4.6 is in",
		"warning: skipping app 0.1.0",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	lock, _ := os.ReadFile(filepath.Join(dir, "mlenv.lock"))
	if strings.Contains(string(lock), "colorama") || !strings.Contains(string(lock), "numpy-2.2.1") {
		t.Errorf("mlenv.lock holds the wrong set:\n%s", lock)
	}

	os.WriteFile(filepath.Join(dir, "uv.lock"), []byte(strings.Replace(uv, `{ name = "numpy" }`, `{ name = "nunpy" }`, 1)), 0o644)
	before, _ := os.ReadFile(filepath.Join(dir, "mlenv.lock"))
	_, stderr, code = run(t, "lock", "-f", intent)
	if code != 2 || !strings.Contains(stderr, "uv.lock:11: app:") || !strings.Contains(stderr, "nunpy") {
		t.Errorf("edge to a missing package: exit %d, %q", code, stderr)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "mlenv.lock"))
	if string(before) != string(after) {
		t.Error("a failed lock changed mlenv.lock")
	}
}
