package lockfile

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mlenv/mlenv/internal/testutil"
)

// TestLocalDebSwappedDuringLockStaysInside: someone writing to the
// project while `mlenv lock` runs swaps a folder of a deb's path with a
// symlink to outside, back and forth (renameat2 RENAME_EXCHANGE). A deb
// path is checked and then opened; whatever the timing, the deb that
// gets locked must never be the one outside. Wheels and files sources
// open through localpath.Policy.OpenResolved, which asks the kernel where
// the open file is; the deb path was opened with os.Open after the
// check, so the outside deb was locked within a few hundred tries here.
func TestLocalDebSwappedDuringLockStaysInside(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("no /proc/self/fd here: the check after the open needs it")
	}
	inside := testutil.Deb{Package: "inside", Version: "1.0", Arch: "all"}
	secret := testutil.Deb{Package: "secret", Version: "1.0", Arch: "all"}
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "x.deb"), secret.Bytes(), 0o644)
	in := project(t, "base: scratch\ndebs: [{path: pkgs/x.deb}]\n", map[string][]byte{"pkgs/x.deb": inside.Bytes()})
	defer swapWithOutside(t, filepath.Join(in.Dir, "pkgs"), outside)()
	r := &Resolver{}
	deadline := time.Now().Add(3 * time.Second)
	tries, locked := 0, 0
	for time.Now().Before(deadline) {
		tries++
		d, err := r.resolveDeb(context.Background(), in, ArtifactIntent{Path: "pkgs/x.deb"})
		if err != nil {
			continue
		}
		locked++
		if d.Package != "inside" {
			t.Fatalf("try %d: locked the deb outside the project (%s)", tries, d.Package)
		}
	}
	t.Logf("%d tries, %d locked the deb inside", tries, locked)
}

// TestLocalImportSwappedDuringLockStaysInside: the same swap under a
// Python lock file the intent imports (python.pylock): the file outside
// must never be read.
func TestLocalImportSwappedDuringLockStaysInside(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("no /proc/self/fd here: the check after the open needs it")
	}
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "pylock.toml"), []byte("lock-version = \"9.9-secret\"\n"), 0o644)
	in := project(t, "base: scratch\npython: {version: \"3.11\", pylock: locks/pylock.toml}\n",
		map[string][]byte{"locks/pylock.toml": []byte("lock-version = \"1.0\"\ncreated-by = \"test\"\n")})
	if _, err := (&Resolver{}).Resolve(context.Background(), in); err != nil {
		t.Fatalf("unchanged project: %v", err)
	}
	defer swapWithOutside(t, filepath.Join(in.Dir, "locks"), outside)()
	deadline := time.Now().Add(3 * time.Second)
	tries := 0
	for time.Now().Before(deadline) {
		tries++
		_, err := (&Resolver{}).Resolve(context.Background(), in)
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Fatalf("try %d: read the lock file outside the project: %v", tries, err)
		}
	}
	t.Logf("%d tries", tries)
}

// swapWithOutside exchanges the project folder dir with a symlink to
// outside, back and forth (renameat2 RENAME_EXCHANGE), until the returned
// stop is called; the test is skipped where the exchange is not
// available.
func swapWithOutside(t *testing.T, dir, outside string) (stop func()) {
	link := dir + ".link"
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, dir, unix.AT_FDCWD, link, unix.RENAME_EXCHANGE); err != nil {
		t.Skipf("no renameat2 RENAME_EXCHANGE here: %v", err)
	}
	var halt atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !halt.Load() {
			unix.Renameat2(unix.AT_FDCWD, dir, unix.AT_FDCWD, link, unix.RENAME_EXCHANGE)
		}
	}()
	return func() { halt.Store(true); <-done }
}

// TestLocalInputThatIsAFolderSaysSo: a python lock file or a deb path
// naming a folder is refused in words that say so.
func TestLocalInputThatIsAFolderSaysSo(t *testing.T) {
	for _, intent := range []string{
		"base: scratch\npython: {version: \"3.11\", pylock: locks}\n",
		"base: scratch\ndebs: [{path: locks}]\n",
	} {
		in := project(t, intent, map[string][]byte{"locks/pylock.toml": []byte("lock-version = \"1.0\"\n")})
		_, err := (&Resolver{}).Resolve(context.Background(), in)
		if err == nil || !strings.Contains(err.Error(), "is a folder") {
			t.Fatalf("%s: got %v, want it refused as a folder", intent, err)
		}
	}
}
