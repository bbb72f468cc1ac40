package lockfile

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

const uvRootHeader = "version = 1\nrevision = 3\n\n[[package]]\nname = \"root\"\nversion = \"0.1.0\"\nsource = { editable = \".\" }\ndependencies = [\n"

// uvRootWith is a uv.lock whose root depends on p0..p(n-1), each a
// registry package with one wheel; extra is appended to every p.
func uvRootWith(n int, extra string) *strings.Builder {
	var b strings.Builder
	b.WriteString(uvRootHeader)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "    { name = \"p%d\" },\n", i)
	}
	b.WriteString("]\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "\n[[package]]\nname = \"p%d\"\nversion = \"1\"\nsource = { registry = \"https://pypi.org/simple\" }\n%swheels = [{ url = \"https://example.invalid/p%d-1-py3-none-any.whl\", hash = \"sha256:%s\", size = 1 }]\n", i, extra, i, strings.Repeat("a", 64))
	}
	return &b
}

var attackTarget = Target{PythonVersion: "3.11", Implementation: "cp", Libc: "glibc 2.36", Platform: "linux/amd64"}

// One [[package]] with 50,000 dependencies (a 6 MB file) took 45 s to
// parse: each edge's line was searched from the table's start.
func TestUVLockManyEdgesParseInLinearTime(t *testing.T) {
	data := uvRootWith(50_000, "").String()
	start := time.Now()
	u, err := ParseUVLock("uv.lock", []byte(data), ".")
	if err != nil {
		t.Fatal(err)
	}
	pkgs, _, err := u.selectFor(context.Background(), newPySelect(&PythonIntent{}, attackTarget, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != 50_000 {
		t.Errorf("installs %d packages, want 50000", len(pkgs))
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("parsing and selecting took %v, want well under 10s", took)
	}
	// Errors still name the edge's own line.
	bad := strings.Replace(data, `{ name = "p49999" }`, `{ name = "p49999", marker = "python_version <" }`, 1)
	_, err = ParseUVLock("uv.lock", []byte(bad), ".")
	if want := fmt.Sprintf("uv.lock:%d:", lineOf(bad, `"p49999", marker`)); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v, want an error at %s", err, want)
	}
}

// 5,000 packages that each depend on x, locked 5,000 times in forks that
// match no target (a 1.4 MB file), took 112 s: every edge re-evaluated
// every fork and noted its reason on every candidate.
func TestUVLockForkFanOutIsNotQuadratic(t *testing.T) {
	const n = 5000
	b := uvRootWith(n, "dependencies = [{ name = \"x\" }]\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(b, "\n[[package]]\nname = \"x\"\nversion = \"%d\"\nresolution-markers = [\"python_version < '3'\"]\nsource = { registry = \"https://pypi.org/simple\" }\n", i)
	}
	u, err := ParseUVLock("uv.lock", []byte(b.String()), ".")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	pkgs, ds, err := u.selectFor(context.Background(), newPySelect(&PythonIntent{}, attackTarget, nil))
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("selecting took %v, want well under 10s", took)
	}
	if len(pkgs) != n {
		t.Errorf("installs %d packages, want %d", len(pkgs), n)
	}
	for _, d := range ds {
		if d.Package == "x" && d.Version == "7" {
			if d.Installed || !strings.Contains(d.Reason, "no locked version of x") {
				t.Errorf("x 7: installed %v, reason %q; want out, for its fork", d.Installed, d.Reason)
			}
			return
		}
	}
	t.Error("no decision for x 7")
}

// A chain root -> a0 -> a1 -> ... of 300,000 packages (20 MB) used 512 MB
// of goroutine stack in the recursive walk; a 64 MiB lock could hold a
// chain that overflows the stack, a fatal error. Real chains are a few
// dozen deep: a chain past maxUVDepth is refused, naming where it was.
func TestUVLockDeepChainIsRefused(t *testing.T) {
	n := maxUVDepth + 10
	var b strings.Builder
	b.WriteString(uvRootHeader + "    { name = \"a0\" },\n]\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "\n[[package]]\nname = \"a%d\"\nversion = \"1\"\nsource = { registry = \"https://pypi.org/simple\" }\nwheels = [{ url = \"https://example.invalid/a%d-1-py3-none-any.whl\", hash = \"sha256:%s\", size = 1 }]\n", i, i, strings.Repeat("a", 64))
		if i+1 < n {
			fmt.Fprintf(&b, "dependencies = [{ name = \"a%d\" }]\n", i+1)
		}
	}
	u, err := ParseUVLock("uv.lock", []byte(b.String()), ".")
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = u.selectFor(context.Background(), newPySelect(&PythonIntent{}, attackTarget, nil))
	if err == nil || !strings.Contains(err.Error(), "deeper than") || !strings.Contains(err.Error(), "uv.lock:") {
		t.Fatalf("got %v, want an error at a line of uv.lock saying the chain is too deep", err)
	}
}
