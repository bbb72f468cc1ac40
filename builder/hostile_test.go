package builder

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlenv/mlenv/internal/cas"
	"github.com/mlenv/mlenv/internal/testutil"
	"github.com/mlenv/mlenv/lockfile"
)

// hostileArt is one artifact of a hand-written lock: the lock refuses
// hostile control fields, so build-time checks are tested with a lock
// that was written by hand (or edited).
type hostileArt struct {
	file string
	body []byte
	// deb identity, as the lock records it
	pkg, ver, arch string
	// wheel identity
	wheelName, wheelVer string
}

func handLock(t *testing.T, arts ...hostileArt) string {
	t.Helper()
	dir := t.TempDir()
	l := map[string]any{"lockVersion": 1, "name": "hostile", "epoch": 1700000000,
		"platforms": []string{"linux/amd64"}, "base": map[string]any{"ref": "scratch"},
		"compression": map[string]any{"algorithm": "gzip", "level": 1}}
	var debs, wheels []map[string]any
	for _, a := range arts {
		if err := os.WriteFile(filepath.Join(dir, a.file), a.body, 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(a.body)
		common := map[string]any{"uri": a.file, "sha256": hex.EncodeToString(sum[:]), "size": len(a.body), "platforms": []string{"linux/amd64"}}
		if a.wheelName != "" {
			common["filename"], common["name"], common["version"] = a.file, a.wheelName, a.wheelVer
			wheels = append(wheels, common)
			continue
		}
		common["package"], common["version"], common["architecture"] = a.pkg, a.ver, a.arch
		debs = append(debs, common)
	}
	if debs != nil {
		l["debs"] = debs
	}
	if wheels != nil {
		l["wheels"] = wheels
		l["python"] = map[string]any{"version": "3.11", "prefix": "/usr/local", "sitePackages": "/usr/local/lib/python3.11/site-packages",
			"interpreter": "/usr/local/bin/python3.11", "libc": "glibc 2.36"}
	}
	b, _ := json.MarshalIndent(l, "", "  ")
	lp := filepath.Join(dir, "mlenv.lock")
	if err := os.WriteFile(lp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := lockfile.LoadLock(lp); err != nil {
		t.Fatalf("hand-written lock does not load: %v", err)
	}
	return lp
}

func debArt(d testutil.Deb) hostileArt {
	return hostileArt{file: "x.deb", body: d.Bytes(), pkg: d.Package, ver: d.Version, arch: d.Arch}
}

func wheelArt(w testutil.Wheel) hostileArt {
	return hostileArt{file: w.Filename(), body: w.Bytes(), wheelName: w.Name, wheelVer: w.Version}
}

// assertRefused builds and checks the error names the file and the
// reason, and that the cache holds no layer, no blob and no temp file.
func assertRefused(t *testing.T, lp string, lim Limits, want ...string) {
	t.Helper()
	assertRefusedCache(t, lp, lim, false, want...)
}

// assertRefusedCache: layersOK allows complete layers (blob and record)
// that are each valid on their own (the cross-layer check runs once all
// layers exist); temporary files are never allowed.
func assertRefusedCache(t *testing.T, lp string, lim Limits, layersOK bool, want ...string) {
	t.Helper()
	cache := t.TempDir()
	o := opts(t, lp, cache)
	o.Limits = lim
	_, err := Build(context.Background(), o)
	if err == nil {
		t.Fatal("hostile input was accepted")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
	tmp, _ := filepath.Glob(filepath.Join(cache, "blobs", "sha256", ".*"))
	if len(tmp) != 0 {
		t.Errorf("temporary files left in the cache: %v", tmp)
	}
	if layersOK {
		return
	}
	if n := layersCached(t, cache); n != 0 {
		t.Errorf("%d layer records left in the cache", n)
	}
	blobs, _ := os.ReadDir(filepath.Join(cache, "blobs", "sha256"))
	if len(blobs) != 0 {
		var names []string
		for _, b := range blobs {
			names = append(names, b.Name())
		}
		t.Errorf("files left in the cache after a failed build: %v", names)
	}
}

func hostileControl(pkg, ver, arch string) string {
	return fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: %s\nDescription: x\n", pkg, ver, arch)
}

func TestHostileArchives(t *testing.T) {
	file := []testutil.TarEntry{{Name: "./usr/", Type: tar.TypeDir}, {Name: "./usr/x", Body: "x"}}
	evilDeb := func(pkg, ver string) testutil.Deb {
		return testutil.Deb{Package: pkg, Version: ver, Arch: "all", Control: hostileControl(pkg, ver, "all"), Files: file}
	}
	evilEntryPoint := func(ep string) testutil.Wheel {
		return testutil.Wheel{Name: "evil", Version: "1", Files: map[string]string{"evil/__init__.py": ""}, EntryPoints: "[console_scripts]\n" + ep + "\n"}
	}
	recordLies := testutil.Wheel{Name: "evil", Version: "1", Files: map[string]string{"evil/__init__.py": "abcd"},
		MutateAfter: func(e []testutil.ZipEntry) []testutil.ZipEntry {
			for i := range e {
				if strings.HasSuffix(e[i].Name, "/RECORD") {
					e[i].Body = []byte(strings.Replace(string(e[i].Body), "__init__.py,sha256=", "__init__.py,sha256=", 1))
					lines := strings.Split(string(e[i].Body), "\n")
					for j, l := range lines {
						if strings.HasPrefix(l, "evil/__init__.py,") {
							lines[j] = l[:strings.LastIndex(l, ",")] + ",999999"
						}
					}
					e[i].Body = []byte(strings.Join(lines, "\n"))
				}
			}
			return e
		}}
	overlap := hostileArt{file: "evil-1-py3-none-any.whl", wheelName: "evil", wheelVer: "1",
		body: testutil.OverlappingZip(make([]byte, 1<<20), []string{"evil/a", "evil/b", "evil/c", "evil/d", "evil/e", "evil/f", "evil/g", "evil/h", "evil/i", "evil/j"})}
	dataOnly := testutil.Wheel{Name: "evil", Version: "1", Files: map[string]string{"evil-1.data/purelib": "x"}}
	bigControl := testutil.Deb{Package: "evil", Version: "1", Arch: "all", Files: file,
		ControlMembers: []testutil.TarEntry{{Name: "./md5sums", Body: strings.Repeat("0", 17<<20)}}}
	xzBomb := testutil.Deb{Package: "evil", Version: "1", Arch: "all", Compression: "xz", Data: testutil.ZeroBombData("xz", 4, 16<<20)}
	zstBomb := testutil.Deb{Package: "evil", Version: "1", Arch: "all", Compression: "zst", Data: testutil.ZeroBombData("zst", 4, 16<<20)}
	many := make([]testutil.TarEntry, 0, 50)
	for i := 0; i < 50; i++ {
		many = append(many, testutil.TarEntry{Name: fmt.Sprintf("./f%d", i), Body: "x"})
	}
	usrLocalLink := testutil.Deb{Package: "evil-link", Version: "1", Arch: "all", Files: []testutil.TarEntry{
		{Name: "./usr/", Type: tar.TypeDir}, {Name: "./usr/local", Type: tar.TypeSymlink, Linkname: "/elsewhere"}}}

	cases := []struct {
		name string
		arts []hostileArt
		lim  Limits
		want []string
	}{
		// 1. Fields that become paths.
		{"deb package name climbs", []hostileArt{debArt(evilDeb("../../../../../../../../../../tmp/x", "1"))}, Limits{}, []string{"package name", "../../"}},
		{"deb package name with slash", []hostileArt{debArt(evilDeb("a/b", "1"))}, Limits{}, []string{"package name \"a/b\""}},
		{"deb package name with newline", []hostileArt{{file: "x.deb", pkg: "evil", ver: "1", arch: "all",
			body: testutil.Deb{Control: "Package: evil\n x\nVersion: 1\nArchitecture: all\n", Files: file}.Bytes()}}, Limits{}, []string{"package name", "evil_1_all.deb"}},
		{"deb version with slash", []hostileArt{debArt(evilDeb("evil", "1/../../x"))}, Limits{}, []string{"version", "5.6.12"}},
		{"entry point injection", []hostileArt{wheelArt(evilEntryPoint("evil = os import system as _s;_s('id');from os:path"))}, Limits{}, []string{"evil-1-py3-none-any.whl", "dotted Python identifiers"}},
		{"entry point name climbs", []hostileArt{wheelArt(evilEntryPoint("../../etc/cron.d/x = evil:main"))}, Limits{}, []string{"bad script name"}},
		{".data member outside its folders", []hostileArt{wheelArt(dataOnly)}, Limits{}, []string{".data member"}},
		// 9. RECORD size.
		{"RECORD size lies", []hostileArt{wheelArt(recordLies)}, Limits{}, []string{"evil/__init__.py is 4 bytes but RECORD says 999999"}},
		// 4. Bombs.
		{"overlapping zip members", []hostileArt{overlap}, Limits{}, []string{"evil-1-py3-none-any.whl", "overlap"}},
		{"overlapping zip over the cap", []hostileArt{overlap}, Limits{ArchiveBytes: 4 << 20}, []string{"unpacks to more than 4194304 bytes", "--max-archive-bytes"}},
		{"xz bomb", []hostileArt{debArt(xzBomb)}, Limits{ArchiveBytes: 32 << 20}, []string{"evil_1_all.deb", "unpacks to more than"}},
		{"zstd bomb", []hostileArt{debArt(zstBomb)}, Limits{ArchiveBytes: 32 << 20}, []string{"evil_1_all.deb", "unpacks to more than"}},
		{"image cap", []hostileArt{debArt(xzBomb)}, Limits{ImageBytes: 16 << 20}, []string{"--max-image-bytes"}},
		{"too many entries", []hostileArt{debArt(testutil.Deb{Package: "evil", Version: "1", Arch: "all", Files: many})}, Limits{ArchiveEntries: 10}, []string{"more than 10 entries"}},
		{"huge control member", []hostileArt{debArt(bigControl)}, Limits{}, []string{"md5sums", "16 MiB limit"}},
		// 10. Across layers.
		{"wheel under a deb's symlink", []hostileArt{debArt(usrLocalLink), wheelArt(helloWheel)}, Limits{}, []string{"hello-1.0-py3-none-any.whl", "evil-link_1_all.deb", "/usr/local", "symlink"}},
		// A sample of what was already refused.
		{"deb dotdot", []hostileArt{debArt(testutil.Deb{Package: "evil", Version: "1", Arch: "all", Files: []testutil.TarEntry{{Name: "./../../etc/passwd", Body: "x"}}})}, Limits{}, []string{"climbs out of the root"}},
		{"deb write through symlink", []hostileArt{debArt(testutil.Deb{Package: "evil", Version: "1", Arch: "all", Files: []testutil.TarEntry{
			{Name: "./escape", Type: tar.TypeSymlink, Linkname: "/etc"}, {Name: "./escape/passwd", Body: "x"}}})}, Limits{}, []string{"written through the symlink"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for i := range c.arts {
				if c.arts[i].file == "x.deb" {
					c.arts[i].file = fmt.Sprintf("d%d.deb", i)
				}
			}
			assertRefusedCache(t, handLock(t, c.arts...), c.lim, strings.Contains(c.name, "symlink"), c.want...)
		})
	}
}

// TestLockRefusesHostileControl: the lock step reads debs through the
// same validation, so a hostile name never reaches a lock.
func TestLockRefusesHostileControl(t *testing.T) {
	d := testutil.Deb{Package: "x", Version: "1", Arch: "all", Control: hostileControl("../../etc/passwd", "1", "all")}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "evil.deb"), d.Bytes(), 0o644)
	p := filepath.Join(dir, "mlenv.yaml")
	os.WriteFile(p, []byte("name: t\nepoch: 1\nbase: scratch\ndebs: [{path: evil.deb}]\n"), 0o644)
	in, err := lockfile.LoadIntent(p)
	if err != nil {
		t.Fatal(err)
	}
	_, err = (&lockfile.Resolver{Fetcher: &cas.Fetcher{Cache: &cas.Cache{Dir: t.TempDir()}, BaseDir: dir}}).Resolve(context.Background(), in)
	if err == nil || !strings.Contains(err.Error(), "evil.deb") || !strings.Contains(err.Error(), "package name") {
		t.Fatalf("lock accepted a hostile package name or did not say so: %v", err)
	}
}

// TestShebangQuotesTheInterpreter: pypa/installer's /bin/sh trick, with
// the path shell-quoted as shlex.quote does.
func TestShebangQuotesTheInterpreter(t *testing.T) {
	got := shebang("/opt/my env/it's/python")
	want := "#!/bin/sh\n'''exec' '/opt/my env/it'\"'\"'s/python' \"$0\" \"$@\"\n' '''"
	if got != want {
		t.Errorf("shebang:\n got %q\nwant %q", got, want)
	}
	if got := shebang("/usr/bin/python3"); got != "#!/usr/bin/python3" {
		t.Errorf("simple shebang: %q", got)
	}
	if err := checkInterpreter("/usr/bin/python\nimport os"); err == nil {
		t.Error("an interpreter with a newline was accepted")
	}
}

// BenchmarkLinkCheck adds n entries, half files and half symlinks, to one
// layer tree: the per-entry checks must stay near-linear.
func BenchmarkLinkCheck(b *testing.B) {
	for _, n := range []int{10_000, 80_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				t := newTree()
				for j := 0; j < n/2; j++ {
					d := fmt.Sprintf("usr/lib/d%d/", j%100)
					if err := t.add(&entry{path: d + fmt.Sprintf("f%d", j), kind: kindFile, owner: "bench"}); err != nil {
						b.Fatal(err)
					}
					if err := t.add(&entry{path: d + fmt.Sprintf("l%d", j), kind: kindSymlink, link: fmt.Sprintf("f%d", j), owner: "bench"}); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
