package builder

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/mlenv/mlenv/internal/cas"
	"github.com/mlenv/mlenv/internal/layerwalk"
	"github.com/mlenv/mlenv/internal/testutil"
	"github.com/mlenv/mlenv/lockfile"
)

func TestRedirectorResolvesInsideTheRoot(t *testing.T) {
	r := newRedirector(map[string]string{
		"lib":        "usr/lib",          // Debian's merged /usr
		"bin":        "/usr/bin",         // absolute: starts at the image root
		"usr/lib64":  "lib",              // relative to its own folder
		"opt":        "../../../../host", // tries to climb out: stops at the root
		"loop/a":     "b",
		"loop/b":     "a",
		"rootlink":   "/",
		"usr/lib/sd": "../../etc/sd", // a chain: lib -> usr/lib, then sd
	})
	cases := []struct {
		in    string
		isDir bool
		want  string
	}{
		{"lib/x86_64-linux-gnu/libz.so.1", false, "usr/lib/x86_64-linux-gnu/libz.so.1"},
		{"lib", true, "usr/lib"},
		{"lib", false, "lib"}, // a file at the link's path replaces the link
		{"bin/tool", false, "usr/bin/tool"},
		{"usr/lib64/x", false, "usr/lib/x"},
		{"opt/app/run", false, "host/app/run"},
		{"lib/sd/unit", false, "etc/sd/unit"},
		{"rootlink/etc/x", false, "etc/x"},
		{"usr/share/doc", true, "usr/share/doc"},
	}
	for _, c := range cases {
		got, err := r.resolve(c.in, c.isDir)
		if err != nil || got != c.want {
			t.Errorf("resolve(%q, dir=%v) = %q, %v; want %q", c.in, c.isDir, got, err, c.want)
		}
	}
	if _, err := r.resolve("loop/a/x", false); err == nil || !strings.Contains(err.Error(), "loop") {
		t.Errorf("a link loop: %v", err)
	}
}

