package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlenv/mlenv/attest"
	"github.com/mlenv/mlenv/internal/testutil"
)

// exampleDigest pins the offline example's image digest: any change to
// layer layout, tar metadata, compression or config shows up here. If a
// change is intended, update it and say why in the commit.
const exampleDigest = "sha256:2acf296830f8e51054b974ffccf890f2a7af520ba6f92ae68968fb7938ca8298"

// run executes the CLI in-process and returns stdout, stderr and the exit code.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	root := newRoot()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err := root.Execute()
	code := 0
	if err != nil {
		code = 2
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		errb.WriteString(err.Error())
	}
	return out.String(), errb.String(), code
}

// childEnv makes the test binary run the CLI once (its arguments are
// os.Args[1:]) instead of the tests: tests that need a process-wide
// setting (umask, time zone, working folder) changed run it as a child.
const childEnv = "MLENV_TEST_RUN_CLI"

// TestMain runs the CLI child (see childEnv), and otherwise points
// XDG_CACHE_HOME at a temporary folder for the whole package, so that no
// test can read or write the real ~/.cache/mlenv.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(runChild())
	}
	cache, err := os.MkdirTemp("", "mlenv-test-cache-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Setenv("XDG_CACHE_HOME", cache)
	code := m.Run()
	os.RemoveAll(cache)
	os.Exit(code)
}

// runChild sets the umask and local time zone the parent asked for and
// runs the CLI; the exit code is the CLI's.
func runChild() int {
	if u := os.Getenv("MLENV_TEST_UMASK"); u != "" {
		mask, err := strconv.ParseUint(u, 8, 32)
		if err != nil {
			fmt.Fprintln(os.Stderr, "MLENV_TEST_UMASK:", err)
			return 2
		}
		syscall.Umask(int(mask))
	}
	if off := os.Getenv("MLENV_TEST_TZ_OFFSET"); off != "" {
		secs, err := strconv.Atoi(off)
		if err != nil {
			fmt.Fprintln(os.Stderr, "MLENV_TEST_TZ_OFFSET:", err)
			return 2
		}
		time.Local = time.FixedZone("test", secs)
	}
	return runMain()
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestOfflineExampleIsReproducible builds examples/minimal twice: from two
// copies in different folders, under different time zones, umasks, working
// directories and caches, seconds apart, and compares both digests with the
// pinned one.
func TestOfflineExampleIsReproducible(t *testing.T) {
	example, _ := filepath.Abs("../../examples/minimal")
	if _, _, code := run(t, "lock", "--check", "-f", filepath.Join(example, "mlenv.yaml")); code != 0 {
		t.Fatalf("examples/minimal/mlenv.lock is stale: run `mlenv lock` there")
	}
	// Each build runs in a child process (this test binary, see
	// TestMain) with its own umask, time zone and working folder, so that
	// the test process's own stay as they are.
	var digests []string
	for i, env := range []struct {
		tzOffset int
		umask    string
	}{{0, "022"}, {9 * 3600, "077"}} {
		dir := t.TempDir()
		mustCopyDir(t, example, filepath.Join(dir, "project"))
		cmd := exec.Command(os.Args[0], "build", "--output", "oci:"+filepath.Join(dir, "out"))
		cmd.Dir = filepath.Join(dir, "project")
		cmd.Env = append(os.Environ(), childEnv+"=1", "MLENV_TEST_UMASK="+env.umask,
			"MLENV_TEST_TZ_OFFSET="+strconv.Itoa(env.tzOffset),
			"XDG_CACHE_HOME="+filepath.Join(dir, "cache"), "SOURCE_DATE_EPOCH=")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("build %d: %v: %s", i, err, stderr.String())
		}
		digests = append(digests, lastLine(stdout.String()))
		if i == 0 {
			time.Sleep(1100 * time.Millisecond) // the wall clock moves on
		}
	}
	if digests[0] != digests[1] {
		t.Fatalf("builds differ: %s vs %s", digests[0], digests[1])
	}
	if digests[0] != exampleDigest {
		t.Errorf("offline example digest is %s, pinned %s", digests[0], exampleDigest)
	}
}

func TestLockCheckExitCodes(t *testing.T) {
	dir := t.TempDir()
	mustCopyDir(t, "../../examples/minimal", dir)
	intent := filepath.Join(dir, "mlenv.yaml")
	if _, stderr, code := run(t, "lock", "--check", "-f", intent); code != 0 {
		t.Fatalf("fresh lock reported stale: %s", stderr)
	}
	os.WriteFile(filepath.Join(dir, "app", "new.py"), []byte("x = 1\n"), 0o644)
	if _, stderr, code := run(t, "lock", "--check", "-f", intent); code != 1 || !strings.Contains(stderr, "stale") {
		t.Fatalf("changed app: exit %d, %s", code, stderr)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "mlenv.lock"))
	if _, _, code := run(t, "lock", "-f", intent); code != 0 {
		t.Fatal("lock failed")
	}
	after, _ := os.ReadFile(filepath.Join(dir, "mlenv.lock"))
	if bytes.Equal(before, after) {
		t.Error("relocking did not change the lock")
	}
	if _, _, code := run(t, "lock", "--check", "-f", intent); code != 0 {
		t.Error("lock is stale right after locking")
	}
}

