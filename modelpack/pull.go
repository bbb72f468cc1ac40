package modelpack

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/mlenv/mlenv/image"
	"github.com/mlenv/mlenv/internal/filedigest"
)

// Bounds on what a registry may hand Pull.
const (
	maxLayers       = 100000
	maxFilesInTar   = 1 << 20
	maxManifestSize = 4 << 20
)

// PullResult says what a pull wrote.
type PullResult struct {
	Digest string `json:"digest"`
	Dir    string `json:"dir"`
	Layers int    `json:"layers"`
	Bytes  int64  `json:"bytes"`
}

// Pull reads the model ref names and writes its files into dir, which
// must not exist yet (or be an empty folder). Everything is written into
// a temporary folder beside dir and renamed into place at the end: a
// failed pull leaves nothing behind. Every blob is checked against its
// digest while it is read; every path is checked before it is created.
func Pull(ctx context.Context, ref, dir string, o Options) (*PullResult, error) {
	pr, err := image.Parse(ref)
	if err != nil {
		return nil, err
	}
	if pr.Kind != image.Registry {
		return nil, fmt.Errorf("pull-model reads from a registry; %s is a local image", ref)
	}
	r, err := image.Resolve(ctx, pr, o.Registry)
	if err != nil {
		return nil, err
	}
	if err := CheckModel(r); err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	img, _ := r.Image("")
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	if len(m.Layers) > maxLayers {
		return nil, fmt.Errorf("%s has %d layers, more than the %d pull-model takes", ref, len(m.Layers), maxLayers)
	}
	plan, err := planLayers(m.Layers)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	if err := checkTarget(dir); err != nil {
		return nil, err
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".pull-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	res := &PullResult{Digest: r.Digest().String(), Dir: dir, Layers: len(layers)}
	sizes := make([]int64, len(layers))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.jobs())
	for i, l := range layers {
		g.Go(func() error {
			if gctx.Err() != nil {
				return gctx.Err()
			}
			n, err := writeLayer(l, plan[i], tmp)
			sizes[i] = n
			if err != nil {
				return fmt.Errorf("layer %d (%s): %w", i+1, plan[i].rel, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for _, n := range sizes {
		res.Bytes += n
	}
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		os.Remove(dir) // empty, checked above
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("moving the model into %s: %w", dir, err)
	}
	return res, nil
}

func checkTarget(dir string) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s exists and is not a folder: pull-model writes a new folder", dir)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(ents) > 0 {
		return fmt.Errorf("%s is not empty: pull-model writes into a new or empty folder, never over files", dir)
	}
	return nil
}

type layerPlan struct {
	rel  string
	tar  bool
	size int64
}

// planLayers checks every layer's media type and path before anything is
// written: a known type, a clean relative path, no two layers at the same
// path or one inside another.
func planLayers(descs []v1.Descriptor) ([]layerPlan, error) {
	var out []layerPlan
	seen := map[string]bool{}
	under := map[string]string{} // a folder above a layer's path: that path
	for i, d := range descs {
		rel, err := filedigest.CleanName(d.Annotations[AnnotationFilepath])
		if err != nil {
			return nil, fmt.Errorf("layer %d: annotation %s: %w", i+1, AnnotationFilepath, err)
		}
		if d.Size < 0 {
			return nil, fmt.Errorf("layer %d: negative size", i+1)
		}
		p := layerPlan{rel: rel, size: d.Size}
		switch string(d.MediaType) {
		case MediaTypeModelWeightRaw, "application/vnd.cncf.model.weight.config.v1.raw", "application/vnd.cncf.model.doc.v1.raw", "application/vnd.cncf.model.code.v1.raw", "application/vnd.cncf.model.dataset.v1.raw":
		case MediaTypeModelWeight, "application/vnd.cncf.model.weight.config.v1.tar", "application/vnd.cncf.model.doc.v1.tar", "application/vnd.cncf.model.code.v1.tar", "application/vnd.cncf.model.dataset.v1.tar":
			p.tar = true
		default:
			return nil, fmt.Errorf("layer %d (%s): media type %s is not an uncompressed ModelPack layer mlenv reads", i+1, rel, d.MediaType)
		}
		for q := rel; q != "."; q = filepath.ToSlash(filepath.Dir(q)) {
			if seen[q] {
				return nil, fmt.Errorf("layer %d: %s overlaps another layer's path %s", i+1, rel, q)
			}
		}
		if below, ok := under[rel]; ok {
			return nil, fmt.Errorf("layer %d: %s holds another layer's path %s", i+1, rel, below)
		}
		seen[rel] = true
		// Every folder above rel, so that a later layer at one of them
		// is caught by one lookup (comparing every pair of layers took
		// minutes for a manifest of 100,000).
		for q := filepath.ToSlash(filepath.Dir(rel)); q != "."; q = filepath.ToSlash(filepath.Dir(q)) {
			if _, ok := under[q]; ok {
				break // and so are the folders above it
			}
			under[q] = rel
		}
		out = append(out, p)
	}
	return out, nil
}

// writeLayer writes one layer below root. The reader go-containerregistry
// gives checks the blob's digest and size as it is read; a mismatch is an
// error from Read, so nothing unverified is kept.
func writeLayer(l v1.Layer, p layerPlan, root string) (int64, error) {
	rc, err := l.Compressed()
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	body := io.LimitReader(rc, p.size+1)
	if !p.tar {
		n, err := writeFile(filepath.Join(root, filepath.FromSlash(p.rel)), body, 0o644)
		if err == nil && n != p.size {
			err = fmt.Errorf("blob is %d bytes, the manifest says %d", n, p.size)
		}
		return n, err
	}
	base := filepath.Join(root, filepath.FromSlash(p.rel))
	if err := os.MkdirAll(base, 0o755); err != nil {
		return 0, err
	}
	tr := tar.NewReader(body)
	var total int64
	for n := 0; ; n++ {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return total, fmt.Errorf("reading the tar: %w", err)
		}
		if n > maxFilesInTar {
			return total, fmt.Errorf("more than %d entries", maxFilesInTar)
		}
		name, err := filedigest.CleanName(strings.TrimSuffix(h.Name, "/"))
		if err != nil {
			return total, fmt.Errorf("tar entry: %w", err)
		}
		dst := filepath.Join(base, filepath.FromSlash(name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return total, err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return total, err
			}
			mode := os.FileMode(0o644)
			if h.Mode&0o111 != 0 {
				mode = 0o755
			}
			k, err := writeFile(dst, tr, mode)
			total += k
			if err != nil {
				return total, err
			}
		default:
			return total, fmt.Errorf("tar entry %s: type %q; only files and folders are unpacked", name, h.Typeflag)
		}
	}
	// Drain to EOF so that the digest check runs.
	if _, err := io.Copy(io.Discard, body); err != nil {
		return total, err
	}
	return total, nil
}

// writeFile creates a new file (never following or replacing one).
func writeFile(p string, r io.Reader, mode os.FileMode) (int64, error) {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return 0, err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return 0, err
	}
	n, err := io.CopyBuffer(f, r, make([]byte, 1<<20))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}
