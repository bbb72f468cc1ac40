package image

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/mlenv/mlenv/internal/testutil"
)

var ctx = context.Background()

func mustParse(t *testing.T, s string) Ref {
	t.Helper()
	r, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustWrite(t *testing.T, out string, c Content, o WriteOptions) {
	t.Helper()
	if err := Write(ctx, mustParse(t, out), c, o); err != nil {
		t.Fatalf("writing %s: %v", out, err)
	}
}

func digestOf(t *testing.T, c Content) v1.Hash {
	t.Helper()
	d, err := c.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// indexJSON reads a layout's entries as a user would: tag -> digest.
func indexJSON(t *testing.T, dir string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var im v1.IndexManifest
	if err := json.Unmarshal(b, &im); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, m := range im.Manifests {
		got[m.Annotations[AnnotationRefName]] = m.Digest.String()
	}
	return got
}

// snapshot is every file of a folder with its content, to show that a
// failed write changed nothing.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if !d.IsDir() {
			b, _ := os.ReadFile(p)
			files[strings.TrimPrefix(p, dir)] = string(b)
		}
		return nil
	})
	return files
}

func sameFiles(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func blobCount(t *testing.T, dir string) int {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

func TestLayoutTagsAreRecordedAndRead(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	a, b := testutil.RandomImage(t, "linux", "amd64"), testutil.RandomImage(t, "linux", "amd64")
	mustWrite(t, "oci:"+dir+":v1", a, WriteOptions{})
	mustWrite(t, "oci:"+dir+":v2", b, WriteOptions{})
	want := map[string]string{"v1": digestOf(t, a).String(), "v2": digestOf(t, b).String()}
	if got := indexJSON(t, dir); !sameFiles(got, want) {
		t.Fatalf("index.json entries %v, want %v (a second tag is added)", got, want)
	}
	for tag, d := range want {
		r, err := Resolve(ctx, mustParse(t, "oci:"+dir+":"+tag), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if r.Digest().String() != d {
			t.Errorf("oci:DIR:%s resolved to %s, want %s", tag, r.Digest(), d)
		}
	}
	if _, err := Resolve(ctx, mustParse(t, "oci:"+dir), Options{}); err == nil || !strings.Contains(err.Error(), "tags: v1, v2") {
		t.Errorf("two entries without a tag: %v", err)
	}
	if _, err := Resolve(ctx, mustParse(t, "oci:"+dir+":v3"), Options{}); err == nil || !strings.Contains(err.Error(), `no entry is tagged "v3"`) {
		t.Errorf("unknown tag: %v", err)
	}

	// The same tag again replaces its entry; the replaced image's blobs go.
	c := testutil.RandomImage(t, "linux", "amd64")
	mustWrite(t, "oci:"+dir+":v1", c, WriteOptions{})
	want["v1"] = digestOf(t, c).String()
	if got := indexJSON(t, dir); !sameFiles(got, want) {
		t.Fatalf("after replacing v1: %v, want %v", got, want)
	}
	if n := blobCount(t, dir); n != 2*(1+1+2) {
		t.Errorf("%d blobs; want 8 (two images of manifest, config, 2 layers): a's blobs were not removed", n)
	}
	// No tag: the layout holds this image alone.
	mustWrite(t, "oci:"+dir, a, WriteOptions{})
	if got := indexJSON(t, dir); len(got) != 1 || got[""] != digestOf(t, a).String() {
		t.Errorf("untagged write: %v", got)
	}
	if n := blobCount(t, dir); n != 4 {
		t.Errorf("%d blobs after an untagged write, want 4", n)
	}
}

// TestLayoutReadableBySkopeoAndUmoci runs the tools whose DIR:TAG syntax
// the tag annotation is for.
func TestLayoutReadableBySkopeoAndUmoci(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	// skopeo only looks at entries with OCI media types, which is what
	// mlenv builds; random images have Docker ones.
	img := ociImage(t)
	mustWrite(t, "oci:"+dir+":v1", img, WriteOptions{})
	mustWrite(t, "oci:"+dir+":other", ociImage(t), WriteOptions{})
	ran := false
	if skopeo, err := exec.LookPath("skopeo"); err == nil {
		ran = true
		out := filepath.Join(t.TempDir(), "copy")
		cmd := exec.Command(skopeo, "--insecure-policy", "copy", "--preserve-digests", "oci:"+dir+":v1", "oci:"+out+":x")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("skopeo copy oci:DIR:v1: %v\n%s", err, b)
		}
		r, err := Resolve(ctx, mustParse(t, "oci:"+out+":x"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if r.Digest() != digestOf(t, img) {
			t.Errorf("skopeo copied %s, want %s", r.Digest(), digestOf(t, img))
		}
	}
	if umoci, err := exec.LookPath("umoci"); err == nil {
		ran = true
		bundle := filepath.Join(t.TempDir(), "bundle")
		cmd := exec.Command(umoci, "unpack", "--rootless", "--image", dir+":v1", bundle)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("umoci unpack --image DIR:v1: %v\n%s", err, b)
		}
		if _, err := os.Stat(filepath.Join(bundle, "rootfs")); err != nil {
			t.Errorf("umoci made no rootfs: %v", err)
		}
	}
	if !ran {
		t.Skip("neither skopeo nor umoci is installed (apt-get install skopeo umoci); the index.json annotation is checked by TestLayoutTagsAreRecordedAndRead")
	}
}

// TestLayoutIntoExistingEmptyFolder writes oci:DIR where DIR is the test's
// own temp folder: what `mlenv build --output oci:.` does in an empty cwd
// (renaming over it used to fail with "device or resource busy").
func TestLayoutIntoExistingEmptyFolder(t *testing.T) {
	dir := t.TempDir()
	img := testutil.RandomImage(t, "linux", "amd64")
	mustWrite(t, "oci:"+dir, img, WriteOptions{})
	r, err := Resolve(ctx, mustParse(t, "oci:"+dir), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Digest() != digestOf(t, img) {
		t.Errorf("read back %s, wrote %s", r.Digest(), digestOf(t, img))
	}
	// And again, over the layout it now holds.
	img2 := testutil.RandomImage(t, "linux", "amd64")
	mustWrite(t, "oci:"+dir, img2, WriteOptions{})
	if got := indexJSON(t, dir); got[""] != digestOf(t, img2).String() || len(got) != 1 {
		t.Errorf("second write: %v", got)
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), "."+filepath.Base(dir)+".tmp-*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary folders left: %v", leftovers)
	}
}

func TestLayoutNeverWritesIntoForeignFolders(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644)
	before := snapshot(t, dir)
	err := Write(ctx, mustParse(t, "oci:"+dir), testutil.RandomImage(t, "linux", "amd64"), WriteOptions{})
	if err == nil || !strings.Contains(err.Error(), "not an OCI image layout") {
		t.Errorf("foreign folder: %v", err)
	}
	if !sameFiles(before, snapshot(t, dir)) {
		t.Error("the folder changed")
	}
	file := filepath.Join(dir, "notes.txt")
	if err := Write(ctx, mustParse(t, "oci:"+file), testutil.RandomImage(t, "linux", "amd64"), WriteOptions{}); err == nil || !strings.Contains(err.Error(), "not a folder") {
		t.Errorf("file as layout: %v", err)
	}
}

// cachedLayer writes img's first layer as a cache file would hold it and
// returns the layer's digest and the file.
func cachedLayer(t *testing.T, img v1.Image) (v1.Hash, string) {
	t.Helper()
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	rc, _ := layers[0].Compressed()
	defer rc.Close()
	var buf bytes.Buffer
	buf.ReadFrom(rc)
	p := filepath.Join(t.TempDir(), d.Hex)
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return d, p
}

// only offers one file, for the blob d, as the cache would.
func only(d v1.Hash, path string, verified bool) func(v1.Hash) (string, bool) {
	return func(h v1.Hash) (string, bool) {
		if h == d {
			return path, verified
		}
		return "", false
	}
}

func flipByte(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x01
	os.Chmod(path, 0o644)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptCacheBlobIsRefused(t *testing.T) {
	img := testutil.RandomImage(t, "linux", "amd64")
	d, cached := cachedLayer(t, img)
	flipByte(t, cached)
	for _, verified := range []bool{false, true} {
		from := only(d, cached, verified)
		// A new folder: not created at all.
		parent := t.TempDir()
		dir := filepath.Join(parent, "out")
		err := Write(ctx, mustParse(t, "oci:"+dir), img, WriteOptions{BlobFile: from})
		if err == nil || !strings.Contains(err.Error(), d.String()) || !strings.Contains(err.Error(), "does not match its digest") {
			t.Fatalf("verified=%v: corrupt blob: %v", verified, err)
		}
		if es, _ := os.ReadDir(parent); len(es) != 0 {
			t.Errorf("verified=%v: left %v behind", verified, es)
		}
		// An earlier layout: untouched, no orphan blob.
		old := t.TempDir()
		mustWrite(t, "oci:"+old+":v1", testutil.RandomImage(t, "linux", "amd64"), WriteOptions{})
		before := snapshot(t, old)
		if err := Write(ctx, mustParse(t, "oci:"+old+":v2"), img, WriteOptions{BlobFile: from}); err == nil {
			t.Fatalf("verified=%v: corrupt blob written into an existing layout", verified)
		}
		if !sameFiles(before, snapshot(t, old)) {
			t.Errorf("verified=%v: a failed write changed the existing layout", verified)
		}
	}
}

func TestOutputDoesNotShareTheCacheFile(t *testing.T) {
	img := testutil.RandomImage(t, "linux", "amd64")
	d, cached := cachedLayer(t, img)
	// Verified but writable: copied (or cloned), never linked.
	dir := filepath.Join(t.TempDir(), "out")
	mustWrite(t, "oci:"+dir, img, WriteOptions{BlobFile: only(d, cached, true)})
	out := filepath.Join(dir, "blobs", "sha256", d.Hex)
	a, _ := os.Stat(cached)
	b, _ := os.Stat(out)
	if os.SameFile(a, b) {
		t.Fatal("a writable cache file was hard-linked into the output")
	}
	flipByte(t, cached)
	if got, _ := hashFile(out); got != d.Hex {
		t.Error("changing the cache file changed the output")
	}

	// Verified and read-only: linked (the cheap path the cache will use).
	_, ro := cachedLayer(t, img)
	os.Chmod(ro, 0o444)
	dir2 := filepath.Join(t.TempDir(), "out")
	mustWrite(t, "oci:"+dir2, img, WriteOptions{BlobFile: only(d, ro, true)})
	a, _ = os.Stat(ro)
	b, _ = os.Stat(filepath.Join(dir2, "blobs", "sha256", d.Hex))
	if !os.SameFile(a, b) {
		t.Error("a verified read-only cache file was copied, not linked")
	}
	// Not verified, even if read-only: copied.
	dir3 := filepath.Join(t.TempDir(), "out")
	mustWrite(t, "oci:"+dir3, img, WriteOptions{BlobFile: only(d, ro, false)})
	b, _ = os.Stat(filepath.Join(dir3, "blobs", "sha256", d.Hex))
	if os.SameFile(a, b) {
		t.Error("an unverified cache file was linked")
	}
}

func TestIndexAndPlatforms(t *testing.T) {
	amd, arm := testutil.RandomImage(t, "linux", "amd64"), testutil.RandomImage(t, "linux", "arm64")
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}})
	dir := filepath.Join(t.TempDir(), "layout")
	mustWrite(t, "oci:"+dir, idx, WriteOptions{})
	r, err := Resolve(ctx, mustParse(t, "oci:"+dir), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !r.IsIndex() || r.Digest() != digestOf(t, idx) {
		t.Fatalf("resolved %s (index %v), want the index %s", r.Digest(), r.IsIndex(), digestOf(t, idx))
	}
	if _, err := r.Image(""); err == nil || !strings.Contains(err.Error(), "linux/amd64, linux/arm64/v8") {
		t.Errorf("index without a platform: %v", err)
	}
	for p, want := range map[string]v1.Image{"linux/amd64": amd, "linux/arm64": arm, "linux/arm64/v8": arm} {
		img, err := r.Image(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if digestOf(t, img) != digestOf(t, want) {
			t.Errorf("%s: picked the wrong image", p)
		}
	}
	if _, err := r.Image("linux/s390x"); err == nil || !strings.Contains(err.Error(), "no image for linux/s390x") {
		t.Errorf("missing platform: %v", err)
	}
	if err := Write(ctx, mustParse(t, "tar:"+filepath.Join(t.TempDir(), "x.tar")), idx, WriteOptions{}); err != ErrMultiPlatformTar {
		t.Errorf("index to tar: %v", err)
	}
}

func TestTarballTargets(t *testing.T) {
	img := testutil.RandomImage(t, "linux", "amd64")
	check := func(what, file string) {
		t.Helper()
		got, err := tarball.ImageFromPath(file, nil)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if g, _ := got.ConfigName(); g != mustConfigName(t, img) {
			t.Errorf("%s: config %s", what, g)
		}
	}
	dir := t.TempDir()

	// A regular file: replaced, readable by others.
	plain := filepath.Join(dir, "image.tar")
	mustWrite(t, "tar:"+plain, img, WriteOptions{})
	check("file", plain)
	if fi, _ := os.Stat(plain); fi.Mode().Perm() != 0o644 {
		t.Errorf("tarball mode %v, want 0644", fi.Mode().Perm())
	}

	// A symbolic link: followed; the link stays a link.
	target := filepath.Join(dir, "target.tar")
	os.WriteFile(target, nil, 0o644) // empty, as mktemp leaves it
	link := filepath.Join(dir, "link.tar")
	os.Symlink(target, link)
	mustWrite(t, "tar:"+link, img, WriteOptions{})
	if fi, _ := os.Lstat(link); fi.Mode()&os.ModeSymlink == 0 {
		t.Error("the symbolic link was replaced by a file")
	}
	check("link target", target)

	// A character device stays one.
	mustWrite(t, "tar:/dev/null", img, WriteOptions{})
	if fi, err := os.Stat("/dev/null"); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		t.Fatalf("/dev/null is no longer a character device: %v %v", fi.Mode(), err)
	}

	// tar:- goes to the given stdout.
	var stdout bytes.Buffer
	mustWrite(t, "tar:-", img, WriteOptions{Stdout: &stdout})
	fromStdout := filepath.Join(dir, "stdout.tar")
	os.WriteFile(fromStdout, stdout.Bytes(), 0o644)
	check("stdout", fromStdout)
	if _, err := Resolve(ctx, mustParse(t, "tar:-"), Options{}); err == nil || !strings.Contains(err.Error(), "only be an output") {
		t.Errorf("reading tar:-: %v", err)
	}

	// A folder is refused.
	if err := Write(ctx, mustParse(t, "tar:"+dir), img, WriteOptions{}); err == nil || !strings.Contains(err.Error(), "is a folder") {
		t.Errorf("folder: %v", err)
	}
	var names []string
	es, _ := os.ReadDir(dir)
	for _, e := range es {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if got := strings.Join(names, " "); got != "image.tar link.tar stdout.tar target.tar" {
		t.Errorf("files left: %s", got)
	}
}

func mustConfigName(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	h, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// ociImage is a random image with OCI media types throughout, as mlenv
// builds them.
func ociImage(t *testing.T) v1.Image {
	t.Helper()
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	l, err := random.Layer(512, types.OCILayer)
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.AppendLayers(img, l); err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}
