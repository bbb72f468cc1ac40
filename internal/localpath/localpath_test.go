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

// A link committed to the project must not tell whether a host file
// exists: a link to an outside file that exists and one to an outside file
// that does not give the same answer, naming only the link.
func TestOutsideLinkIsNoExistenceOracle(t *testing.T) {
	base, outside := t.TempDir(), t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Symlink(secret, filepath.Join(base, "there"))
	os.Symlink(filepath.Join(outside, "missing"), filepath.Join(base, "absent"))
	os.Symlink("../"+filepath.Base(outside)+"/missing", filepath.Join(base, "relabsent"))
	pol := Policy{Base: base}
	var msgs []string
	for _, name := range []string{"there", "absent", "relabsent"} {
		_, err := pol.Resolve(name)
		if !errors.Is(err, ErrOutside) {
			t.Fatalf("%s: %v, want ErrOutside", name, err)
		}
		msgs = append(msgs, strings.Replace(err.Error(), name, "LINK", 1))
	}
	if msgs[0] != msgs[1] || msgs[1] != msgs[2] {
		t.Errorf("the answers differ, revealing what exists outside:\n%s", strings.Join(msgs, "\n"))
	}
	// A link inside the project to a missing file inside it is "not found".
	os.Symlink("nothing-here", filepath.Join(base, "dangling"))
	if _, err := pol.Resolve("dangling"); err == nil || errors.Is(err, ErrOutside) || !strings.Contains(err.Error(), "not found") {
		t.Errorf("dangling link inside: %v", err)
	}
}

// TestFolderSwappedAfterTheCheck: the project changes between Resolve and
// the open (a folder replaced by a symlink to outside, by someone else
// writing to the checkout while mlenv runs). The open follows the new
// link, but OpenResolved sees where the descriptor really is and refuses
// it, so the outside file never reaches the image.
func TestFolderSwappedAfterTheCheck(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("no /proc/self/fd here: the check after the open needs it")
	}
	root := t.TempDir()
	proj, outside := filepath.Join(root, "proj"), filepath.Join(root, "secret")
	os.MkdirAll(filepath.Join(proj, "app"), 0o755)
	os.MkdirAll(outside, 0o755)
	os.WriteFile(filepath.Join(proj, "app", "key"), []byte("public"), 0o644)
	os.WriteFile(filepath.Join(outside, "key"), []byte("private"), 0o600)
	pol := Policy{Base: proj}
	real, err := pol.Resolve("app/key")
	if err != nil {
		t.Fatal(err)
	}
	// Untouched: it opens.
	f, err := pol.OpenResolved(real)
	if err != nil {
		t.Fatalf("unchanged project: %v", err)
	}
	f.Close()
	// The swap, after the check.
	if err := os.Rename(filepath.Join(proj, "app"), filepath.Join(proj, "app.old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(proj, "app")); err != nil {
		t.Fatal(err)
	}
	f, err = pol.OpenResolved(real)
	if err == nil {
		f.Close()
		t.Fatal("a file outside the project was opened through a folder swapped after the check")
	}
	if !errors.Is(err, ErrOutside) {
		t.Fatalf("got %v, want an outside-the-project error", err)
	}
	// Allowed explicitly, the same file opens.
	if f, err = (Policy{Base: proj, Allow: []string{outside}}).OpenResolved(real); err != nil {
		t.Fatalf("with the folder allowed: %v", err)
	}
	f.Close()
}
