package builder

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/mlenv/mlenv/image"
	"github.com/mlenv/mlenv/internal/cas"
	"github.com/mlenv/mlenv/internal/testutil"
	"github.com/mlenv/mlenv/lockfile"
)

var helloWheel = testutil.Wheel{
	Name: "hello", Version: "1.0",
	Files: map[string]string{
		"hello/__init__.py":                   "def main():\n    print('hi')\n",
		"hello/data.bin":                      "binary\x00data",
		"hello-1.0.data/scripts/hello-raw":    "#!python\nprint('raw')\n",
		"hello-1.0.data/data/share/hello.txt": "shared data\n",
		"hello-1.0.data/headers/hello.h":      "#define HELLO 1\n",
		"hello-1.0.data/platlib/hello_ext.py": "X = 1\n",
	},
	EntryPoints: "[console_scripts]\nhello = hello:main\n\n[gui_scripts]\nhello-gui = hello.gui:run.start\n",
}

var helloDeb = testutil.Deb{
	Package: "hello-deb", Version: "1.0", Arch: "all",
	Files: []testutil.TarEntry{
		{Name: "./", Type: tar.TypeDir},
		{Name: "./usr/", Type: tar.TypeDir},
		{Name: "./usr/bin/", Type: tar.TypeDir},
		{Name: "./usr/bin/hello-deb", Body: "#!/bin/sh\necho hi\n", Mode: 0o755},
		{Name: "./usr/bin/hi", Type: tar.TypeSymlink, Linkname: "hello-deb"},
		{Name: "./usr/bin/hello-hard", Type: tar.TypeLink, Linkname: "./usr/bin/hello-deb"},
	},
}

