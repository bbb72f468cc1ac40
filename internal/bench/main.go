// Command bench measures mlenv's build against the classic reproducible
// tar recipe, a plain `tar | sha256sum` (one pass of reading and hashing
// the tree: the floor for a single-stream tool) and go-containerregistry's
// single-stream layer path, on two synthetic environments, and prints one
// table of wall and CPU seconds and ratios from the same run. Run it with
// `make bench`.
//
// Data set A: a dozen large wheels, half random (stored) and half one
// repeated string (deflated), plus ~20,000 small application files.
// Data set B: wheels as real ones are, every member deflated (level 6, as
// Python's zipfile writes them): text of random words from a vocabulary
// (like Python sources) beside incompressible members.
package main

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	kflate "github.com/klauspost/compress/flate"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// cost is one measured run: wall time and CPU time (user + system, the
// process and the children it waited for).
type cost struct{ wall, cpu time.Duration }

func (c cost) String() string { return fmt.Sprintf("%.2f | %.2f", c.wall.Seconds(), c.cpu.Seconds()) }

type dataset struct {
	name                   string
	wheels, wheelMB, small int
	realistic              bool
	extra                  bool // the rebuild and zstd rows
}

func main() {
	dir := flag.String("dir", ".bench", "work folder (deleted and recreated)")
	mlenv := flag.String("mlenv", "bin/mlenv", "the mlenv binary")
	wheels := flag.Int("wheels", 12, "number of large wheels (data set A)")
	wheelMB := flag.Int("wheel-mb", 72, "uncompressed MiB per wheel (data set A)")
	small := flag.Int("small-files", 20000, "number of small application files (data set A)")
	wheelsB := flag.Int("wheels-b", 12, "number of wheels (data set B)")
	wheelMBB := flag.Int("wheel-mb-b", 40, "uncompressed MiB per wheel (data set B)")
	only := flag.String("only", "", "run one data set: A or B (default both)")
	flag.Parse()
	must(os.RemoveAll(*dir))
	must(os.MkdirAll(*dir, 0o755))
	abs, _ := filepath.Abs(*dir)
	mlenvAbs, _ := filepath.Abs(*mlenv)
	sets := []dataset{
		{name: "A", wheels: *wheels, wheelMB: *wheelMB, small: *small, extra: true},
		{name: "B", wheels: *wheelsB, wheelMB: *wheelMBB, realistic: true},
	}
	for _, ds := range sets {
		if *only != "" && !strings.EqualFold(*only, ds.name) {
			continue
		}
		runSet(filepath.Join(abs, ds.name), mlenvAbs, ds)
	}
}