// A deb built for a merged-/usr system (files under lib/ and bin/) on a
// base whose /lib and /bin are links: the files land where the links point,
// the base's links stay links, and a strict extractor (no path through a
// symlink) unpacks the image.
func TestDebOnMergedUsrBase(t *testing.T) {
	dir := t.TempDir()
	baseTar := testutil.Tar([]testutil.TarEntry{
		{Name: "usr/", Type: tar.TypeDir},
		{Name: "usr/bin/", Type: tar.TypeDir},
		{Name: "usr/lib/", Type: tar.TypeDir},
		{Name: "usr/lib/x86_64-linux-gnu/", Type: tar.TypeDir},
		{Name: "usr/lib/x86_64-linux-gnu/libc.so.6", Body: "libc"},
		{Name: "lib", Type: tar.TypeSymlink, Linkname: "usr/lib"},
		{Name: "bin", Type: tar.TypeSymlink, Linkname: "/usr/bin"},
		{Name: "opt", Type: tar.TypeSymlink, Linkname: "../../../../host"},
	})
	base, err := mutate.AppendLayers(empty.Image, testutil.TarBytesLayer(t, baseTar))
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := base.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	if base, err = mutate.ConfigFile(base, cf); err != nil {
		t.Fatal(err)
	}
	lp, err := layout.Write(filepath.Join(dir, "base"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(base); err != nil {
		t.Fatal(err)
	}
	deb := testutil.Deb{Package: "libfoo1", Version: "1.0-1", Arch: "amd64", Files: []testutil.TarEntry{
		{Name: "./", Type: tar.TypeDir},
		{Name: "./lib/", Type: tar.TypeDir},
		{Name: "./lib/x86_64-linux-gnu/", Type: tar.TypeDir},
		{Name: "./lib/x86_64-linux-gnu/libfoo.so.1", Body: "foo"},
		{Name: "./bin/", Type: tar.TypeDir},
		{Name: "./bin/footool", Body: "#!/bin/sh\n", Mode: 0o755},
		{Name: "./opt/", Type: tar.TypeDir},
		{Name: "./opt/foo/run", Body: "run"},
	}}
	os.WriteFile(filepath.Join(dir, deb.Filename()), deb.Bytes(), 0o644)
	os.WriteFile(filepath.Join(dir, "mlenv.yaml"), []byte("name: t\nepoch: 1700000000\nbase: oci:base\ndebs: [{path: "+deb.Filename()+"}]\n"), 0o644)
	in, err := lockfile.LoadIntent(filepath.Join(dir, "mlenv.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := (&lockfile.Resolver{}).Resolve(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := l.Encode()
	os.WriteFile(filepath.Join(dir, "mlenv.lock"), enc, 0o644)
	r, err := Build(context.Background(), opts(t, filepath.Join(dir, "mlenv.lock"), t.TempDir()))
	if err != nil {
		t.Fatalf("a merged-/usr deb on a merged-/usr base: %v", err)
	}
	// The deb's layer holds nothing under a linked folder.
	layers, _ := r.Image.Layers()
	top, err := mutate.AppendLayers(empty.Image, layers[len(layers)-1])
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	if err := layerwalk.Walk(top, visitFunc(func(h *tar.Header) { names = append(names, h.Name) })); err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(names, "\n")
	for _, want := range []string{"usr/lib/x86_64-linux-gnu/libfoo.so.1", "usr/bin/footool", "host/foo/run"} {
		if !strings.Contains(joined, want) {
			t.Errorf("layer lacks %s:\n%s", want, joined)
		}
	}
	for _, name := range names {
		n := strings.TrimSuffix(name, "/")
		if n == "lib" || n == "bin" || n == "opt" || strings.HasPrefix(n, "lib/") || strings.HasPrefix(n, "bin/") || strings.HasPrefix(n, "opt/") {
			t.Errorf("layer writes %q under a link of the base", name)
		}
	}
	// A strict extractor unpacks it; the base's links are still links.
	root := t.TempDir()
	if err := testutil.Unpack(r.Image, root); err != nil {
		t.Fatalf("unpack: %v", err)
	}
	if fi, err := os.Lstat(filepath.Join(root, "lib")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("/lib is no longer a link: %v %v", fi, err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "lib", "x86_64-linux-gnu", "libfoo.so.1")); err != nil || string(b) != "foo" {
		t.Errorf("/lib/x86_64-linux-gnu/libfoo.so.1 through the link: %q %v", b, err)
	}
}

type visitFunc func(h *tar.Header)

func (f visitFunc) Visit(_ int, _ string, h *tar.Header, _ io.Reader) (bool, error) {
	f(h)
	return false, nil
}

// TestBaseLinksFollowLaterLayers: the base's link map is what its layers
// leave, applied in order: a later layer's whiteout removes a link (and
// links below a removed or opaque folder), a later file or folder at a
// link's path replaces it, a later link replaces an earlier one, and a
// layer's whiteout does not hide that layer's own link. A deb's files
// then go where the final base has them, not through links that no
// longer exist.
func TestBaseLinksFollowLaterLayers(t *testing.T) {
	lower := testutil.TarLayer(t, []testutil.TarEntry{
		{Name: "usr/", Type: tar.TypeDir},
		{Name: "lib", Type: tar.TypeSymlink, Linkname: "usr/lib"},
		{Name: "bin", Type: tar.TypeSymlink, Linkname: "usr/bin"},
		{Name: "sbin", Type: tar.TypeSymlink, Linkname: "usr/sbin"},
		{Name: "opt/", Type: tar.TypeDir},
		{Name: "opt/a", Type: tar.TypeSymlink, Linkname: "/srv/a"},
		{Name: "etc/", Type: tar.TypeDir},
		{Name: "etc/alt", Type: tar.TypeSymlink, Linkname: "/etc/alt.1"},
		{Name: "var/", Type: tar.TypeDir},
		{Name: "var/run", Type: tar.TypeSymlink, Linkname: "/run"},
	})
	upper := testutil.TarLayer(t, []testutil.TarEntry{
		{Name: ".wh.bin"},                  // removes bin
		{Name: "sbin/", Type: tar.TypeDir}, // a folder replaces the link
		{Name: "opt/.wh..wh..opq"},         // hides everything below opt
		{Name: "etc/alt", Type: tar.TypeSymlink, Linkname: "/etc/alt.2"},
		{Name: "var/run", Type: tar.TypeSymlink, Linkname: "/run2"}, // before its own whiteout in the tar
		{Name: "var/.wh.run"}, // hides the lower var/run, not this one
	})
	base, err := mutate.AppendLayers(empty.Image, lower, upper)
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Lock: &lockfile.Lock{Base: lockfile.Base{Ref: "oci:base"}}, LayerCache: &cas.Cache{Dir: t.TempDir()}}
	want := map[string]string{"lib": "usr/lib", "etc/alt": "/etc/alt.2", "var/run": "/run2"}
	for _, pass := range []string{"computed", "from the cache"} {
		got, err := baseSymlinks(o, base)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: links %v, want %v", pass, got, want)
		}
		for p, target := range want {
			if got[p] != target {
				t.Fatalf("%s: links %v, want %v", pass, got, want)
			}
		}
	}
}

// TestBaseLinksLaterEntryOfALayerWins: inside one layer, the tar's later
// entry at a path is what an extractor leaves (a link then a file or a
// folder at the same path: no link); a whiteout of a link's parent
// folder removes the link below it.
func TestBaseLinksLaterEntryOfALayerWins(t *testing.T) {
	lower := testutil.TarLayer(t, []testutil.TarEntry{
		{Name: "usr/", Type: tar.TypeDir},
		{Name: "lib64", Type: tar.TypeSymlink, Linkname: "usr/lib64"},
		{Name: "lib64", Body: "a file now"}, // replaces the link in the same layer
		{Name: "lib", Type: tar.TypeSymlink, Linkname: "usr/lib"},
		{Name: "lib/", Type: tar.TypeDir}, // a folder replaces it in the same layer
		{Name: "bin", Body: "a file first"},
		{Name: "bin", Type: tar.TypeSymlink, Linkname: "usr/bin"}, // then a link: the link stays
		{Name: "etc/", Type: tar.TypeDir},
		{Name: "etc/alternatives/", Type: tar.TypeDir},
		{Name: "etc/alternatives/py", Type: tar.TypeSymlink, Linkname: "/usr/bin/python3"},
	})
	upper := testutil.TarLayer(t, []testutil.TarEntry{
		{Name: ".wh.etc"}, // the parent folder of a link
	})
	base, err := mutate.AppendLayers(empty.Image, lower, upper)
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Lock: &lockfile.Lock{Base: lockfile.Base{Ref: "oci:base"}}, LayerCache: &cas.Cache{Dir: t.TempDir()}}
	got, err := baseSymlinks(o, base)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"bin": "usr/bin"}; len(got) != len(want) || got["bin"] != "usr/bin" {
		t.Fatalf("links %v, want %v", got, want)
	}
}
