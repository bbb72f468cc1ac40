package lockfile

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// largeUVLock is a uv.lock of 1,000 packages with 5,000 wheel entries:
// 800 single packages and 100 names locked twice (forks on Python 3.11),
// each with 5 wheels; every package depends on up to three later ones,
// a third of the edges with a marker.
func largeUVLock() []byte {
	rng := rand.New(rand.NewSource(1))
	type pk struct {
		name, version, fork string
	}
	var pkgs []pk
	for i := 0; i < 800; i++ {
		pkgs = append(pkgs, pk{name: fmt.Sprintf("pkg-%04d", i), version: "1.0"})
	}
	for i := 0; i < 100; i++ {
		n := fmt.Sprintf("forked-%03d", i)
		pkgs = append(pkgs, pk{n, "1.0", "python_full_version < '3.11'"}, pk{n, "2.0", "python_full_version >= '3.11'"})
	}
	markers := []string{"sys_platform == 'win32'", "python_full_version == '3.11.*'", "platform_machine == 'x86_64' and sys_platform == 'linux'", "python_version < '3.12'", "extra == 'x'"}
	var b strings.Builder
	b.WriteString("version = 1\nrevision = 3\nrequires-python = \">=3.10\"\n\n[[package]]\nname = \"root\"\nversion = \"0.1.0\"\nsource = { editable = \".\" }\ndependencies = [\n")
	for i := 0; i < 60; i++ {
		fmt.Fprintf(&b, "    { name = \"pkg-%04d\" },\n", i*13%800)
	}
	b.WriteString("    { name = \"forked-000\" },\n]\n")
	for i, p := range pkgs {
		fmt.Fprintf(&b, "\n[[package]]\nname = %q\nversion = %q\nsource = { registry = \"https://pypi.org/simple\" }\n", p.name, p.version)
		if p.fork != "" {
			fmt.Fprintf(&b, "resolution-markers = [%q]\n", p.fork)
		}
		if i < 799 {
			b.WriteString("dependencies = [\n")
			for k := 0; k < 3; k++ {
				j := i + 1 + rng.Intn(800-i-1+1)
				if j >= 800 {
					j = 800 + rng.Intn(100)*2
				}
				dep := pkgs[j].name
				if k%3 == 2 {
					fmt.Fprintf(&b, "    { name = %q, marker = %q },\n", dep, markers[rng.Intn(len(markers))])
				} else {
					fmt.Fprintf(&b, "    { name = %q },\n", dep)
				}
			}
			b.WriteString("]\n")
		}
		b.WriteString("wheels = [\n")
		under := strings.ReplaceAll(p.name, "-", "_")
		for _, tag := range []string{"cp310-cp310-manylinux_2_17_x86_64", "cp311-cp311-manylinux_2_17_x86_64", "cp312-cp312-manylinux_2_17_x86_64", "cp311-cp311-manylinux_2_17_aarch64", "cp311-cp311-win_amd64"} {
			w := fmt.Sprintf("%s-%s-%s.whl", under, p.version, tag)
			fmt.Fprintf(&b, "    { url = \"https://files.example.invalid/%s\", hash = \"sha256:%s\", size = %d },\n", w, fxHash(w), 1000+i)
		}
		b.WriteString("]\n")
	}
	return []byte(b.String())
}

// BenchmarkParseUVLarge is the floor: decoding the TOML alone.
func BenchmarkParseUVLarge(b *testing.B) {
	data := largeUVLock()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		var ul uvLockFile
		if err := toml.Unmarshal(data, &ul); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLockUVLarge is `mlenv lock` on it: read, check, walk the graph
// for Python 3.11 on linux/amd64 and linux/arm64, pick wheels.
func BenchmarkLockUVLarge(b *testing.B) {
	data := largeUVLock()
	dir := b.TempDir()
	os.WriteFile(filepath.Join(dir, "uv.lock"), data, 0o644)
	in, err := ParseIntent(filepath.Join(dir, "mlenv.yaml"), []byte("base: scratch\nplatforms: [linux/amd64, linux/arm64]\npython:\n  version: \"3.11\"\n  uv-lock: uv.lock\n"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	var wheels int
	for b.Loop() {
		l, err := (&Resolver{}).Resolve(context.Background(), in)
		if err != nil {
			b.Fatal(err)
		}
		wheels = len(l.Wheels)
	}
	b.ReportMetric(float64(wheels), "wheels")
}

func TestLargeUVLockShape(t *testing.T) {
	ul, err := ParseUVLock("uv.lock", largeUVLock(), ".")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range ul.pkgs {
		n += len(p.files)
	}
	if len(ul.pkgs) != 1001 || n != 5000 {
		t.Errorf("%d packages, %d wheels; want 1,000 (+ the root) and 5,000", len(ul.pkgs), n)
	}
}
