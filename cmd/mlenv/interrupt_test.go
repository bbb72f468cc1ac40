package main

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlenv/mlenv/lockfile"
)

// slowArtifactLock writes a lock whose one deb is served by a server that
// sends 4 KiB every 20ms of 8 MiB (minutes in all).
func slowArtifactLock(t *testing.T) string {
	body := make([]byte, 8<<20)
	sum := sha256.Sum256(body)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		for off := 0; off < len(body); off += 4096 {
			if _, err := w.Write(body[off : off+4096]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}))
	t.Cleanup(srv.Close)
	l := &lockfile.Lock{LockVersion: 1, Platforms: []string{"linux/amd64"}, Base: lockfile.Base{Ref: "scratch"},
		Debs: []lockfile.Deb{{Package: "slow", Version: "1", Architecture: "all", Platforms: []string{"linux/amd64"},
			Artifact: lockfile.Artifact{URI: srv.URL + "/slow_1_all.deb", SHA256: fmt.Sprintf("%x", sum), Size: int64(len(body))}}},
		Compression: lockfile.Compression{Algorithm: "gzip", Level: 1}}
	enc, err := l.Encode()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "mlenv.lock")
	if err := os.WriteFile(p, enc, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// temps lists every temporary file (".tmp-" in its name) under the dirs.
func temps(dirs ...string) []string {
	var out []string
	for _, d := range dirs {
		filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err == nil && strings.Contains(e.Name(), ".tmp-") {
				out = append(out, p)
			}
			return nil
		})
	}
	return out
}

func TestInterruptedBuildLeavesNoTempFiles(t *testing.T) {
	lp := slowArtifactLock(t)
	cache := filepath.Join(t.TempDir(), "cache")
	outDir := t.TempDir()
	cmd := exec.Command(os.Args[0], "build", "--lock", lp, "--cache-dir", cache, "--output", "oci:"+filepath.Join(outDir, "out"))
	cmd.Env = append(os.Environ(), childEnv+"=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the download is under way (its temp file exists).
	deadline := time.Now().Add(20 * time.Second)
	for len(temps(cache)) == 0 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no download started: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Errorf("exit: %v, want code 2; stderr: %s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("SIGINT did not stop the build within 10s")
	}
	if left := temps(cache, outDir); len(left) != 0 {
		t.Errorf("temp files left after SIGINT: %v", left)
	}
	if !strings.Contains(stderr.String(), "interrupted") {
		t.Errorf("stderr: %s", stderr.String())
	}
}

func TestStaleTempFilesAreSweptByTheNextRun(t *testing.T) {
	example, _ := filepath.Abs("../../examples/minimal")
	cache := t.TempDir()
	blobs := filepath.Join(cache, "blobs", "sha256")
	os.MkdirAll(blobs, 0o755)
	// Left by a build killed with SIGKILL: its pid is gone.
	dead := filepath.Join(blobs, ".tmp-999999999-12345")
	os.WriteFile(dead, make([]byte, 1000), 0o644)
	_, stderr, code := run(t, "build", "--lock", filepath.Join(example, "mlenv.lock"), "--cache-dir", cache,
		"--output", "oci:"+filepath.Join(t.TempDir(), "out"))
	if code != 0 {
		t.Fatalf("build: %s", stderr)
	}
	if _, err := os.Stat(dead); err == nil {
		t.Error("stale temp file of a dead process not swept")
	}
}

func TestCheckReproducibleBuildsInAChildWithAnotherEnvironment(t *testing.T) {
	example, _ := filepath.Abs("../../examples/minimal")
	// The child is this test binary, run as mlenv (see TestMain).
	t.Setenv(childEnv, "1")
	t.Setenv("SOURCE_DATE_EPOCH", "")
	out := filepath.Join(t.TempDir(), "out")
	stdout, stderr, code := run(t, "build", "--check-reproducible", "--lock", filepath.Join(example, "mlenv.lock"),
		"--cache-dir", t.TempDir(), "--output", "oci:"+out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if lastLine(stdout) != exampleDigest || !strings.Contains(stderr, "reproducible: both builds gave "+exampleDigest) {
		t.Errorf("stdout %q, stderr %q", stdout, stderr)
	}
	idx, err := os.ReadFile(filepath.Join(out, "index.json"))
	if err != nil || !strings.Contains(string(idx), exampleDigest) {
		t.Errorf("output: %v %s", err, idx)
	}
}