func runSet(abs, mlenvAbs string, ds dataset) {
	must(os.MkdirAll(abs, 0o755))
	proj := filepath.Join(abs, "project")
	tree := filepath.Join(abs, "tree")
	fmt.Fprintf(os.Stderr, "data set %s: generating %d wheels of %d MiB and %d small files in %s...\n", ds.name, ds.wheels, ds.wheelMB, ds.small, abs)
	generate(proj, tree, ds)
	treeBytes := dirSize(tree)

	run := func(name string, args ...string) cost {
		// Flush dirty pages first so that one case's writes are not
		// paid by the next.
		exec.Command("sync").Run()
		cmd := exec.Command(name, args...)
		cmd.Dir = proj
		cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
		start := time.Now()
		must(cmd.Run())
		return cost{time.Since(start), cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}
	}
	sh := func(script string) cost {
		return run("bash", "-o", "pipefail", "-c", script)
	}
	// layout "" pins the classic layer layout in the lock, as locks
	// written before splicing do; the default is the spliced one.
	intent := func(comp, layout string) {
		y := fmt.Sprintf("name: bench\nepoch: 0\nbase: scratch\ncompression: %s\npython:\n  version: \"3.11\"\n  wheels:\n", comp)
		ws, _ := filepath.Glob(filepath.Join(proj, "*.whl"))
		for _, w := range ws {
			y += "    - path: " + filepath.Base(w) + "\n"
		}
		if ds.small > 0 {
			y += "files: [{src: app, dst: /app}]\n"
		}
		must(os.WriteFile(filepath.Join(proj, "mlenv.yaml"), []byte(y), 0o644))
		// A fresh lock: relocking keeps the layout an existing lock pins.
		os.Remove(filepath.Join(proj, "mlenv.lock"))
		run(mlenvAbs, "lock")
		if comp == "gzip" && layout == "" {
			lp := filepath.Join(proj, "mlenv.lock")
			b, err := os.ReadFile(lp)
			must(err)
			var l map[string]any
			must(json.Unmarshal(b, &l))
			delete(l["compression"].(map[string]any), "layout")
			b, _ = json.Marshal(l)
			must(os.WriteFile(lp, b, 0o644))
		}
	}
	tarCmd := fmt.Sprintf("tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C %s -cf - .", tree)

	// Each case runs twice and the faster run counts: the machines are
	// shared, and a cold build must start from an empty cache each time.
	best := func(f func() cost) cost {
		x, y := f(), f()
		if y.wall < x.wall {
			return y
		}
		return x
	}
	cold := func(tag string) (cost, int64) {
		c := best(func() cost {
			os.RemoveAll(filepath.Join(abs, "cache-"+tag))
			os.RemoveAll(filepath.Join(abs, "out-"+tag))
			return run(mlenvAbs, "build", "--cache-dir", filepath.Join(abs, "cache-"+tag), "--output", "oci:"+filepath.Join(abs, "out-"+tag))
		})
		return c, layerBytes(filepath.Join(abs, "out-"+tag))
	}
	intent("gzip", "")
	a, aSize := cold("a")
	intent("gzip", "splice")
	s, sSize := cold("s")
	b := best(func() cost { return sh(tarCmd + " | gzip -n | sha256sum") })
	f := best(func() cost { return sh(tarCmd + " | sha256sum") })
	// (c): a tar of the tree, fed to go-containerregistry as ko and crane do.
	tarFile := filepath.Join(abs, "tree.tar")
	sh(tarCmd + " > " + tarFile)
	c := best(func() cost {
		exec.Command("sync").Run()
		start, cpu0 := time.Now(), selfCPU()
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return os.Open(tarFile) })
		must(err)
		_, err = layer.Digest()
		must(err)
		_, err = layer.DiffID()
		must(err)
		return cost{time.Since(start), selfCPU() - cpu0}
	})
	os.Remove(tarFile)

	fmt.Printf("\nData set %s (best of 2 runs each): %.2f GiB tree, %d wheels x %d MiB%s, %d small files, %d cores\n\n",
		ds.name, float64(treeBytes)/(1<<30), ds.wheels, ds.wheelMB, map[bool]string{true: " (members deflated at level 6: word text and random)", false: " (random stored, repeated text deflated)"}[ds.realistic], ds.small, numCPU())
	fmt.Printf("| case | wall s | CPU s | ratio | target |\n|---|---|---|---|---|\n")
	row := func(name string, t cost, ratio string, target string) {
		fmt.Printf("| %s | %s | %s | %s |\n", name, t, ratio, target)
	}
	r := func(x, y cost) string { return fmt.Sprintf("%.2fx", x.wall.Seconds()/y.wall.Seconds()) }
	row("(a) mlenv cold build, gzip, classic layout (pgzip)", a, "1.00x of (a)", "")
	row("(s) mlenv cold build, gzip, spliced layout (default)", s, "(s)/(a) = "+r(s, a), "")
	row("(b) tar --sort=name ... | gzip -n", b, "(a)/(b) = "+r(a, b), "(a) <= 0.2x (b)")
	row("(c) go-containerregistry LayerFromOpener", c, "(a)/(c) = "+r(a, c)+", (s)/(c) = "+r(s, c), "(a) <= 0.6x (c), (s) <= 0.35x (c)")
	row("(f) tar ... | sha256sum (read and hash once)", f, "(s)/(f) = "+r(s, f), "(s) <= 1.0x (f)")
	fmt.Printf("\nCompressed layers: classic %.1f MiB, spliced %.1f MiB: (s)/(a) = %.3fx (target <= 1.05x)\n",
		float64(aSize)/(1<<20), float64(sSize)/(1<<20), float64(sSize)/float64(aSize))
	if !ds.extra {
		return
	}
	// (d): change one application file, relock, rebuild on the warm cache.
	must(os.WriteFile(filepath.Join(proj, "app", "d000", "f00000.py"), []byte("changed = True\n"), 0o644))
	lockD := run(mlenvAbs, "lock")
	d := run(mlenvAbs, "build", "--cache-dir", filepath.Join(abs, "cache-s"), "--output", "oci:"+filepath.Join(abs, "out-s"))
	// (d'): the same rebuild, but every cache hit re-hashed instead of
	// trusted by its seal: what checking the cache would cost without seals.
	must(os.WriteFile(filepath.Join(proj, "app", "d000", "f00000.py"), []byte("changed = 2\n"), 0o644))
	run(mlenvAbs, "lock")
	dFull := run(mlenvAbs, "build", "--verify-cache", "full", "--cache-dir", filepath.Join(abs, "cache-s"), "--output", "oci:"+filepath.Join(abs, "out-s"))
	intent("zstd", "")
	e, _ := cold("e")
	var eBase cost
	if _, err := exec.LookPath("zstd"); err == nil {
		eBase = best(func() cost { return sh(tarCmd + " | zstd -T0 -3 -q | sha256sum") })
	}
	fmt.Println()
	fmt.Printf("| case | wall s | CPU s | ratio | target |\n|---|---|---|---|---|\n")
	row("(d) mlenv rebuild, one app file changed", d, "(d)/(s) = "+r(d, s), "(d) <= 0.05x (s)")
	row("    (d) relock before it (hashes the app tree)", lockD, "", "")
	row("(d') the same rebuild, --verify-cache full", dFull, "(d')/(d) = "+r(dFull, d), "seal check: (d) stays within 1.1x of a rebuild that checks nothing")
	row("(e) mlenv cold build, zstd", e, "", "")
	if eBase.wall > 0 {
		row("    tar ... | zstd -T0 -3", eBase, "(e)/zstd = "+r(e, eBase), "(e) <= 1x")
	}
}

