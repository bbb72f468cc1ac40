package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"

	"github.com/mlenv/mlenv/internal/testutil"
)

// TestBombsEndInBoundedMemory builds 10 GiB bombs (xz and zstd debs, a
// wheel whose zip members overlap) in a child process and checks that the
// build ends with the cap error (exit 2, the file named), that the child's
// peak RSS stays under 512 MiB, and that neither the output nor a blob or
// temporary file is left behind. The deb caps are set to 512 MiB, so half
// a GiB really streams through the decoder and the spool file.
func TestBombsEndInBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 512 MiB per bomb; skipped with -short")
	}
	names := make([]string, 160)
	for i := range names {
		names[i] = fmt.Sprintf("evil/part%03d", i)
	}
	cases := []struct {
		name, file, intent string
		body               func() []byte
	}{
		{"xz deb", "evil_1_all.deb", "debs: [{path: evil_1_all.deb}]\n", func() []byte {
			return testutil.Deb{Package: "evil", Version: "1", Arch: "all", Compression: "xz", Data: testutil.ZeroBombData("xz", 160, 64<<20)}.Bytes()
		}},
		{"zstd deb", "evil_1_all.deb", "debs: [{path: evil_1_all.deb}]\n", func() []byte {
			return testutil.Deb{Package: "evil", Version: "1", Arch: "all", Compression: "zst", Data: testutil.ZeroBombData("zst", 160, 64<<20)}.Bytes()
		}},
		{"overlapping wheel", "evil-1-py3-none-any.whl", "python:\n  version: \"3.11\"\n  wheels: [{path: evil-1-py3-none-any.whl}]\n", func() []byte {
			return testutil.OverlappingZip(make([]byte, 64<<20), names)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			body := c.body()
			if err := os.WriteFile(filepath.Join(dir, c.file), body, 0o644); err != nil {
				t.Fatal(err)
			}
			intent := filepath.Join(dir, "mlenv.yaml")
			os.WriteFile(intent, []byte("name: bomb\nepoch: 1700000000\nbase: scratch\n"+c.intent), 0o644)
			lock := filepath.Join(dir, "mlenv.lock")
			if _, stderr, code := run(t, "lock", "-f", intent, "-o", lock); code != 0 {
				t.Fatalf("lock: exit %d: %s", code, stderr)
			}
			cache, out := filepath.Join(dir, "cache"), filepath.Join(dir, "out")
			cmd := exec.Command(os.Args[0], "build", "--lock", lock, "--output", "oci:"+out, "--cache-dir", cache,
				"--max-archive-bytes", fmt.Sprint(512<<20))
			cmd.Env = append(os.Environ(), childEnv+"=1", "XDG_CACHE_HOME="+filepath.Join(dir, "xdg"))
			// Linux carries the parent's peak RSS at fork into the child's
			// Maxrss: shrink the parent first so the figure is the child's.
			body = nil
			debug.FreeOSMemory()
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			code := cmd.ProcessState.ExitCode()
			rssMiB := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss / 1024
			t.Logf("%s (10 GiB unpacked): exit %d, peak RSS %d MiB (an upper bound: it includes the test process at fork)", c.name, code, rssMiB)
			if err == nil || code != 2 {
				t.Fatalf("bomb: exit %d, want 2; stderr: %s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), c.file) || !strings.Contains(stderr.String(), "unpacks to more than") {
				t.Errorf("error does not name the file and the cap: %s", stderr.String())
			}
			if rssMiB >= 512 {
				t.Errorf("peak RSS %d MiB, want under 512 MiB", rssMiB)
			}
			if _, err := os.Stat(out); err == nil {
				t.Error("output written despite the error")
			}
			blobs, _ := os.ReadDir(filepath.Join(cache, "blobs", "sha256"))
			for _, b := range blobs {
				t.Errorf("left in the cache: %s", b.Name())
			}
			layers, _ := os.ReadDir(filepath.Join(cache, "layers"))
			for _, l := range layers {
				t.Errorf("layer record left in the cache: %s", l.Name())
			}
		})
	}
}
