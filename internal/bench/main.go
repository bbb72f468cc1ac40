// Command bench measures mlenv's build against the classic reproducible
// tar recipe and go-containerregistry's single-stream layer path, on one
// synthetic ~1 GiB environment (a dozen large wheels, part compressible and
// part random, plus ~20,000 small application files), and prints one table
// of times and ratios from the same run. Run it with `make bench`.
package main

import (
	"archive/zip"
	"bytes"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func main() {
	dir := flag.String("dir", ".bench", "work folder (deleted and recreated)")
	mlenv := flag.String("mlenv", "bin/mlenv", "the mlenv binary")
	wheels := flag.Int("wheels", 12, "number of large wheels")
	wheelMB := flag.Int("wheel-mb", 72, "uncompressed MiB per wheel")
	small := flag.Int("small-files", 20000, "number of small application files")
	flag.Parse()
	must(os.RemoveAll(*dir))
	must(os.MkdirAll(*dir, 0o755))
	abs, _ := filepath.Abs(*dir)
	mlenvAbs, _ := filepath.Abs(*mlenv)
	proj := filepath.Join(abs, "project")
	tree := filepath.Join(abs, "tree")
	fmt.Fprintf(os.Stderr, "generating %d wheels of %d MiB and %d small files in %s...\n", *wheels, *wheelMB, *small, abs)
	generate(proj, tree, *wheels, *wheelMB, *small)
	treeBytes := dirSize(tree)

	run := func(name string, args ...string) time.Duration {
		// Flush dirty pages first so that one case's writes are not
		// paid by the next.
		exec.Command("sync").Run()
		cmd := exec.Command(name, args...)
		cmd.Dir = proj
		cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
		start := time.Now()
		must(cmd.Run())
		return time.Since(start)
	}
	sh := func(script string) time.Duration {
		return run("bash", "-o", "pipefail", "-c", script)
	}
	intent := func(comp string) {
		y := fmt.Sprintf("name: bench\nepoch: 0\nbase: scratch\ncompression: %s\npython:\n  version: \"3.11\"\n  wheels:\n", comp)
		ws, _ := filepath.Glob(filepath.Join(proj, "*.whl"))
		for _, w := range ws {
			y += "    - path: " + filepath.Base(w) + "\n"
		}
		y += "files: [{src: app, dst: /app}]\n"
		must(os.WriteFile(filepath.Join(proj, "mlenv.yaml"), []byte(y), 0o644))
		run(mlenvAbs, "lock")
	}
	tarCmd := fmt.Sprintf("tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C %s -cf - .", tree)

	// Each case runs twice and the faster run counts: the machines are
	// shared, and a cold build must start from an empty cache each time.
	best := func(f func() time.Duration) time.Duration {
		x, y := f(), f()
		return min(x, y)
	}
	intent("gzip")
	a := best(func() time.Duration {
		os.RemoveAll(filepath.Join(abs, "cache-a"))
		os.RemoveAll(filepath.Join(abs, "out-a"))
		return run(mlenvAbs, "build", "--cache-dir", filepath.Join(abs, "cache-a"), "--output", "oci:"+filepath.Join(abs, "out-a"))
	})
	b := best(func() time.Duration { return sh(tarCmd + " | gzip -n | sha256sum") })
	// (c): a tar of the tree, fed to go-containerregistry as ko and crane do.
	tarFile := filepath.Join(abs, "tree.tar")
	sh(tarCmd + " > " + tarFile)
	c := best(func() time.Duration {
		exec.Command("sync").Run()
		start := time.Now()
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return os.Open(tarFile) })
		must(err)
		_, err = layer.Digest()
		must(err)
		_, err = layer.DiffID()
		must(err)
		return time.Since(start)
	})
	os.Remove(tarFile)
	// (d): change one application file, relock, rebuild on the warm cache.
	must(os.WriteFile(filepath.Join(proj, "app", "d000", "f00000.py"), []byte("changed = True\n"), 0o644))
	lockD := run(mlenvAbs, "lock")
	d := run(mlenvAbs, "build", "--cache-dir", filepath.Join(abs, "cache-a"), "--output", "oci:"+filepath.Join(abs, "out-a"))
	intent("zstd")
	e := best(func() time.Duration {
		os.RemoveAll(filepath.Join(abs, "cache-e"))
		os.RemoveAll(filepath.Join(abs, "out-e"))
		return run(mlenvAbs, "build", "--cache-dir", filepath.Join(abs, "cache-e"), "--output", "oci:"+filepath.Join(abs, "out-e"))
	})
	var eBase time.Duration
	if _, err := exec.LookPath("zstd"); err == nil {
		eBase = best(func() time.Duration { return sh(tarCmd + " | zstd -T0 -3 -q | sha256sum") })
	}

	fmt.Printf("\nmlenv build benchmark (best of 2 runs each): %.2f GiB tree, %d wheels x %d MiB, %d small files, %d cores\n\n",
		float64(treeBytes)/(1<<30), *wheels, *wheelMB, *small, numCPU())
	fmt.Printf("| case | seconds | ratio | target |\n|---|---|---|---|\n")
	row := func(name string, t time.Duration, ratio string, target string) {
		fmt.Printf("| %s | %.2f | %s | %s |\n", name, t.Seconds(), ratio, target)
	}
	r := func(x, y time.Duration) string { return fmt.Sprintf("%.2fx", x.Seconds()/y.Seconds()) }
	row("(a) mlenv cold build, gzip", a, "1.00x of (a)", "")
	row("(b) tar --sort=name ... | gzip -n", b, "(a)/(b) = "+r(a, b), "(a) <= 0.2x (b)")
	row("(c) go-containerregistry LayerFromOpener", c, "(a)/(c) = "+r(a, c), "(a) <= 0.6x (c)")
	row("(d) mlenv rebuild, one app file changed", d, "(d)/(a) = "+r(d, a), "(d) <= 0.05x (a)")
	row("    (d) relock before it (hashes the app tree)", lockD, "", "")
	row("(e) mlenv cold build, zstd", e, "", "")
	if eBase > 0 {
		row("    tar ... | zstd -T0 -3", eBase, "(e)/zstd = "+r(e, eBase), "(e) <= 1x")
	}
}

