package gitinfo

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_SYSTEM=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// The commit and dirty flag read from .git agree with git itself, for a
// loose ref and a packed one, and every kind of change to a tracked file
// is seen; an untracked file is not a change.
func TestReadAgreesWithGit(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed: the test makes its checkout with it")
	}
	dir := t.TempDir()
	git(t, dir, "init", "-q")
	os.WriteFile(filepath.Join(dir, "train.py"), []byte("print(1)\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "pkg"), 0o755)
	os.WriteFile(filepath.Join(dir, "pkg", "run.sh"), []byte("#!/bin/sh\n"), 0o755)
	git(t, dir, "add", ".")
	git(t, dir, "commit", "-q", "-m", "one")
	want := git(t, dir, "rev-parse", "HEAD")
	info, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if info.Commit != want || info.Branch != "main" || info.Dirty == nil || *info.Dirty {
		t.Fatalf("clean checkout: got %+v, want commit %s on main, not dirty", info, want)
	}
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("untracked"), 0o644)
	if info, _ := Read(dir); info.Dirty == nil || *info.Dirty {
		t.Fatalf("an untracked file made it dirty: %+v", info)
	}
	git(t, dir, "pack-refs", "--all")
	if info, _ := Read(dir); info.Commit != want {
		t.Fatalf("packed ref: commit %s, want %s", info.Commit, want)
	}
	for name, change := range map[string]func(){
		"same size, other content": func() { os.WriteFile(filepath.Join(dir, "train.py"), []byte("print(2)\n"), 0o644) },
		"executable bit":           func() { os.Chmod(filepath.Join(dir, "pkg", "run.sh"), 0o644) },
		"removed":                  func() { os.Remove(filepath.Join(dir, "train.py")) },
	} {
		change()
		info, err := Read(dir)
		if err != nil {
			t.Fatal(err)
		}
		if info.Dirty == nil || !*info.Dirty {
			t.Errorf("%s: not seen as dirty: %+v", name, info)
		}
		git(t, dir, "checkout", "-q", "--", ".")
		os.Chmod(filepath.Join(dir, "pkg", "run.sh"), 0o755)
	}
	git(t, dir, "checkout", "-q", "--detach")
	if info, _ := Read(dir); info.Branch != "" || info.Commit != want {
		t.Fatalf("detached: %+v", info)
	}
}

func TestNotACheckout(t *testing.T) {
	if _, err := Read(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a git checkout") {
		t.Fatalf("got %v", err)
	}
}

func TestHostileHEAD(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, ".git"), 0o755)
	os.WriteFile(filepath.Join(dir, ".git", "HEAD"), []byte("ref: refs/../../../etc/passwd\n"), 0o644)
	if _, err := Read(dir); err == nil {
		t.Fatal("a HEAD that climbs out of refs/ was followed")
	}
}

// TestFIFOsInGitFolder: a checkout whose HEAD, ref or index is a named
// pipe (a hostile repository) is read without blocking: HEAD refused,
// the ref and the index treated as unreadable.
func TestFIFOsInGitFolder(t *testing.T) {
	for _, fifo := range []string{"HEAD", "refs/heads/main", "packed-refs", "index"} {
		dir := t.TempDir()
		git := filepath.Join(dir, ".git")
		os.MkdirAll(filepath.Join(git, "refs", "heads"), 0o755)
		os.WriteFile(filepath.Join(git, "HEAD"), []byte("ref: refs/heads/main\n"), 0o644)
		p := filepath.Join(git, filepath.FromSlash(fifo))
		os.Remove(p)
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Skipf("cannot make a FIFO here: %v", err)
		}
		done := make(chan error, 1)
		go func() { _, err := Read(dir); done <- err }()
		select {
		case err := <-done:
			if fifo == "HEAD" && (err == nil || !strings.Contains(err.Error(), "not a regular file")) {
				t.Fatalf("HEAD as a FIFO: got %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("Read blocked on .git/%s as a FIFO", fifo)
		}
	}
}

func FuzzParseIndex(f *testing.F) {
	f.Add([]byte("DIRC\x00\x00\x00\x02\x00\x00\x00\x01" + strings.Repeat("\x00", 60) + "\x00\x03abc\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte("DIRC\x00\x00\x00\x03\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ents, err := ParseIndex(b)
		if err == nil && len(ents) > len(b)/62 {
			t.Fatalf("%d entries from %d bytes", len(ents), len(b))
		}
	})
}