// project writes an intent with the given extra YAML and inputs, locks it
// and returns the lock path.
func project(t *testing.T, extra string, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for n, b := range files {
		p := filepath.Join(dir, n)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	intent := "name: test\nepoch: 1700000000\n" + extra
	if !strings.Contains(extra, "base:") {
		intent += "base: scratch\n"
	}
	p := filepath.Join(dir, "mlenv.yaml")
	os.WriteFile(p, []byte(intent), 0o644)
	in, err := lockfile.LoadIntent(p)
	if err != nil {
		t.Fatal(err)
	}
	l, err := (&lockfile.Resolver{Fetcher: &cas.Fetcher{Cache: &cas.Cache{Dir: t.TempDir()}, BaseDir: dir}}).Resolve(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Encode()
	if err != nil {
		t.Fatal(err)
	}
	lp := filepath.Join(dir, "mlenv.lock")
	os.WriteFile(lp, b, 0o644)
	return lp
}

func opts(t *testing.T, lockPath, cacheDir string) Options {
	t.Helper()
	l, err := lockfile.LoadLock(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := l.Digest()
	return Options{Lock: l, LockDigest: d, BaseDir: filepath.Dir(lockPath), Cache: &cas.Cache{Dir: cacheDir}, RetryBackoff: time.Millisecond}
}

func standardProject(t *testing.T) string {
	return project(t, `python:
  version: "3.11"
  wheels: [{path: `+helloWheel.Filename()+`}]
debs: [{path: `+helloDeb.Filename()+`}]
files: [{src: app, dst: /app}]
env: {A: "1"}
entrypoint: [/usr/local/bin/hello]
`, map[string][]byte{
		helloWheel.Filename(): helloWheel.Bytes(),
		helloDeb.Filename():   helloDeb.Bytes(),
		"app/main.py":         []byte("print('app')\n"),
		"app/sub/run.sh":      []byte("#!/bin/sh\n"),
	})
}

func TestBuildTwiceSameDigestDifferentCachesAndDirs(t *testing.T) {
	lp := standardProject(t)
	r1, err := Build(context.Background(), opts(t, lp, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	// A copy of the project in another folder, another cache.
	dir2 := t.TempDir()
	if err := testutil.CopyDir(filepath.Dir(lp), dir2); err != nil {
		t.Fatal(err)
	}
	r2, err := Build(context.Background(), opts(t, filepath.Join(dir2, "mlenv.lock"), t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if r1.Digest != r2.Digest {
		t.Fatalf("digests differ: %s vs %s", r1.Digest, r2.Digest)
	}
	cf, _ := r1.Image.ConfigFile()
	if cf.Created.Unix() != 1700000000 || cf.Config.Labels[LabelLockDigest] == "" {
		t.Errorf("config created %v, labels %v", cf.Created, cf.Config.Labels)
	}
	layers, _ := r1.Image.Layers()
	if len(layers) != 3 {
		t.Errorf("%d layers, want debs, wheels, files", len(layers))
	}
}

func unpackBuilt(t *testing.T, r *Result) string {
	t.Helper()
	root := t.TempDir()
	if err := testutil.Unpack(r.Image, root); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestWheelInstallMatchesRecord(t *testing.T) {
	lp := standardProject(t)
	r, err := Build(context.Background(), opts(t, lp, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	root := unpackBuilt(t, r)
	site := filepath.Join(root, "usr/local/lib/python3.11/site-packages")
	f, err := os.Open(filepath.Join(site, "hello-1.0.dist-info/RECORD"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	checked := 0
	for sc.Scan() {
		parts := strings.Split(sc.Text(), ",")
		if parts[1] == "" {
			continue // RECORD itself
		}
		b, err := os.ReadFile(filepath.Join(site, parts[0]))
		if err != nil {
			t.Errorf("RECORD lists %s, not installed: %v", parts[0], err)
			continue
		}
		sum := sha256.Sum256(b)
		if got := "sha256=" + base64.RawURLEncoding.EncodeToString(sum[:]); got != parts[1] || fmt.Sprint(len(b)) != parts[2] {
			t.Errorf("%s: RECORD says %s,%s; file is %s,%d", parts[0], parts[1], parts[2], got, len(b))
		}
		checked++
	}
	if checked < 9 {
		t.Errorf("only %d RECORD rows checked", checked)
	}
	for p, want := range map[string]string{
		"usr/local/share/hello.txt":                                            "shared data\n",
		"usr/local/include/python3.11/hello/hello.h":                           "#define HELLO 1\n",
		"usr/local/lib/python3.11/site-packages/hello_ext.py":                  "X = 1\n",
		"usr/local/lib/python3.11/site-packages/hello-1.0.dist-info/INSTALLER": "mlenv\n",
		"usr/local/bin/hello-raw":                                              "#!/usr/local/bin/python3.11\nprint('raw')\n",
	} {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", p, b, err, want)
		}
	}
	for _, script := range []string{"hello", "hello-gui", "hello-raw"} {
		p := filepath.Join(root, "usr/local/bin", script)
		fi, err := os.Stat(p)
		if err != nil || fi.Mode()&0o111 == 0 {
			t.Errorf("%s missing or not executable: %v", script, err)
			continue
		}
		b, _ := os.ReadFile(p)
		if !strings.HasPrefix(string(b), "#!/usr/local/bin/python3.11\n") {
			t.Errorf("%s shebang: %q", script, strings.SplitN(string(b), "\n", 2)[0])
		}
	}
	gui, _ := os.ReadFile(filepath.Join(root, "usr/local/bin/hello-gui"))
	if !strings.Contains(string(gui), "from hello.gui import run\n") || !strings.Contains(string(gui), "sys.exit(run.start())") {
		t.Errorf("gui script does not call hello.gui:run.start:\n%s", gui)
	}
	if _, err := os.Stat(filepath.Join(site, "hello-1.0.data")); err == nil {
		t.Error(".data folder left in site-packages")
	}
}

func TestDebInstallAllCompressions(t *testing.T) {
	for _, comp := range []string{"gz", "xz", "zst"} {
		t.Run(comp, func(t *testing.T) {
			d := helloDeb
			d.Compression = comp
			lp := project(t, "debs: [{path: "+d.Filename()+"}]\n", map[string][]byte{d.Filename(): d.Bytes()})
			r, err := Build(context.Background(), opts(t, lp, t.TempDir()))
			if err != nil {
				t.Fatal(err)
			}
			root := unpackBuilt(t, r)
			b, err := os.ReadFile(filepath.Join(root, "usr/bin/hi"))
			if err != nil || string(b) != "#!/bin/sh\necho hi\n" {
				t.Errorf("symlink target content %q %v", b, err)
			}
			fi, _ := os.Stat(filepath.Join(root, "usr/bin/hello-deb"))
			if fi == nil || fi.Mode().Perm() != 0o755 {
				t.Errorf("mode of hello-deb: %v", fi)
			}
			st, err := os.ReadFile(filepath.Join(root, "var/lib/dpkg/status.d/hello-deb"))
			if err != nil || !strings.Contains(string(st), "Package: hello-deb\nStatus: install ok installed\n") {
				t.Errorf("dpkg status: %q %v", st, err)
			}
			list, _ := os.ReadFile(filepath.Join(root, "var/lib/dpkg/info/hello-deb.list"))
			if !strings.Contains(string(list), "/usr/bin/hello-deb\n") {
				t.Errorf("file list: %q", list)
			}
		})
	}
}

// layersCached lists built-layer records in a cache.
func layersCached(t *testing.T, cacheDir string) int {
	entries, _ := os.ReadDir(filepath.Join(cacheDir, "layers"))
	return len(entries)
}

func TestMaliciousArchivesAreRefused(t *testing.T) {
	evilWheel := func(entries ...testutil.ZipEntry) []byte {
		w := testutil.Wheel{Name: "evil", Version: "1", Files: map[string]string{"evil/__init__.py": ""},
			MutateAfter: func(e []testutil.ZipEntry) []testutil.ZipEntry { return append(e, entries...) }}
		return w.Bytes()
	}
	evilDeb := func(files ...testutil.TarEntry) []byte {
		return testutil.Deb{Package: "evil", Version: "1", Arch: "all", Files: files}.Bytes()
	}
	cases := []struct {
		name, kind string
		body       []byte
		want       string
	}{
		{"wheel dotdot", "wheel", evilWheel(testutil.ZipEntry{Name: "../../etc/passwd", Body: []byte("x")}), `climbs out of the root`},
		{"wheel absolute", "wheel", evilWheel(testutil.ZipEntry{Name: "/etc/passwd", Body: []byte("x")}), "absolute path"},
		{"wheel duplicate", "wheel", evilWheel(testutil.ZipEntry{Name: "evil/__init__.py", Body: []byte("x")}), "appears twice"},
		{"wheel file not in RECORD", "wheel", evilWheel(testutil.ZipEntry{Name: "evil/extra.py", Body: []byte("x")}), "not listed with a hash in RECORD"},
		{"wheel symlink", "wheel", evilWheel(testutil.ZipEntry{Name: "evil/link", Body: []byte("/etc"), Mode: 0o120777}), "symlink"},
		{"wheel content differs from RECORD", "wheel", (testutil.Wheel{Name: "evil", Version: "1", Files: map[string]string{"evil/__init__.py": "good"},
			MutateAfter: func(e []testutil.ZipEntry) []testutil.ZipEntry {
				for i := range e {
					if e[i].Name == "evil/__init__.py" {
						e[i].Body = []byte("evil")
					}
				}
				return e
			}}).Bytes(), "hash mismatch"},
		{"deb dotdot", "deb", evilDeb(testutil.TarEntry{Name: "./../../etc/passwd", Body: "x"}), "climbs out of the root"},
		{"deb absolute", "deb", evilDeb(testutil.TarEntry{Name: "/etc/passwd", Body: "x"}), "absolute path"},
		{"deb duplicate", "deb", evilDeb(testutil.TarEntry{Name: "./a", Body: "x"}, testutil.TarEntry{Name: "./a", Body: "y"}), "appears twice"},
		{"deb write through symlink", "deb", evilDeb(
			testutil.TarEntry{Name: "./escape", Type: tar.TypeSymlink, Linkname: "../../../../etc"},
			testutil.TarEntry{Name: "./escape/cron.d/evil", Body: "* * * * * root sh"}), "written through the symlink"},
		{"deb write through absolute symlink", "deb", evilDeb(
			testutil.TarEntry{Name: "./etc2", Type: tar.TypeSymlink, Linkname: "/etc"},
			testutil.TarEntry{Name: "./etc2/passwd", Body: "x"}), "written through the symlink"},
		{"deb hardlink outside", "deb", evilDeb(testutil.TarEntry{Name: "./h", Type: tar.TypeLink, Linkname: "../../etc/shadow"}), "climbs out of the root"},
		{"deb device", "deb", evilDeb(testutil.TarEntry{Name: "./dev/sda", Type: tar.TypeBlock}), "unsupported type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var lp string
			if c.kind == "wheel" {
				lp = project(t, "python:\n  version: \"3.11\"\n  wheels: [{path: evil-1-py3-none-any.whl}]\n", map[string][]byte{"evil-1-py3-none-any.whl": c.body})
			} else {
				lp = project(t, "debs: [{path: evil_1_all.deb}]\n", map[string][]byte{"evil_1_all.deb": c.body})
			}
			cache := t.TempDir()
			o := opts(t, lp, cache)
			_, err := Build(context.Background(), o)
			if err == nil {
				t.Fatal("malicious archive was accepted")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
			if n := layersCached(t, cache); n != 0 {
				t.Errorf("%d layers left in the cache after a failed build", n)
			}
			leftovers, _ := filepath.Glob(filepath.Join(cache, "blobs/sha256/.*"))
			if len(leftovers) != 0 {
				t.Errorf("temporary files left in the cache: %v", leftovers)
			}
		})
	}
}

func TestChangedInputsAreRefused(t *testing.T) {
	lp := standardProject(t)
	dir := filepath.Dir(lp)
	// The wheel on disk no longer matches the lock.
	w := helloWheel
	w.Files = map[string]string{"hello/__init__.py": "tampered"}
	os.WriteFile(filepath.Join(dir, helloWheel.Filename()), w.Bytes(), 0o644)
	cache := t.TempDir()
	_, err := Build(context.Background(), opts(t, lp, cache))
	if err == nil || !strings.Contains(err.Error(), "mismatch") {
		t.Fatalf("tampered wheel: %v", err)
	}
	l, _ := lockfile.LoadLock(lp)
	c := &cas.Cache{Dir: cache}
	for _, wl := range l.Wheels {
		if c.Has(wl.SHA256, -1) {
			t.Error("the tampered wheel was stored under the locked digest")
		}
	}

	// An application file changed after locking.
	lp = standardProject(t)
	os.WriteFile(filepath.Join(filepath.Dir(lp), "app/main.py"), []byte("changed\n"), 0o644)
	cache = t.TempDir()
	_, err = Build(context.Background(), opts(t, lp, cache))
	if err == nil || !strings.Contains(err.Error(), "changed since it was locked") {
		t.Fatalf("changed app file: %v", err)
	}
	// Nothing half-written is left behind in the cache.
	if leftovers, _ := filepath.Glob(filepath.Join(cache, "blobs/sha256/.*")); len(leftovers) != 0 {
		t.Errorf("temporary files left in the cache: %v", leftovers)
	}

	// A missing file.
	lp = standardProject(t)
	os.Remove(filepath.Join(filepath.Dir(lp), helloDeb.Filename()))
	_, err = Build(context.Background(), opts(t, lp, t.TempDir()))
	if err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("missing deb: %v", err)
	}
}

// artifactServer serves one file and counts requests; fail decides, per
// request number (from 1), whether to answer 500 or a truncated body.
func artifactServer(t *testing.T, body []byte, fail func(n int64) string) (*httptest.Server, *atomic.Int64) {
	var count atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := count.Add(1)
		switch fail(n) {
		case "500":
			http.Error(w, "boom", 500)
		case "truncate":
			w.Write(body[:len(body)/2])
		default:
			w.Write(body)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &count
}

func remoteWheelLock(t *testing.T, url string) string {
	b := helloWheel.Bytes()
	sum := sha256.Sum256(b)
	l := &lockfile.Lock{LockVersion: 1, Epoch: 0, Platforms: []string{"linux/amd64"}, Base: lockfile.Base{Ref: "scratch"},
		Python: &lockfile.Python{Version: "3.11", Prefix: "/usr/local", SitePackages: "/usr/local/lib/python3.11/site-packages", Interpreter: "/usr/local/bin/python3.11", Libc: "glibc 2.36"},
		Wheels: []lockfile.Wheel{{Name: "hello", Version: "1.0", Filename: helloWheel.Filename(), Platforms: []string{"linux/amd64"},
			Artifact: lockfile.Artifact{URI: url + "/" + helloWheel.Filename(), SHA256: fmt.Sprintf("%x", sum), Size: int64(len(b))}}},
		Compression: lockfile.Compression{Algorithm: "gzip", Level: 1}}
	enc, err := l.Encode()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "mlenv.lock")
	os.WriteFile(p, enc, 0o644)
	return p
}

func TestDownloadsRetryThenSucceedOrFailClearly(t *testing.T) {
	body := helloWheel.Bytes()
	// Two 500s, then the file: retried, built.
	srv, count := artifactServer(t, body, func(n int64) string {
		if n <= 2 {
			return "500"
		}
		return ""
	})
	if _, err := Build(context.Background(), opts(t, remoteWheelLock(t, srv.URL), t.TempDir())); err != nil {
		t.Fatalf("transient 500s were not retried: %v", err)
	}
	if count.Load() != 3 {
		t.Errorf("%d requests, want 3", count.Load())
	}
	// Only 500s: a clear error after the retries, nothing cached.
	srv, count = artifactServer(t, body, func(int64) string { return "500" })
	cache := t.TempDir()
	_, err := Build(context.Background(), opts(t, remoteWheelLock(t, srv.URL), cache))
	if err == nil || !strings.Contains(err.Error(), "500 Internal Server Error") || !strings.Contains(err.Error(), helloWheel.Filename()) {
		t.Errorf("persistent 500: %v", err)
	}
	if count.Load() != 4 {
		t.Errorf("%d attempts, want 4", count.Load())
	}
	// Truncated bodies: a size mismatch, nothing cached.
	srv, _ = artifactServer(t, body, func(int64) string { return "truncate" })
	_, err = Build(context.Background(), opts(t, remoteWheelLock(t, srv.URL), cache))
	if err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("truncated download: %v", err)
	}
	blobs, _ := os.ReadDir(filepath.Join(cache, "blobs/sha256"))
	if len(blobs) != 0 {
		t.Errorf("cache holds %d entries after failed downloads", len(blobs))
	}
}

func TestOfflineUsesOnlyTheCache(t *testing.T) {
	srv, count := artifactServer(t, helloWheel.Bytes(), func(int64) string { return "" })
	lp := remoteWheelLock(t, srv.URL)
	cache := t.TempDir()
	o := opts(t, lp, cache)
	o.Offline = true
	_, err := Build(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "not in the cache") || !strings.Contains(err.Error(), helloWheel.Filename()) {
		t.Fatalf("offline with empty cache: %v", err)
	}
	if count.Load() != 0 {
		t.Fatal("--offline touched the network")
	}
	o.Offline = false
	r1, err := Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	o.Offline = true
	r2, err := Build(context.Background(), o)
	if err != nil {
		t.Fatalf("offline with a warm cache: %v", err)
	}
	if r1.Digest != r2.Digest || count.Load() != 1 {
		t.Errorf("offline rebuild: %s vs %s, %d downloads", r1.Digest, r2.Digest, count.Load())
	}
}

func TestPushAndPullThroughRegistry(t *testing.T) {
	host := testutil.Registry(t, nil)
	lp := standardProject(t)
	r, err := Build(context.Background(), opts(t, lp, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	ref := host + "/team/train:v1"
	if err := Write(context.Background(), r, ref); err != nil {
		t.Fatal(err)
	}
	pulled, err := image.ReadImage(context.Background(), ref, "", image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := pulled.Digest()
	if d != r.Digest {
		t.Errorf("pulled %s, pushed %s", d, r.Digest)
	}
	// The same image through the other outputs keeps its digest.
	for _, out := range []string{"oci:" + filepath.Join(t.TempDir(), "layout"), "tar:" + filepath.Join(t.TempDir(), "image.tar")} {
		if err := Write(context.Background(), r, out); err != nil {
			t.Fatal(err)
		}
		img, err := image.ReadImage(context.Background(), out, "", image.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if d, _ := img.Digest(); d != r.Digest && strings.HasPrefix(out, "oci:") {
			t.Errorf("%s: %s, want %s", out, d, r.Digest)
		}
		if id, _ := img.ConfigName(); strings.HasPrefix(out, "tar:") {
			want, _ := r.Image.ConfigName()
			if id != want {
				t.Errorf("%s: config %s, want %s", out, id, want)
			}
		}
	}
}

func TestRegistryBaseIsCachedAndRetried(t *testing.T) {
	var fails atomic.Int64
	fails.Store(2)
	var failing atomic.Bool
	host := testutil.Registry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if failing.Load() && strings.Contains(r.URL.Path, "/blobs/") && fails.Add(-1) >= 0 {
				http.Error(w, "flaky", http.StatusInternalServerError)
				return
			}
			if failing.Load() && fails.Load() < -100 {
				http.Error(w, "down", http.StatusInternalServerError)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	base := testutil.RandomImage(t, "linux", "amd64")
	ref := testutil.Push(t, base, host+"/base:v1")
	lp := project(t, "base: "+ref+"\nfiles: [{src: app, dst: /app}]\n", map[string][]byte{"app/x": []byte("x")})
	cache := t.TempDir()
	failing.Store(true)
	r, err := Build(context.Background(), opts(t, lp, cache))
	if err != nil {
		t.Fatalf("build with a flaky registry: %v", err)
	}
	layers, _ := r.Image.Layers()
	baseLayers, _ := base.Layers()
	if len(layers) != len(baseLayers)+1 {
		t.Errorf("%d layers, want the base's %d plus one", len(layers), len(baseLayers))
	}
	for i, bl := range baseLayers {
		a, _ := bl.Digest()
		b, _ := layers[i].Digest()
		if a != b {
			t.Errorf("base layer %d rewritten: %s -> %s", i, a, b)
		}
	}
	// Offline, from the cache alone.
	o := opts(t, lp, cache)
	o.Offline = true
	r2, err := Build(context.Background(), o)
	if err != nil || r2.Digest != r.Digest {
		t.Fatalf("offline rebuild from the cached base: %v (%s vs %s)", err, r2.Digest, r.Digest)
	}
	// A registry that only fails: a clear error naming the base.
	fails.Store(-1000)
	_, err = Build(context.Background(), opts(t, lp, t.TempDir()))
	if err == nil || !strings.Contains(err.Error(), "base") || !strings.Contains(err.Error(), "500") {
		t.Errorf("registry down: %v", err)
	}
	// A push the registry refuses is an error too.
	if err := Write(context.Background(), r, host+"/refused:v1"); err == nil || !strings.Contains(err.Error(), "pushing") {
		t.Errorf("refused push: %v", err)
	}
}

func TestMultiPlatformGivesAnIndex(t *testing.T) {
	lp := project(t, "platforms: [linux/amd64, linux/arm64]\nfiles: [{src: app, dst: /app}]\n", map[string][]byte{"app/x": []byte("x")})
	r, err := Build(context.Background(), opts(t, lp, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if r.Index == nil {
		t.Fatal("no index for two platforms")
	}
	im, _ := r.Index.IndexManifest()
	if len(im.Manifests) != 2 || im.Manifests[0].Platform.Architecture != "amd64" || im.Manifests[1].Platform.Architecture != "arm64" {
		t.Errorf("index manifests %+v", im.Manifests)
	}
	if err := Write(context.Background(), r, "tar:"+filepath.Join(t.TempDir(), "x.tar")); err == nil {
		t.Error("tar output accepted an index")
	}
}

func TestZstdLayersAndCheckReproducible(t *testing.T) {
	lp := project(t, "compression: zstd\nfiles: [{src: app, dst: /app}]\n", map[string][]byte{"app/x": []byte(strings.Repeat("zstd ", 1000))})
	o := opts(t, lp, t.TempDir())
	r, err := Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := r.Image.Layers()
	if mt, _ := layers[0].MediaType(); mt != types.OCILayerZStd {
		t.Errorf("media type %s", mt)
	}
	rep, first, err := CheckReproducible(context.Background(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Same || rep.Digests[0] != r.Digest.String() || first.Digest != r.Digest {
		t.Errorf("check-reproducible: %+v (build gave %s)", rep, r.Digest)
	}
}

// buildCounting builds and returns the layers built and reused.
func buildCounting(t *testing.T, lockPath, cache string) (*Result, int64, int64) {
	t.Helper()
	o := opts(t, lockPath, cache)
	o.Events = &Events{}
	r, err := Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return r, o.Events.LayersBuilt.Load(), o.Events.LayersReused.Load()
}

// relock resolves the project's intent again and rewrites its lock.
func relock(t *testing.T, lockPath string) {
	t.Helper()
	in, err := lockfile.LoadIntent(filepath.Join(filepath.Dir(lockPath), "mlenv.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := (&lockfile.Resolver{}).Resolve(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := l.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lockPath, enc, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCheckReproducibleNamesWhatDiffers(t *testing.T) {
	// Reversed listing order, one job, a fresh layer cache: same digest.
	lp := standardProject(t)
	o := opts(t, lp, t.TempDir())
	rep, _, err := CheckReproducible(context.Background(), o, nil)
	if err != nil || !rep.Same {
		t.Fatalf("in-process check: %+v %v", rep, err)
	}
	// A second build that differs (here: an app file changed and
	// relocked) is reported by layer and file.
	other := project(t, "files: [{src: app, dst: /app}]\n", map[string][]byte{
		"app/main.py": []byte("print('other')\n"), "app/sub/run.sh": []byte("#!/bin/sh\n")})
	o = opts(t, project(t, "files: [{src: app, dst: /app}]\n", map[string][]byte{
		"app/main.py": []byte("print('app')\n"), "app/sub/run.sh": []byte("#!/bin/sh\n")}), t.TempDir())
	second := func(ctx context.Context) (map[string]v1.Image, v1.Hash, error) {
		r, err := Build(ctx, opts(t, other, t.TempDir()))
		if err != nil {
			return nil, v1.Hash{}, err
		}
		return r.Images, r.Digest, nil
	}
	rep, first, err := CheckReproducible(context.Background(), o, second)
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(rep.Differences, "\n")
	if rep.Same || rep.Digests[0] != first.Digest.String() || !strings.Contains(joined, "app/main.py") || strings.Contains(joined, "app/sub/run.sh") {
		t.Errorf("report: %+v", rep)
	}
}

func TestLayerCacheRebuildsOnlyWhatChanged(t *testing.T) {
	lp := standardProject(t)
	cache := t.TempDir()
	r1, built, reused := buildCounting(t, lp, cache)
	layers, _ := r1.Image.Layers()
	if built != int64(len(layers)) || reused != 0 {
		t.Fatalf("first build: %d built, %d reused, want all %d built", built, reused, len(layers))
	}
	// The same lock again: everything from the cache.
	if _, built, reused = buildCounting(t, lp, cache); built != 0 || reused != int64(len(layers)) {
		t.Errorf("same lock: %d built, %d reused, want 0 and %d", built, reused, len(layers))
	}
	// An application file changes: only the files layer is built again.
	if err := os.WriteFile(filepath.Join(filepath.Dir(lp), "app/main.py"), []byte("print('changed')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	relock(t, lp)
	r2, built, reused := buildCounting(t, lp, cache)
	if built != 1 || reused != int64(len(layers))-1 {
		t.Errorf("one changed file: %d built, %d reused, want 1 and %d", built, reused, len(layers)-1)
	}
	if r2.Digest == r1.Digest {
		t.Error("the image did not change")
	}
}

func TestLargeFileSetRebuildsOnlyTheChangedChunk(t *testing.T) {
	files := map[string][]byte{}
	for d := 0; d < 12; d++ {
		for f := 0; f < 4; f++ {
			body := make([]byte, 512<<10)
			for i := range body {
				body[i] = byte(d*31 + f*7 + i%251)
			}
			files[fmt.Sprintf("app/d%02d/f%d.bin", d, f)] = body
		}
	}
	lp := project(t, "files: [{src: app, dst: /app}]\n", files)
	l, _ := lockfile.LoadLock(lp)
	if n := len(l.Files[0].Chunks); n < 2 {
		t.Fatalf("a %d MiB file set was not split (%d chunks)", l.Files[0].Size>>20, n)
	}
	cache := t.TempDir()
	r1, _, _ := buildCounting(t, lp, cache)
	// Change one file and relock: only its chunk is rebuilt.
	dir := filepath.Dir(lp)
	if err := os.WriteFile(filepath.Join(dir, "app/d05/f1.bin"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	relock(t, lp)
	r2, built, reused := buildCounting(t, lp, cache)
	if n := int64(len(l.Files[0].Chunks)); built != 1 || reused != n-1 {
		t.Errorf("changing one file: %d layers built, %d reused, want 1 and %d", built, reused, n-1)
	}
	if r1.Digest == r2.Digest {
		t.Error("the image did not change")
	}
	l1s, _ := r1.Image.Layers()
	l2s, _ := r2.Image.Layers()
	same := 0
	for i := range l1s {
		a, _ := l1s[i].Digest()
		b, _ := l2s[i].Digest()
		if a == b {
			same++
		}
	}
	if same != len(l1s)-1 {
		t.Errorf("%d of %d layers kept", same, len(l1s))
	}
	// Every file is in the image exactly once.
	root := unpackBuilt(t, r2)
	for n, b := range files {
		got, err := os.ReadFile(filepath.Join(root, n))
		if n == "app/d05/f1.bin" {
			b = []byte("changed")
		}
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s: %v", n, err)
		}
	}
	// A changed file without a relock is caught in its chunk.
	os.WriteFile(filepath.Join(dir, "app/d07/f2.bin"), []byte("sneaky"), 0o644)
	if _, err := Build(context.Background(), opts(t, lp, t.TempDir())); err == nil || !strings.Contains(err.Error(), "changed since it was locked") {
		t.Errorf("unlocked change: %v", err)
	}
}

func TestTwoBuildsShareOneCache(t *testing.T) {
	srv, _ := artifactServer(t, helloWheel.Bytes(), func(int64) string { return "" })
	lp := remoteWheelLock(t, srv.URL)
	cache := t.TempDir()
	type result struct {
		d   string
		err error
	}
	results := make(chan result, 2)
	for i := 0; i < 2; i++ {
		go func() {
			r, err := Build(context.Background(), opts(t, lp, cache))
			if err != nil {
				results <- result{err: err}
				return
			}
			results <- result{d: r.Digest.String()}
		}()
	}
	a, b := <-results, <-results
	if a.err != nil || b.err != nil || a.d != b.d {
		t.Fatalf("concurrent builds on one cache: %+v %+v", a, b)
	}
	leftovers, _ := filepath.Glob(filepath.Join(cache, "blobs/sha256/.*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestCorruptCacheIsNeverUsed(t *testing.T) {
	srv, count := artifactServer(t, helloWheel.Bytes(), func(int64) string { return "" })
	lp := remoteWheelLock(t, srv.URL)
	cache := t.TempDir()
	r1, err := Build(context.Background(), opts(t, lp, cache))
	if err != nil {
		t.Fatal(err)
	}
	l, _ := lockfile.LoadLock(lp)
	c := &cas.Cache{Dir: cache}
	// Corrupt the cached wheel (same size, mtime restored: what bit rot
	// looks like) and drop the built layers so that the wheel is needed
	// again.
	blob := c.Path(l.Wheels[0].SHA256)
	flipByte(t, blob, -1)
	os.RemoveAll(filepath.Join(cache, "layers"))
	// Offline: an error naming the artifact, and the corrupt blob is gone.
	oo := opts(t, lp, cache)
	oo.Offline = true
	_, err = Build(context.Background(), oo)
	if err == nil || !strings.Contains(err.Error(), "corrupt") || !strings.Contains(err.Error(), srv.URL) {
		t.Fatalf("corrupt cached wheel, offline: %v", err)
	}
	if c.Has(l.Wheels[0].SHA256, -1) {
		t.Error("the corrupt wheel was kept")
	}
	// Online: a corrupt blob is removed and downloaded again, and the
	// build succeeds.
	os.WriteFile(blob, corrupted(helloWheel.Bytes()), 0o444)
	r2, err := Build(context.Background(), opts(t, lp, cache))
	if err != nil || r2.Digest != r1.Digest || count.Load() != 2 {
		t.Fatalf("after removal: %v, %s vs %s, %d downloads", err, r2.Digest, r1.Digest, count.Load())
	}
	if err := c.Verify(l.Wheels[0].SHA256); err != nil {
		t.Error(err)
	}
	// A cached layer changed after it was written (mtime restored) is
	// re-hashed, found wrong, and rebuilt; Result.Verified lists only
	// blobs whose bytes match.
	layers, _ := r2.Image.Layers()
	d, _ := layers[0].Digest()
	flipByte(t, c.Path(d.Hex), -10)
	r3, err := Build(context.Background(), opts(t, lp, cache))
	if err != nil || r3.Digest != r1.Digest {
		t.Fatalf("corrupt cached layer: %v, %s", err, r3.Digest)
	}
	if err := c.Verify(d.Hex); err != nil {
		t.Errorf("the corrupt layer was not replaced: %v", err)
	}
	if r3.Verified[d] != c.Path(d.Hex) {
		t.Errorf("rebuilt layer not in Verified: %v", r3.Verified)
	}
	for h, p := range r3.Verified {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != 0o444 {
			t.Errorf("verified blob %s: %v %v", h, err, fi)
		}
		if got, _, err := cas.HashReader(mustOpen(t, p)); err != nil || got != h.Hex {
			t.Errorf("verified blob %s hashes to %s", h, got)
		}
	}
}

// flipByte flips one byte (at off, from the end when negative) of a
// read-only cache blob and restores its mode and mtime, as bit rot would.
func flipByte(t *testing.T, p string, off int) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		return
	}
	b, _ := os.ReadFile(p)
	if off < 0 {
		off += len(b)
	}
	b[off] ^= 0xff
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, fi.Mode().Perm())
	os.Chtimes(p, fi.ModTime(), fi.ModTime())
}

func corrupted(b []byte) []byte {
	c := append([]byte(nil), b...)
	c[len(c)/2] ^= 0xff
	return c
}

func mustOpen(t *testing.T, p string) *os.File {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// layoutBaseProject writes a random linux/amd64 image as an OCI layout at
// layoutDir and, in dir, an intent on the base oci:base with one app file.
func layoutBaseProject(t *testing.T, dir, layoutDir string) v1.Image {
	t.Helper()
	base := testutil.RandomImage(t, "linux", "amd64")
	lp, err := layout.Write(layoutDir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(base); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "mlenv.yaml"), []byte("base: oci:base\nfiles: [{src: app, dst: /app}]\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "app"), 0o755)
	os.WriteFile(filepath.Join(dir, "app", "x"), []byte("x"), 0o644)
	return base
}

func TestBaseFromOCILayout(t *testing.T) {
	dir := t.TempDir()
	base := layoutBaseProject(t, dir, filepath.Join(dir, "base"))
	in, err := lockfile.LoadIntent(filepath.Join(dir, "mlenv.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := (&lockfile.Resolver{}).Resolve(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	bd, _ := base.Digest()
	if l.Base.Manifests["linux/amd64"] != bd.String() {
		t.Fatalf("base pinned as %+v, want %s", l.Base, bd)
	}
	enc, _ := l.Encode()
	os.WriteFile(filepath.Join(dir, "mlenv.lock"), enc, 0o644)
	r, err := Build(context.Background(), opts(t, filepath.Join(dir, "mlenv.lock"), t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := r.Image.Layers()
	if len(layers) != 3 {
		t.Errorf("%d layers, want the base's 2 and one", len(layers))
	}
	m, _ := r.Image.Manifest()
	if m.Annotations["org.opencontainers.image.base.digest"] != bd.String() {
		t.Errorf("annotations %v", m.Annotations)
	}
}

// TestBaseLayoutOutsideProjectIsRefused: base: oci:DIR is a local input
// like any other. A layout outside the project (here through a symlink
// inside it) is refused by lock and, for a lock written elsewhere, by
// build, before anything of it is read; --allow-outside lets it in. Its
// layers would otherwise end up in the image.
func TestBaseLayoutOutsideProjectIsRefused(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "private-base")
	dir := t.TempDir()
	layoutBaseProject(t, dir, outside)
	if err := os.Symlink(outside, filepath.Join(dir, "base")); err != nil {
		t.Fatal(err)
	}
	in, err := lockfile.LoadIntent(filepath.Join(dir, "mlenv.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&lockfile.Resolver{}).Resolve(context.Background(), in); err == nil || !strings.Contains(err.Error(), "outside the project") {
		t.Fatalf("lock: got %v, want the base refused as outside the project", err)
	}
	l, err := (&lockfile.Resolver{AllowOutside: []string{outside}}).Resolve(context.Background(), in)
	if err != nil {
		t.Fatalf("lock with --allow-outside: %v", err)
	}
	enc, _ := l.Encode()
	lock := filepath.Join(dir, "mlenv.lock")
	os.WriteFile(lock, enc, 0o644)
	o := opts(t, lock, t.TempDir())
	if _, err := Build(context.Background(), o); err == nil || !strings.Contains(err.Error(), "outside the project") {
		t.Fatalf("build: got %v, want the base refused as outside the project", err)
	}
	o.AllowOutside = []string{outside}
	if _, err := Build(context.Background(), o); err != nil {
		t.Fatalf("build with --allow-outside: %v", err)
	}
}

func TestReproReportNamesDifferingFiles(t *testing.T) {
	c1, c2 := t.TempDir(), t.TempDir()
	build := func(dir, body string) v1.Image {
		tr := newTree()
		tr.addData("t", "app/a.txt", 0o644, []byte("same"))
		tr.addData("t", "app/b.txt", 0o644, []byte(body))
		c := &cas.Cache{Dir: dir}
		info, err := writeLayer(c, tr, 0, lockfile.Compression{Algorithm: "gzip", Level: 1})
		if err != nil {
			t.Fatal(err)
		}
		img, err := mutate.AppendLayers(empty.Image, &cachedLayer{info: info, path: c.Path(strings.TrimPrefix(info.Digest, "sha256:"))})
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	diffs, err := compareImages(build(c1, "one"), build(c2, "two"))
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(diffs, "\n")
	if !strings.Contains(joined, "layer 0") || !strings.Contains(joined, "app/b.txt:") || strings.Contains(joined, "app/a.txt") {
		t.Errorf("report should name app/b.txt and only it:\n%s", joined)
	}
	same, err := compareImages(build(t.TempDir(), "x"), build(t.TempDir(), "x"))
	if err != nil || len(same) != 0 {
		t.Errorf("identical builds reported %v, %v", same, err)
	}
}

func TestOutputNeverReplacesForeignFolders(t *testing.T) {
	lp := standardProject(t)
	r, err := Build(context.Background(), opts(t, lp, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	precious := filepath.Join(dir, "thesis.tex")
	os.WriteFile(precious, []byte("years of work"), 0o644)
	if err := Write(context.Background(), r, "oci:"+dir); err == nil || !strings.Contains(err.Error(), "not an OCI image layout") {
		t.Errorf("writing over a folder of files: %v", err)
	}
	if b, _ := os.ReadFile(precious); string(b) != "years of work" {
		t.Fatal("the user's file is gone")
	}
	// An earlier layout is replaced.
	out := filepath.Join(t.TempDir(), "layout")
	for i := 0; i < 2; i++ {
		if err := Write(context.Background(), r, "oci:"+out); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
}

func TestReadImageForPicksAPlatform(t *testing.T) {
	lp := project(t, "platforms: [linux/amd64, linux/arm64]\nfiles: [{src: app, dst: /app}]\n", map[string][]byte{"app/x": []byte("x")})
	r, err := Build(context.Background(), opts(t, lp, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	out := "oci:" + filepath.Join(t.TempDir(), "layout")
	if err := Write(context.Background(), r, out); err != nil {
		t.Fatal(err)
	}
	if _, err := image.ReadImage(context.Background(), out, "", image.Options{}); err == nil || !strings.Contains(err.Error(), "linux/amd64, linux/arm64") {
		t.Errorf("index without a platform: %v", err)
	}
	img, err := image.ReadImage(context.Background(), out, "linux/arm64", image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := r.Images["linux/arm64"].Digest()
	if got, _ := img.Digest(); got != want {
		t.Errorf("picked %s, want %s", got, want)
	}
	if _, err := image.ReadImage(context.Background(), out, "linux/s390x", image.Options{}); err == nil || !strings.Contains(err.Error(), "no image for linux/s390x") {
		t.Errorf("missing platform: %v", err)
	}
}

func TestCorruptBaseBlobIsNeverShipped(t *testing.T) {
	host := testutil.Registry(t, nil)
	base := testutil.RandomImage(t, "linux", "amd64")
	ref := testutil.Push(t, base, host+"/base:v1")
	lp := project(t, "base: "+ref+"\nfiles: [{src: app, dst: /app}]\n", map[string][]byte{"app/x": []byte("x")})
	cache := t.TempDir()
	c := &cas.Cache{Dir: cache}
	r1, err := Build(context.Background(), opts(t, lp, cache))
	if err != nil {
		t.Fatal(err)
	}
	baseLayers, _ := base.Layers()
	bd, _ := baseLayers[0].Digest()
	if r1.Verified[bd] == "" {
		t.Errorf("base layer %s not in Verified", bd)
	}
	flipByte(t, c.Path(bd.Hex), -5)

	// Offline: an error naming the blob; nothing corrupt is left.
	o := opts(t, lp, cache)
	o.Offline = true
	if _, err := Build(context.Background(), o); err == nil || !strings.Contains(err.Error(), bd.Hex) || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("offline with a corrupt base blob: %v", err)
	}
	if c.Has(bd.Hex, -1) {
		t.Error("corrupt base blob kept")
	}
	// Online: pulled again; the tar output carries matching bytes.
	r2, err := Build(context.Background(), opts(t, lp, cache))
	if err != nil || r2.Digest != r1.Digest {
		t.Fatalf("online rebuild: %v", err)
	}
	// Bytes changed between build and write: the copy into a tar fails
	// rather than ship them.
	flipByte(t, c.Path(bd.Hex), -5)
	out := filepath.Join(t.TempDir(), "img.tar")
	if err := Write(context.Background(), r2, "tar:"+out); err == nil {
		t.Fatal("a tar was written with a blob that does not match its digest")
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("partial tar left behind")
	}
}

func TestHostPathsOutsideTheProjectAreRefused(t *testing.T) {
	lp := standardProject(t)
	secret := filepath.Join(t.TempDir(), "secret")
	os.MkdirAll(secret, 0o755)
	os.WriteFile(filepath.Join(secret, "key"), []byte("0123456789"), 0o600)
	rel, _ := filepath.Rel(filepath.Dir(lp), secret)
	for name, edit := range map[string]func(l *lockfile.Lock){
		"files src ..":     func(l *lockfile.Lock) { l.Files[0].Src = rel },
		"deb uri absolute": func(l *lockfile.Lock) { l.Debs[0].URI = "/etc/shadow" },
		"deb uri device":   func(l *lockfile.Lock) { l.Debs[0].URI = "/dev/zero" },
	} {
		t.Run(name, func(t *testing.T) {
			o := opts(t, lp, t.TempDir())
			edit(o.Lock)
			_, err := Build(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), "outside the project") || strings.Contains(err.Error(), "bytes") {
				t.Fatalf("got %v", err)
			}
			// Layers of the project's own artifacts may be cached; none
			// may hold host content.
			blobs, _ := filepath.Glob(filepath.Join(o.Cache.Dir, "blobs", "sha256", "*"))
			for _, b := range blobs {
				f := mustOpen(t, b)
				if zr, err := gzip.NewReader(f); err == nil {
					if all, _ := io.ReadAll(zr); bytes.Contains(all, []byte("0123456789")) {
						t.Errorf("host content cached in %s", b)
					}
				}
			}
			// The opt-in admits the folder named, and only it.
			if name == "files src .." {
				o.AllowOutside = []string{secret}
				if _, err := Build(context.Background(), o); err == nil || strings.Contains(err.Error(), "outside") {
					t.Errorf("allowed folder: %v (want the lock's tree-hash check, not a refusal)", err)
				}
			}
		})
	}
}

// TestWheelSizeIsTheVerifiedSize: two lock entries naming one sha256 with
// different sizes (a hand-edited or hostile lock). The file is verified
// once, at the first entry's size; the second entry's size was then used
// to read it, unchecked, so a file made of two zips (evil, then good)
// installed the evil prefix under a digest that only vouched for the
// whole. The lock is refused when loaded (lockfile's validation); the
// build, given such a lock in process, must refuse a size that is not the
// verified one.
func TestWheelSizeIsTheVerifiedSize(t *testing.T) {
	good := testutil.Wheel{Name: "good", Version: "1.0", Files: map[string]string{"good/__init__.py": "GOOD = 1\n"}}
	evil := testutil.Wheel{Name: "zevil", Version: "1.0", Files: map[string]string{"zevil/__init__.py": "EVIL = 1\n"}}
	a, b := evil.Bytes(), good.Bytes()
	both := append(append([]byte{}, a...), b...)
	sum := fmt.Sprintf("%x", sha256.Sum256(both))
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "both.whl"), both, 0o644)
	art := func(size int) lockfile.Artifact {
		return lockfile.Artifact{URI: "both.whl", SHA256: sum, Size: int64(size)}
	}
	l := &lockfile.Lock{LockVersion: 1, Epoch: 0, Platforms: []string{"linux/amd64"}, Base: lockfile.Base{Ref: "scratch"},
		Python: &lockfile.Python{Version: "3.11", Prefix: "/usr/local", SitePackages: "/usr/local/lib/python3.11/site-packages", Interpreter: "/usr/local/bin/python3.11", Libc: "glibc 2.36"},
		Wheels: []lockfile.Wheel{
			{Name: "good", Version: "1.0", Filename: good.Filename(), Platforms: []string{"linux/amd64"}, Artifact: art(len(both))},
			{Name: "zevil", Version: "1.0", Filename: evil.Filename(), Platforms: []string{"linux/amd64"}, Artifact: art(len(a))},
		},
		Compression: lockfile.Compression{Algorithm: "gzip", Level: 1}}
	enc, err := l.Encode()
	if err != nil {
		t.Fatal(err)
	}
	lp := filepath.Join(dir, "mlenv.lock")
	os.WriteFile(lp, enc, 0o644)
	if _, err := lockfile.LoadLock(lp); err == nil || !strings.Contains(err.Error(), "wheels[1].size") || !strings.Contains(err.Error(), "one sha256 has one size") {
		t.Fatalf("loading the lock: got %v, want the second entry's size refused", err)
	}
	_, err = Build(context.Background(), Options{Lock: l, BaseDir: dir, Cache: &cas.Cache{Dir: t.TempDir()}, RetryBackoff: time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), evil.Filename()) || !strings.Contains(err.Error(), fmt.Sprintf("size %d", len(a))) {
		t.Fatalf("got %v, want the evil entry's size refused", err)
	}
}
