package localpath

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestResolveKeepsInputsInsideTheProject(t *testing.T) {
	root := t.TempDir()
	proj := filepath.Join(root, "proj")
	outside := filepath.Join(root, "secret")
	os.MkdirAll(filepath.Join(proj, "app"), 0o755)
	os.MkdirAll(outside, 0o755)
	os.WriteFile(filepath.Join(proj, "app", "a.py"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(outside, "shadow"), []byte("0123456789"), 0o600)
	os.Symlink(outside, filepath.Join(proj, "link-out"))
	os.Symlink(filepath.Join(proj, "app"), filepath.Join(proj, "link-in"))
	if err := syscall.Mkfifo(filepath.Join(proj, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	pol := Policy{Base: proj}

	for _, ok := range []string{"app", "app/a.py", "link-in/a.py", "./app/../app", filepath.Join(proj, "app")} {
		if _, err := pol.Resolve(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	// Outside, whether it exists or not, via .., an absolute path or a
	// symlink: one message, no size, no existence.
	var msgs []string
	for _, bad := range []string{"../secret", "../secret/shadow", "../secret/nope", "/etc/shadow", "file:///etc/ssl", "../../../../etc/ssl", "link-out/shadow", "link-out"} {
		_, err := pol.Resolve(bad)
		if !errors.Is(err, ErrOutside) {
			t.Errorf("%s: %v, want outside", bad, err)
			continue
		}
		if strings.Contains(err.Error(), "bytes") || strings.Contains(err.Error(), "not found") || strings.Contains(err.Error(), "no such") {
			t.Errorf("%s: message leaks details: %v", bad, err)
		}
		msgs = append(msgs, strings.Replace(err.Error(), bad, "X", 1))
	}
	for _, m := range msgs[1:] {
		if m != msgs[0] {
			t.Errorf("messages differ: %q vs %q", m, msgs[0])
		}
	}
	// Devices and FIFOs are never inputs, even when allowed.
	if _, err := (Policy{Base: proj, Allow: []string{"/dev"}}).Resolve("/dev/zero"); err == nil || !strings.Contains(err.Error(), "character device") {
		t.Errorf("/dev/zero: %v", err)
	}
	if _, err := pol.Open("fifo"); err == nil || !strings.Contains(err.Error(), "FIFO") {
		t.Errorf("fifo: %v", err)
	}
	// The opt-in admits exactly the folder named.
	allow := Policy{Base: proj, Allow: []string{outside}}
	if _, err := allow.Resolve("../secret/shadow"); err != nil {
		t.Errorf("allowed: %v", err)
	}
	if _, err := allow.Resolve("/etc/passwd"); !errors.Is(err, ErrOutside) {
		t.Errorf("not allowed: %v", err)
	}
	f, err := allow.Open("link-out/shadow")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}