func TestBuildErrorsAreClear(t *testing.T) {
	dir := t.TempDir()
	_, stderr, code := run(t, "build", "--lock", filepath.Join(dir, "missing.lock"), "--output", "oci:"+dir+"/out")
	if code != 2 || !strings.Contains(stderr, "missing.lock") || !strings.Contains(stderr, "mlenv lock") {
		t.Errorf("missing lock: exit %d, %q", code, stderr)
	}
	os.WriteFile(filepath.Join(dir, "bad.lock"), []byte("{\n  \"lockVersion\": 1,\n  \"platforms\": [\"linux/amd64\"\n}\n"), 0o644)
	_, stderr, code = run(t, "build", "--lock", filepath.Join(dir, "bad.lock"), "--output", "oci:"+dir+"/out")
	if code != 2 || !strings.Contains(stderr, "bad.lock:") {
		t.Errorf("malformed lock: exit %d, %q", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); err == nil {
		t.Error("output created despite errors")
	}
}

func TestVersion(t *testing.T) {
	out, _, code := run(t, "version", "--output", "json")
	if code != 0 || !strings.Contains(out, `"go":"go1.`) || !strings.Contains(out, `"version":"dev"`) {
		t.Errorf("version: %d %s", code, out)
	}
}

func mustCopyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := testutil.CopyDir(src, dst); err != nil {
		t.Fatal(err)
	}
}

// TestOfflineExampleSBOM attests the offline example's image to a bundle
// through the CLI and checks its SBOM: valid SPDX 2.3, and exactly the
// image, the locked wheel, deb and file set (scratch has no packages).
func TestOfflineExampleSBOM(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
	t.Setenv("COSIGN_PASSWORD", "example")
	lock, _ := filepath.Abs("../../examples/minimal/mlenv.lock")
	out := "oci:" + filepath.Join(dir, "out")
	if _, stderr, code := run(t, "build", "--lock", lock, "--output", out); code != 0 {
		t.Fatal(stderr)
	}
	if _, stderr, code := run(t, "generate-key-pair", "--dir", dir); code != 0 {
		t.Fatal(stderr)
	}
	bundle := filepath.Join(dir, "bundle.json")
	stdout, stderr, code := run(t, "attest", out, "--key", filepath.Join(dir, "cosign.key"), "--lock", lock, "--bundle", bundle, "--output", "json")
	if code != 0 {
		t.Fatal(stderr)
	}
	var res struct {
		Digest  string
		Written []struct{ PredicateType string }
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || res.Digest != exampleDigest || len(res.Written) != 2 {
		t.Fatalf("attest --output json: %v %s", err, stdout)
	}
	b, err := attest.ReadBundle(bundle)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range b.Attestations {
		if a.PredicateType != attest.SPDXPredicateType {
			continue
		}
		var env struct{ Payload string }
		if err := json.Unmarshal(a.Envelope, &env); err != nil {
			t.Fatalf("SBOM envelope: %v", err)
		}
		raw, err := base64.StdEncoding.DecodeString(env.Payload)
		if err != nil {
			t.Fatalf("SBOM payload: %v", err)
		}
		var st struct{ Predicate json.RawMessage }
		if err := json.Unmarshal(raw, &st); err != nil {
			t.Fatalf("SBOM statement: %v", err)
		}
		var doc struct {
			Packages []struct{ Name, VersionInfo, PrimaryPackagePurpose string }
		}
		if err := json.Unmarshal(st.Predicate, &doc); err != nil {
			t.Fatalf("SBOM document: %v", err)
		}
		if len(doc.Packages) == 0 || doc.Packages[0].PrimaryPackagePurpose != "CONTAINER" || doc.Packages[0].VersionInfo != exampleDigest {
			t.Fatalf("the SBOM's first package is not the image %s: %+v", exampleDigest, doc.Packages)
		}
		var got []string
		for _, p := range doc.Packages[1:] {
			got = append(got, p.Name+"@"+p.VersionInfo)
		}
		sort.Strings(got)
		want := "/app@tree-sha256:537b64d2ec9ccf1b72c90937b4531bb1897aa80111f1d4053ec0b8e0b890fa0b hello-mlenv@0.1.0 mlenv-hello-data@1.0-1"
		if strings.Join(got, " ") != want {
			t.Errorf("SBOM packages %v\nwant %s", got, want)
		}
		testutil.ValidateSPDX(t, st.Predicate)
		return
	}
	t.Fatal("no SBOM in the bundle")
}
