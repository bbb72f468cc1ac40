package modelpack

import (
	"archive/tar"

	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/mlenv/mlenv/image"
	"github.com/mlenv/mlenv/internal/filedigest"
)

// Options for Push and Pull.
type Options struct {
	Registry image.Options
	// Jobs is how many blobs move at once (0: 4).
	Jobs int
	// Workers hash files in parallel (0: all CPUs).
	Workers int
}

func (o Options) jobs() int {
	if o.Jobs <= 0 {
		return 4
	}
	return o.Jobs
}

// Artifact is a model folder turned into a ModelPack manifest, not yet
// pushed: every digest is known, no blob has been sent.
type Artifact struct {
	Manifest    []byte
	Digest      v1.Hash
	Config      []byte
	layers      []*fileLayer
	HashedBytes int64
}

// Layers is the number of layers (files and sub-folders at the top).
func (a *Artifact) Layers() int { return len(a.layers) }

// fileLayer is one layer read from local files when (and only when) the
// registry does not have it yet.
type fileLayer struct {
	rel    string
	abs    string
	files  []filedigest.File // a folder's files, for a tar layer
	digest v1.Hash
	size   int64
	mt     types.MediaType
	sent   *atomic.Int64 // bytes handed to the registry
	opened *atomic.Int64 // layers actually uploaded
}

func (l *fileLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *fileLayer) DiffID() (v1.Hash, error)            { return l.digest, nil }
func (l *fileLayer) Size() (int64, error)                { return l.size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error) { return l.mt, nil }
func (l *fileLayer) Uncompressed() (io.ReadCloser, error) {
	return l.Compressed()
}

// Compressed opens the content (raw file, or the folder's tar written on
// the fly); remote calls it only for blobs the registry lacks.
func (l *fileLayer) Compressed() (io.ReadCloser, error) {
	if l.opened != nil {
		l.opened.Add(1)
	}
	var rc io.ReadCloser
	if l.mt == MediaTypeModelWeightRaw {
		f, err := os.Open(l.abs)
		if err != nil {
			return nil, err
		}
		rc = f
	} else {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(writeTar(pw, l.files)) }()
		rc = pr
	}
	return countingReader{rc, l.sent}, nil
}

type countingReader struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	if c.n != nil {
		c.n.Add(int64(n))
	}
	return n, err
}

// epoch is the one timestamp a folder layer's tar carries.
var epoch = time.Unix(0, 0).UTC()

// writeTar writes a folder layer deterministically: files in byte order
// of name with their parent folders first, uid/gid 0, no user names,
// modes 0755/0644, every time the epoch.
func writeTar(w io.Writer, files []filedigest.File) error {
	tw := tar.NewWriter(w)
	dirs := map[string]bool{}
	for _, f := range files {
		var parents []string
		for d := path.Dir(f.Name); d != "." && !dirs[d]; d = path.Dir(d) {
			parents = append(parents, d)
			dirs[d] = true
		}
		for i := len(parents) - 1; i >= 0; i-- {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: parents[i] + "/", Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
				return err
			}
		}
		mode := int64(0o644)
		if f.Exec {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.Name, Size: f.Size, Mode: mode, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		in, err := os.Open(f.Abs)
		if err != nil {
			return err
		}
		n, err := io.Copy(tw, in)
		in.Close()
		if err != nil {
			return fmt.Errorf("reading %s: %w", f.Abs, err)
		}
		if n != f.Size {
			return fmt.Errorf("%s changed size while it was packed", f.Abs)
		}
	}
	return tw.Close()
}

// Build lists and hashes dir (every byte once, files in parallel) and
// makes the manifest. The same files give the same digest, wherever the
// folder is and whatever the files' times, owners and permissions (only
// the executable bit counts, in folder layers).
func Build(ctx context.Context, dir string, o Options) (*Artifact, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("model folder: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a folder: push-model takes the model's folder", dir)
	}
	files, err := filedigest.Sum(ctx, dir, filedigest.Options{Workers: o.Workers, Exclude: func(rel string) bool { return rel == ".git" }})
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", dir, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("model %s holds no files", dir)
	}
	a := &Artifact{}
	sent, opened := &atomic.Int64{}, &atomic.Int64{}
	// Files at the top are raw layers; each sub-folder is one tar layer.
	var folder *fileLayer
	for _, f := range files {
		a.HashedBytes += f.Size
		top, _, nested := strings.Cut(f.Name, "/")
		if !nested {
			h, _ := v1.NewHash("sha256:" + f.SHA256)
			a.layers = append(a.layers, &fileLayer{rel: f.Name, abs: f.Abs, digest: h, size: f.Size, mt: MediaTypeModelWeightRaw, sent: sent, opened: opened})
			folder = nil
			continue
		}
		if folder == nil || folder.rel != top {
			folder = &fileLayer{rel: top, mt: MediaTypeModelWeight, sent: sent, opened: opened}
			a.layers = append(a.layers, folder)
		}
		// Tar entries are relative to the folder the layer is named for.
		inner := f
		inner.Name = strings.TrimPrefix(f.Name, top+"/")
		folder.files = append(folder.files, inner)
	}
	// Folder layers: hash their tar (the files' bytes are read a second
	// time here, in parallel; raw files, the bulk of a model, are not).
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, l := range a.layers {
		if l.mt != MediaTypeModelWeight {
			continue
		}
		g.Go(func() error {
			if gctx.Err() != nil {
				return gctx.Err()
			}
			h := sha256.New()
			cw := &countWriter{w: h}
			if err := writeTar(cw, l.files); err != nil {
				return fmt.Errorf("packing %s: %w", l.rel, err)
			}
			l.digest = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
			l.size = cw.n
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	cfg := Model{Descriptor: ModelDescriptor{}, ModelFS: ModelFS{Type: "layers", DiffIDs: []string{}}, Config: ModelConfig{Format: format(files)}}
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: ArtifactTypeModelManifest}
	for _, l := range a.layers {
		cfg.ModelFS.DiffIDs = append(cfg.ModelFS.DiffIDs, l.digest.String())
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: l.mt, Size: l.size, Digest: l.digest, Annotations: map[string]string{AnnotationFilepath: l.rel}})
	}
	if a.Config, err = json.Marshal(cfg); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(a.Config)
	m.Config = v1.Descriptor{MediaType: MediaTypeModelConfig, Size: int64(len(a.Config)), Digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}}
	if a.Manifest, err = json.Marshal(m); err != nil {
		return nil, err
	}
	ms := sha256.Sum256(a.Manifest)
	a.Digest = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(ms[:])}
	return a, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// format names the weights' format when the file names agree on one.