func numCPU() int {
	out, _ := exec.Command("nproc").Output()
	var n int
	fmt.Sscan(strings.TrimSpace(string(out)), &n)
	return n
}

// generate writes the wheels and app files into proj and the same content
// unpacked into tree (what the baselines archive).
func generate(proj, tree string, wheels, wheelMB, small int) {
	rng := rand.New(rand.NewSource(1))
	must(os.MkdirAll(filepath.Join(proj, "app"), 0o755))
	text := []byte(strings.Repeat("def forward(self, x):\n    return self.linear(x) * 0.5 + bias\n", 1<<12))
	for w := 0; w < wheels; w++ {
		name := fmt.Sprintf("bigpkg%02d", w)
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		var record strings.Builder
		add := func(path string, body []byte, method uint16) {
			h := &zip.FileHeader{Name: path, Method: method}
			f, err := zw.CreateHeader(h)
			must(err)
			f.Write(body)
			record.WriteString(recordLine(path, body))
			p := filepath.Join(tree, "site-packages", path)
			must(os.MkdirAll(filepath.Dir(p), 0o755))
			must(os.WriteFile(p, body, 0o644))
		}
		perFile := 8 << 20
		files := wheelMB << 20 / perFile
		for i := 0; i < files; i++ {
			body := make([]byte, perFile)
			if i%2 == 0 {
				rng.Read(body) // weights-like: incompressible, stored as such
				add(fmt.Sprintf("%s/lib%02d.so", name, i), body, zip.Store)
			} else {
				for j := 0; j < perFile; j += len(text) {
					copy(body[j:], text)
				}
				add(fmt.Sprintf("%s/mod%02d.py", name, i), body, zip.Deflate)
			}
		}
		di := fmt.Sprintf("%s-1.0.dist-info", name)
		add(di+"/METADATA", []byte("Metadata-Version: 2.1\nName: "+name+"\nVersion: 1.0\n"), zip.Deflate)
		add(di+"/WHEEL", []byte("Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"), zip.Deflate)
		f, err := zw.Create(di + "/RECORD")
		must(err)
		f.Write([]byte(record.String() + di + "/RECORD,,\n"))
		must(zw.Close())
		must(os.WriteFile(filepath.Join(proj, name+"-1.0-py3-none-any.whl"), buf.Bytes(), 0o644))
	}
	for i := 0; i < small; i++ {
		rel := filepath.Join(fmt.Sprintf("d%03d", i/200), fmt.Sprintf("f%05d.py", i))
		body := make([]byte, 1024+rng.Intn(8192))
		for j := range body {
			body[j] = "abcdefghij \n"[rng.Intn(12)]
		}
		for _, root := range []string{filepath.Join(proj, "app"), filepath.Join(tree, "app")} {
			p := filepath.Join(root, rel)
			must(os.MkdirAll(filepath.Dir(p), 0o755))
			must(os.WriteFile(p, body, 0o644))
		}
	}
}

func dirSize(root string) int64 {
	var n int64
	filepath.Walk(root, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
