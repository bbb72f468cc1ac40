package diff

import (
	"archive/tar"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/mlenv/mlenv/internal/testutil"
)

// countingLayer counts how often a layer's bytes are opened.
type countingLayer struct {
	v1.Layer
	opened *atomic.Int32
}

func (c countingLayer) Uncompressed() (io.ReadCloser, error) {
	c.opened.Add(1)
	return c.Layer.Uncompressed()
}

func (c countingLayer) Compressed() (io.ReadCloser, error) {
	c.opened.Add(1)
	return c.Layer.Compressed()
}

// otherToolImage appends layers and env with go-containerregistry's
// mutate, the way other OCI tools (crane, ko, kaniko) write images.
func otherToolImage(t testing.TB, env []string, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Config.Env = env
	cf.OS, cf.Architecture = "linux", "amd64"
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func imageDesc(t testing.TB, source string, img v1.Image) *Description {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	dg, _ := img.Digest()
	return &Description{Source: source, Kind: KindImage, Digest: dg.String(), image: img,
		Config: &Config{Env: envMap(cf.Config.Env), Labels: cf.Config.Labels}}
}

var baseEntries = []testutil.TarEntry{
	{Name: "etc/", Type: tar.TypeDir},
	{Name: "etc/os-release", Body: "ID=debian\nVERSION_ID=12\n"},
	{Name: "etc/unchanged.conf", Body: "same on both\n"},
	{Name: "usr/lib/python3/site-packages/numpy-1.26.4.dist-info/METADATA", Body: "Metadata-Version: 2.1\nName: numpy\nVersion: 1.26.4\n"},
	{Name: "usr/lib/python3/site-packages/numpy-1.26.4.dist-info/RECORD", Body: "numpy/__init__.py,sha256=aaa,10\n"},
}

func TestOtherToolImagesOneFileOneEnv(t *testing.T) {
	var opened atomic.Int32
	base := countingLayer{testutil.TarLayer(t, baseEntries), &opened}
	a := otherToolImage(t, []string{"PATH=/usr/bin", "MODE=train"}, base,
		testutil.TarLayer(t, []testutil.TarEntry{{Name: "app/", Type: tar.TypeDir}, {Name: "app/main.py", Body: "print(1)\n"}, {Name: "app/util.py", Body: "x = 1\n"}}))
	b := otherToolImage(t, []string{"PATH=/usr/bin", "MODE=serve"}, base,
		testutil.TarLayer(t, []testutil.TarEntry{{Name: "app/", Type: tar.TypeDir}, {Name: "app/main.py", Body: "print(2)\n"}, {Name: "app/util.py", Body: "x = 1\n"}}))
	r, err := Compare(imageDesc(t, "a", a), imageDesc(t, "b", b), Options{Files: true})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, f := range r.Findings {
		keys = append(keys, f.Section+":"+f.Key)
	}
	want := "config:env.MODE layers:layer 1 files:/app/main.py"
	if strings.Join(keys, " ") != want {
		t.Errorf("findings %v\nwant %s", keys, want)
	}
	for _, f := range r.Findings {
		if f.Key == "/app/main.py" && f.Detail != "content" {
			t.Errorf("main.py: %+v", f)
		}
	}
	if opened.Load() != 0 {
		t.Errorf("the shared base layer was opened %d times; equal digests must not be read", opened.Load())
	}
	if r.Same || r.Summary != "different: 1 config field, 1 layer, 1 file" {
		t.Errorf("summary %q", r.Summary)
	}
}

func TestSharedLayersReadOnceWhenNeeded(t *testing.T) {
	// B deletes a file of the shared layer and A rewrites another one
	// byte for byte: the shared layer must be read (once) to know.
	var opened atomic.Int32
	base := countingLayer{testutil.TarLayer(t, baseEntries), &opened}
	a := otherToolImage(t, nil, base, testutil.TarLayer(t, []testutil.TarEntry{{Name: "etc/unchanged.conf", Body: "same on both\n"}}))
	b := otherToolImage(t, nil, base, testutil.TarLayer(t, []testutil.TarEntry{{Name: "etc/.wh.os-release"}}))
	r, err := Compare(imageDesc(t, "a", a), imageDesc(t, "b", b), Options{Files: true})
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, f := range r.Findings {
		if f.Section == SectionFiles {
			files = append(files, string(f.Kind)+" "+f.Key)
		}
	}
	if strings.Join(files, ", ") != "removed /etc/os-release" {
		t.Errorf("files: %v", files)
	}
	if opened.Load() != 1 {
		t.Errorf("shared layer opened %d times, want 1", opened.Load())
	}
}

func TestPackagesVersionAndRebuiltWheel(t *testing.T) {
	wheel := func(version, record string) v1.Layer {
		di := "usr/lib/python3/site-packages/torch-" + version + ".dist-info/"
		return testutil.TarLayer(t, []testutil.TarEntry{
			{Name: di + "METADATA", Body: "Metadata-Version: 2.1\nName: torch\nVersion: " + version + "\n"},
			{Name: di + "RECORD", Body: record},
		})
	}
	base := testutil.TarLayer(t, baseEntries)
	a := otherToolImage(t, nil, base, wheel("2.4.0", "torch/_C.so,sha256=one,1\n"))
	rebuilt := otherToolImage(t, nil, base, wheel("2.4.0", "torch/_C.so,sha256=two,1\n"))
	newer := otherToolImage(t, nil, base, wheel("2.5.1", "torch/_C.so,sha256=one,1\n"))

	r, err := Compare(imageDesc(t, "a", a), imageDesc(t, "b", rebuilt), Options{Sections: []string{SectionPackages}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Findings) != 1 || r.Findings[0].Key != "python/torch" || r.Findings[0].Detail != "same version, other installed hash" {
		t.Errorf("rebuilt wheel: %+v", r.Findings)
	}
	r, err = Compare(imageDesc(t, "a", a), imageDesc(t, "b", newer), Options{Sections: []string{SectionPackages}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Findings) != 1 || r.Findings[0].A != "2.4.0" || r.Findings[0].B != "2.5.1" || r.Findings[0].Kind != Changed {
		t.Errorf("version change: %+v", r.Findings)
	}
}

func TestLayerThatIsNotATar(t *testing.T) {
	bad := static.NewLayer([]byte("this is not a tar archive, not even close; it is long enough to fail the header check......."+strings.Repeat("x", 600)), types.DockerLayer)
	a := otherToolImage(t, nil, testutil.TarLayer(t, baseEntries))
	b := otherToolImage(t, nil, bad)
	_, err := Compare(imageDesc(t, "a", a), imageDesc(t, "b", b), Options{Files: true})
	if err == nil || !strings.Contains(err.Error(), "B: layer 0") {
		t.Errorf("want an error naming B's layer 0, got %v", err)
	}
}

func TestUnknownSection(t *testing.T) {
	d := &Description{Kind: KindLock}
	if _, err := Compare(d, d, Options{Ignore: []string{"pakages"}}); err == nil || !strings.Contains(err.Error(), `unknown section "pakages"`) {
		t.Errorf("got %v", err)
	}
}