func format(files []filedigest.File) string {
	seen := map[string]bool{}
	for _, f := range files {
		switch {
		case strings.HasSuffix(f.Name, ".safetensors"):
			seen["safetensors"] = true
		case strings.HasSuffix(f.Name, ".gguf"):
			seen["gguf"] = true
		case strings.HasSuffix(f.Name, ".onnx"):
			seen["onnx"] = true
		case strings.HasSuffix(f.Name, ".pt"), strings.HasSuffix(f.Name, ".pth"), strings.HasSuffix(f.Name, ".bin"):
			seen["pytorch"] = true
		}
	}
	if len(seen) != 1 {
		return ""
	}
	for k := range seen {
		return k
	}
	return ""
}

// PushResult says what a push moved.
type PushResult struct {
	Digest string `json:"digest"`
	Ref    string `json:"ref"`
	Layers int    `json:"layers"`
	// Uploaded counts the blobs sent; the others the registry had.
	Uploaded      int   `json:"uploaded"`
	UploadedBytes int64 `json:"uploadedBytes"`
	HashedBytes   int64 `json:"hashedBytes"`
}

// rawManifest lets remote.Put write our exact manifest bytes.
type rawManifest struct {
	b  []byte
	mt types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.b, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }

// Push builds dir's artifact and writes it to ref: blobs in parallel,
// each skipped when the registry already has its digest (so an
// interrupted push resumes, and an unchanged model sends no blob), then
// the manifest.
func Push(ctx context.Context, dir, ref string, o Options) (*PushResult, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("push-model: %q is not a registry reference: %w", ref, err)
	}
	a, err := Build(ctx, dir, o)
	if err != nil {
		return nil, err
	}
	return a.Push(ctx, r, o)
}

// Push writes the artifact to ref.
func (a *Artifact) Push(ctx context.Context, ref name.Reference, o Options) (*PushResult, error) {
	ropts := o.Registry.RemoteOptions(ctx)
	repo := ref.Context()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.jobs())
	blobs := []v1.Layer{static.NewLayer(a.Config, MediaTypeModelConfig)}
	for _, l := range a.layers {
		blobs = append(blobs, l)
	}
	for _, b := range blobs {
		g.Go(func() error {
			if err := remote.WriteLayer(repo, b, append(ropts, remote.WithContext(gctx))...); err != nil {
				d, _ := b.Digest()
				return fmt.Errorf("pushing blob %s to %s: %w", d, repo, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := remote.Put(ref, rawManifest{a.Manifest, types.OCIManifestSchema1}, ropts...); err != nil {
		return nil, fmt.Errorf("pushing the manifest to %s: %w", ref, err)
	}
	res := &PushResult{Digest: a.Digest.String(), Ref: repo.Digest(a.Digest.String()).String(), Layers: len(a.layers), HashedBytes: a.HashedBytes}
	if len(a.layers) > 0 {
		res.Uploaded = int(a.layers[0].opened.Load())
		res.UploadedBytes = a.layers[0].sent.Load()
	}
	return res, nil
}

// CheckModel refuses a resolved artifact that is not a ModelPack model.
func CheckModel(r *image.Resolved) error {
	if r.IsIndex() {
		return fmt.Errorf("%s is an index, not a ModelPack model manifest", r.Digest())
	}
	img, err := r.Image("")
	if err != nil {
		return err
	}
	m, err := img.Manifest()
	if err != nil {
		return fmt.Errorf("reading the manifest: %w", err)
	}
	if m.Config.MediaType != MediaTypeModelConfig {
		return fmt.Errorf("its config is %s, not a ModelPack model config (%s): push the model with `mlenv push-model`", m.Config.MediaType, MediaTypeModelConfig)
	}
	return nil
}
