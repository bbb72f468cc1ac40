package modelpack

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/mlenv/mlenv/internal/testutil"
)

// model writes a small model folder: two safetensors shards, a config,
// and a tokenizer sub-folder (a tar layer).
func model(t *testing.T, dir string, seed float32) string {
	t.Helper()
	testutil.WriteSafetensors(t, filepath.Join(dir, "model-00001-of-00002.safetensors"), map[string][]int{"embed": {64, 16}}, seed)
	testutil.WriteSafetensors(t, filepath.Join(dir, "model-00002-of-00002.safetensors"), map[string][]int{"head": {16, 8}}, seed+1)
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"hidden":16}`), 0o644)
	os.MkdirAll(filepath.Join(dir, "tokenizer", "extra"), 0o755)
	os.WriteFile(filepath.Join(dir, "tokenizer", "vocab.txt"), []byte("a\nb\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "tokenizer", "extra", "merges.txt"), []byte("a b\n"), 0o600)
	return dir
}

func TestSameFilesSameDigestTwiceAndInTwoFolders(t *testing.T) {
	a := model(t, t.TempDir(), 1)
	b := model(t, filepath.Join(t.TempDir(), "elsewhere", "m"), 1)
	// Other times and permissions (not the executable bit) on one side.
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	filepath.Walk(b, func(p string, fi os.FileInfo, err error) error {
		os.Chtimes(p, old, old)
		if !fi.IsDir() {
			os.Chmod(p, 0o600)
		}
		return nil
	})
	ctx := context.Background()
	var digests []string
	for _, dir := range []string{a, a, b} {
		art, err := Build(ctx, dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, art.Digest.String())
	}
	if digests[0] != digests[1] || digests[0] != digests[2] {
		t.Fatalf("digests differ: %v", digests)
	}
	other, err := Build(ctx, model(t, t.TempDir(), 2), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if other.Digest.String() == digests[0] {
		t.Fatal("other weights gave the same digest")
	}
}

func TestPushPullRoundTripAndResume(t *testing.T) {
	var blobPuts atomic.Int64
	host := testutil.Registry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/blobs/uploads/") && (r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch) {
				blobPuts.Add(1)
			}
			h.ServeHTTP(w, r)
		})
	})
	dir := model(t, t.TempDir(), 1)
	ctx := context.Background()
	ref := host + "/team/model:v1"
	res, err := Push(ctx, dir, ref, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Layers != 4 || res.Uploaded != 4 {
		t.Fatalf("first push: %+v", res)
	}
	r, _ := name.ParseReference(ref)
	desc, err := remote.Get(r)
	if err != nil {
		t.Fatal(err)
	}
	var m v1.Manifest
	json.Unmarshal(desc.Manifest, &m)
	if desc.Digest.String() != res.Digest || m.ArtifactType != ArtifactTypeModelManifest || m.Config.MediaType != MediaTypeModelConfig {
		t.Fatalf("manifest %s: %s", desc.Digest, desc.Manifest)
	}
	var kinds []string
	for _, l := range m.Layers {
		kinds = append(kinds, l.Annotations[AnnotationFilepath]+"="+string(l.MediaType))
	}
	if got := strings.Join(kinds, " "); got != "config.json="+MediaTypeModelWeightRaw+" model-00001-of-00002.safetensors="+MediaTypeModelWeightRaw+
		" model-00002-of-00002.safetensors="+MediaTypeModelWeightRaw+" tokenizer="+MediaTypeModelWeight {
		t.Fatalf("layers: %s", got)
	}

	// An unchanged model: no blob is sent again.
	blobPuts.Store(0)
	again, err := Push(ctx, dir, ref, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if again.Digest != res.Digest || again.Uploaded != 0 || blobPuts.Load() != 0 {
		t.Fatalf("second push: %+v, %d upload requests", again, blobPuts.Load())
	}
	// One changed shard: only that blob goes.
	testutil.WriteSafetensors(t, filepath.Join(dir, "model-00002-of-00002.safetensors"), map[string][]int{"head": {16, 8}}, 7)
	third, err := Push(ctx, dir, ref, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if third.Uploaded != 1 || third.Digest == res.Digest {
		t.Fatalf("push after one change: %+v", third)
	}

	out := filepath.Join(t.TempDir(), "pulled")
	pr, err := Pull(ctx, ref, out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if pr.Digest != third.Digest {
		t.Fatalf("pulled %s, pushed %s", pr.Digest, third.Digest)
	}
	for _, rel := range []string{"config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "tokenizer/vocab.txt", "tokenizer/extra/merges.txt"} {
		want, _ := os.ReadFile(filepath.Join(dir, rel))
		got, err := os.ReadFile(filepath.Join(out, rel))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: pulled content differs (%v)", rel, err)
		}
	}
	// The pulled folder pushes to the same digest.
	if a, err := Build(ctx, out, Options{}); err != nil || a.Digest.String() != third.Digest {
		t.Fatalf("pulled folder builds to %v (%v), want %s", a, err, third.Digest)
	}
	if _, err := Pull(ctx, ref, out, Options{}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("pull over a non-empty folder: %v", err)
	}
}

// A manifest naming a path outside the folder is refused before anything
// is written, and nothing is left behind.
func TestPullRefusesHostilePaths(t *testing.T) {
	host := testutil.Registry(t, nil)
	for _, bad := range []string{"../escape", "/etc/passwd", "a/../../b"} {
		ref := host + "/team/evil:" + strings.NewReplacer("/", "", ".", "").Replace(bad)
		pushRaw(t, ref, bad, []byte("x"))
		parent := t.TempDir()
		_, err := Pull(context.Background(), ref, filepath.Join(parent, "m"), Options{})
		if err == nil || !strings.Contains(err.Error(), AnnotationFilepath) {
			t.Errorf("%s: %v", bad, err)
		}
		if ents, _ := os.ReadDir(parent); len(ents) != 0 {
			t.Errorf("%s: left %v behind", bad, ents)
		}
	}
	// Not a model at all.
	img := testutil.RandomImage(t, "linux", "amd64")
	testutil.Push(t, img, host+"/team/image:v1")
	if _, err := Pull(context.Background(), host+"/team/image:v1", filepath.Join(t.TempDir(), "m"), Options{}); err == nil || !strings.Contains(err.Error(), "not a ModelPack model") {
		t.Fatalf("image pulled as a model: %v", err)
	}
}

// pushRaw writes a one-layer ModelPack manifest with the given path.
func pushRaw(t *testing.T, ref, path string, content []byte) {
	t.Helper()
	r, _ := name.ParseReference(ref)
	cfg := static.NewLayer([]byte(`{"descriptor":{},"modelfs":{"type":"layers","diffIds":[]},"config":{}}`), MediaTypeModelConfig)
	l := static.NewLayer(content, MediaTypeModelWeightRaw)
	for _, b := range []v1.Layer{cfg, l} {
		if err := remote.WriteLayer(r.Context(), b); err != nil {
			t.Fatal(err)
		}
	}
	cd, _ := cfg.Digest()
	cs, _ := cfg.Size()
	ld, _ := l.Digest()
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: ArtifactTypeModelManifest,
		Config: v1.Descriptor{MediaType: MediaTypeModelConfig, Digest: cd, Size: cs},
		Layers: []v1.Descriptor{{MediaType: MediaTypeModelWeightRaw, Digest: ld, Size: int64(len(content)), Annotations: map[string]string{AnnotationFilepath: path}}}}
	b, _ := json.Marshal(m)
	if err := remote.Put(r, rawManifest{b, types.OCIManifestSchema1}); err != nil {
		t.Fatal(err)
	}
}

func FuzzPlanLayers(f *testing.F) {
	f.Add("a", "a/b", string(MediaTypeModelWeightRaw))
	f.Add("../x", "y", string(MediaTypeModelWeight))
	f.Fuzz(func(t *testing.T, p1, p2, mt string) {
		plan, err := planLayers([]v1.Descriptor{
			{MediaType: types.MediaType(mt), Annotations: map[string]string{AnnotationFilepath: p1}},
			{MediaType: MediaTypeModelWeightRaw, Annotations: map[string]string{AnnotationFilepath: p2}},
		})
		if err != nil {
			return
		}
		for _, p := range plan {
			if filepath.IsAbs(p.rel) || strings.Contains("/"+p.rel+"/", "/../") {
				t.Fatalf("accepted %q", p.rel)
			}
		}
		if plan[0].rel == plan[1].rel || strings.HasPrefix(plan[1].rel, plan[0].rel+"/") || strings.HasPrefix(plan[0].rel, plan[1].rel+"/") {
			t.Fatalf("overlapping %q %q accepted", plan[0].rel, plan[1].rel)
		}
	})
}