// selfCPU is this process's CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// layerBytes sums the compressed sizes of the layers of the images in an
// OCI layout.
func layerBytes(dir string) int64 {
	p, err := layout.FromPath(dir)
	must(err)
	idx, err := p.ImageIndex()
	must(err)
	im, err := idx.IndexManifest()
	must(err)
	var n int64
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		must(err)
		m, err := img.Manifest()
		must(err)
		for _, l := range m.Layers {
			n += l.Size
		}
	}
	return n
}

func numCPU() int {
	out, _ := exec.Command("nproc").Output()
	var n int
	fmt.Sscan(strings.TrimSpace(string(out)), &n)
	return n
}

// vocabulary is words of random letters, drawn with a skewed frequency as
// identifiers in source code are.
func vocabulary(rng *rand.Rand) []string {
	words := make([]string, 4000)
	for i := range words {
		b := make([]byte, 2+rng.Intn(10))
		for j := range b {
			b[j] = byte('a' + rng.Intn(26))
		}
		words[i] = string(b)
	}
	return words
}

func wordText(rng *rand.Rand, words []string, n int) []byte {
	var b bytes.Buffer
	b.Grow(n + 16)
	for b.Len() < n {
		b.WriteString(words[int(rng.ExpFloat64()*200)%len(words)])
		switch rng.Intn(12) {
		case 0:
			b.WriteString("\n    ")
		case 1:
			b.WriteString("(self, ")
		default:
			b.WriteByte(' ')
		}
	}
	return b.Bytes()[:n]
}

// generate writes the wheels and app files into proj and the same content
// unpacked into tree (what the baselines archive).
func generate(proj, tree string, ds dataset) {
	rng := rand.New(rand.NewSource(1))
	words := vocabulary(rng)
	must(os.MkdirAll(filepath.Join(proj, "app"), 0o755))
	text := []byte(strings.Repeat("def forward(self, x):\n    return self.linear(x) * 0.5 + bias\n", 1<<12))
	for w := 0; w < ds.wheels; w++ {
		name := fmt.Sprintf("bigpkg%02d", w)
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		if ds.realistic {
			// Level 6: what Python's zipfile (zlib's default) writes.
			zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) { return kflate.NewWriter(out, 6) })
		}
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
		if ds.realistic {
			// Half text in modules of 4 KiB to 1 MiB, half random in
			// members of 1 to 8 MiB; all deflated.
			for left, i := ds.wheelMB<<19, 0; left > 0; i++ {
				n := min(left, 4<<10+rng.Intn(1<<20))
				add(fmt.Sprintf("%s/m%d/mod%04d.py", name, i%16, i), wordText(rng, words, n), zip.Deflate)
				left -= n
			}
			for left, i := ds.wheelMB<<19, 0; left > 0; i++ {
				body := make([]byte, min(left, 1<<20+rng.Intn(7<<20)))
				rng.Read(body)
				add(fmt.Sprintf("%s/lib%02d.so", name, i), body, zip.Deflate)
				left -= len(body)
			}
		} else {
			perFile := 8 << 20
			files := ds.wheelMB << 20 / perFile
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
	for i := 0; i < ds.small; i++ {
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
