// Package builder turns a lock into an OCI image, hermetically: the only
// inputs are the lock's content-addressed artifacts, and nothing of the
// host (time, user, umask, paths, core count) reaches the output.
package builder

import (
	"archive/zip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/mlenv/mlenv/internal/atomicfile"
	"github.com/mlenv/mlenv/internal/canon"
	"github.com/mlenv/mlenv/internal/cas"
	"github.com/mlenv/mlenv/internal/progress"
	"github.com/mlenv/mlenv/lockfile"
)

// layerFormat versions how mlenv lays out layers; bump it when a change
// alters layer bytes so that cached layers are not reused across it.
const layerFormat = "mlenv-layer-v1"

// largeArtifact is the compressed size from which a package gets a layer
// of its own: big packages change rarely and pull in parallel; small ones
// are grouped so that images stay well under overlayfs' layer limit.
const largeArtifact = 16 << 20

// Label keys mlenv writes into the image config.
const (
	LabelLockDigest = "dev.mlenv.lock.digest"
)

// Options configures a build.
type Options struct {
	Lock *lockfile.Lock
	// LockDigest is the sha256 of the lock file's bytes.
	LockDigest string
	// BaseDir is the lock file's folder: relative URIs start there.
	BaseDir string
	// Cache holds downloaded artifacts; LayerCache holds built layers
	// (default: Cache).
	Cache, LayerCache *cas.Cache
	Offline           bool
	RemoteOptions     []remote.Option
	// Log receives progress notes (stderr); nil is silent.
	Log io.Writer
	// Jobs bounds parallel layer builds (default GOMAXPROCS).
	Jobs int
	// RetryBackoff is the first delay between download attempts (tests
	// shorten it); 0 means the fetcher's default.
	RetryBackoff time.Duration
}

// Result is a built image (one platform) or index (several).
type Result struct {
	Image  v1.Image
	Index  v1.ImageIndex
	Digest v1.Hash
	// Images per platform, in the lock's platform order.
	Images map[string]v1.Image
	// blobDirs hold verified blobs (layer and artifact caches): outputs
	// on the same file system link them instead of copying.
	blobDirs []string
}

// Epoch returns the time every timestamp in the image is set to.
func Epoch(l *lockfile.Lock) time.Time {
	if e, ok := lockfile.SourceDateEpoch(); ok {
		return time.Unix(e, 0).UTC()
	}
	return time.Unix(l.Epoch, 0).UTC()
}

func (o *Options) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format+"\n", args...)
	}
}

// Build fetches what is missing and assembles the image.
func Build(ctx context.Context, o Options) (*Result, error) {
	if o.LayerCache == nil {
		o.LayerCache = o.Cache
	}
	if o.Jobs <= 0 {
		o.Jobs = runtime.GOMAXPROCS(0)
	}
	fetcher := &cas.Fetcher{Cache: o.Cache, BaseDir: o.BaseDir, Offline: o.Offline, Backoff: o.RetryBackoff}
	arts, err := fetchAll(ctx, o, fetcher)
	if err != nil {
		return nil, err
	}
	res := &Result{Images: map[string]v1.Image{}, blobDirs: []string{o.LayerCache.Dir, o.Cache.Dir}}
	for _, p := range o.Lock.Platforms {
		img, err := buildPlatform(ctx, o, p, arts)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		res.Images[p] = img
	}
	if len(o.Lock.Platforms) == 1 {
		res.Image = res.Images[o.Lock.Platforms[0]]
		res.Digest, err = res.Image.Digest()
		return res, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range o.Lock.Platforms {
		os, arch, _ := strings.Cut(p, "/")
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: res.Images[p],
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: os, Architecture: arch}}})
	}
	res.Index = idx
	res.Digest, err = idx.Digest()
	return res, err
}

// artifacts are the inputs of a build: downloaded ones in the cache, local
// ones where the lock points (not copied: they are read in place). Each is
// hashed before its first use in this build unless it was verified as it
// was downloaded just now; a layer cache hit does not use it, so costs
// nothing.
type artifacts struct {
	cache    *cas.Cache
	mu       sync.Mutex
	paths    map[string]string
	sizes    map[string]int64
	local    map[string]bool
	verified map[string]bool
}

// path returns the verified cached file for a sha256.
func (a *artifacts) path(sum string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.paths[sum]
	if !ok {
		return "", fmt.Errorf("artifact sha256:%s was not fetched", sum)
	}
	if !a.verified[sum] {
		var err error
		if a.local[sum] {
			err = cas.VerifyFile(p, sum, a.sizes[sum])
		} else {
			err = a.cache.Verify(sum)
		}
		if err != nil {
			return "", err
		}
		a.verified[sum] = true
	}
	return p, nil
}

// fetchAll brings every locked artifact into the cache, several at once.
func fetchAll(ctx context.Context, o Options, f *cas.Fetcher) (*artifacts, error) {
	type want struct {
		what string
		lockfile.Artifact
	}
	var wants []want
	seen := map[string]bool{}
	for _, w := range o.Lock.Wheels {
		if !seen[w.SHA256] {
			seen[w.SHA256] = true
			wants = append(wants, want{w.Filename, w.Artifact})
		}
	}
	for _, d := range o.Lock.Debs {
		if !seen[d.SHA256] {
			seen[d.SHA256] = true
			wants = append(wants, want{d.Package, d.Artifact})
		}
	}
	var total int64
	for _, w := range wants {
		if cas.IsRemote(w.URI) && !o.Cache.Has(w.SHA256, w.Size) {
			total += w.Size
		}
	}
	bar := progress.ForStderr("fetching", total, true)
	f.Progress = bar.Add
	var mu sync.Mutex
	arts := &artifacts{cache: o.Cache, paths: map[string]string{}, sizes: map[string]int64{},
		local: map[string]bool{}, verified: map[string]bool{}}
	var remote []want
	for _, w := range wants {
		arts.sizes[w.SHA256] = w.Size
		if cas.IsRemote(w.URI) {
			remote = append(remote, w)
			continue
		}
		arts.paths[w.SHA256] = f.LocalPath(w.URI)
		arts.local[w.SHA256] = true
	}
	var missing []string
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, w := range remote {
		g.Go(func() error {
			cached := o.Cache.Has(w.SHA256, w.Size)
			p, err := f.Ensure(gctx, w.URI, w.SHA256, w.Size)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if o.Offline && errors.Is(err, cas.ErrMissing) {
					missing = append(missing, fmt.Sprintf("%s (%s, sha256:%s)", w.what, w.URI, w.SHA256))
					return nil
				}
				return fmt.Errorf("%s: %w", w.what, err)
			}
			arts.paths[w.SHA256] = p
			arts.verified[w.SHA256] = !cached
			return nil
		})
	}
	err := g.Wait()
	if total > 0 {
		bar.Done()
	}
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("--offline: %d artifact(s) are not in the cache %s:\n  %s\nrun `mlenv build` once with network access to fill it", len(missing), o.Cache.Dir, strings.Join(missing, "\n  "))
	}
	return arts, nil
}

// layerPlan is one layer to produce: a cache key that identifies its
// bytes, and how to fill its tree on a cache miss.
type layerPlan struct {
	key       string
	createdBy string
	fill      func(t *tree) (finish func() error, cleanup func(), err error)
}

func planLayers(o Options, platform string, arts *artifacts) ([]layerPlan, error) {
	l := o.Lock
	var plans []layerPlan
	keyOf := func(kind string, inputs any) (string, error) {
		return canon.SHA256(map[string]any{"format": layerFormat, "kind": kind, "epoch": Epoch(l).Unix(),
			"compression": l.Compression, "inputs": inputs})
	}
	// Debs: large ones alone, the rest together.
	var smallDebs []lockfile.Deb
	addDebLayer := func(debs []lockfile.Deb) error {
		var ids, names []string
		for _, d := range debs {
			ids = append(ids, d.SHA256)
			names = append(names, d.Package)
		}
		key, err := keyOf("debs", ids)
		if err != nil {
			return err
		}
		plans = append(plans, layerPlan{key: key, createdBy: "mlenv: debs " + strings.Join(names, " "),
			fill: func(t *tree) (func() error, func(), error) {
				for _, d := range debs {
					p, err := arts.path(d.SHA256)
					if err != nil {
						return nil, nil, fmt.Errorf("%s: %w", d.Package, err)
					}
					if err := installDeb(t, p, d); err != nil {
						return nil, nil, err
					}
				}
				return nil, nil, nil
			}})
		return nil
	}
	for _, d := range l.DebsFor(platform) {
		if d.Size >= largeArtifact {
			if err := addDebLayer([]lockfile.Deb{d}); err != nil {
				return nil, err
			}
			continue
		}
		smallDebs = append(smallDebs, d)
	}
	if len(smallDebs) > 0 {
		if err := addDebLayer(smallDebs); err != nil {
			return nil, err
		}
	}
	if l.Python != nil {
		lay := layoutFor(l.Python)
		var small []lockfile.Wheel
		addWheelLayer := func(wheels []lockfile.Wheel) error {
			var ids, names []string
			for _, w := range wheels {
				ids = append(ids, w.SHA256)
				names = append(names, w.Name)
			}
			key, err := keyOf("wheels", map[string]any{"wheels": ids, "python": l.Python})
			if err != nil {
				return err
			}
			plans = append(plans, layerPlan{key: key, createdBy: "mlenv: wheels " + strings.Join(names, " "),
				fill: func(t *tree) (func() error, func(), error) {
					var closers []io.Closer
					cleanup := func() {
						for _, c := range closers {
							c.Close()
						}
					}
					for _, w := range wheels {
						p, err := arts.path(w.SHA256)
						if err != nil {
							cleanup()
							return nil, nil, fmt.Errorf("%s: %w", w.Filename, err)
						}
						zr, err := zip.OpenReader(p)
						if err != nil {
							cleanup()
							return nil, nil, fmt.Errorf("%s: not a valid wheel (zip): %w", w.Filename, err)
						}
						zr.RegisterDecompressor(zip.Deflate, fastInflate)
						closers = append(closers, zr)
						if err := installWheel(t, &zr.Reader, w, lay); err != nil {
							cleanup()
							return nil, nil, err
						}
					}
					return nil, cleanup, nil
				}})
			return nil
		}
		for _, w := range l.WheelsFor(platform) {
			if w.Size >= largeArtifact {
				if err := addWheelLayer([]lockfile.Wheel{w}); err != nil {
					return nil, err
				}
				continue
			}
			small = append(small, w)
		}
		if len(small) > 0 {
			if err := addWheelLayer(small); err != nil {
				return nil, err
			}
		}
	}
	// Application files last: they change most often. Small sets share
	// one layer; a large one is split into its lock's chunks.
	var whole []lockfile.FileSet
	for _, f := range l.Files {
		if len(f.Chunks) <= 1 {
			whole = append(whole, f)
			continue
		}
		for j, c := range f.Chunks {
			key, err := keyOf("files-chunk", map[string]any{"dst": f.Dst, "chunk": j, "of": len(f.Chunks), "sha256": c.SHA256})
			if err != nil {
				return nil, err
			}
			f, j := f, j
			plans = append(plans, layerPlan{key: key, createdBy: fmt.Sprintf("mlenv: files %s (part %d of %d)", f.Dst, j+1, len(f.Chunks)),
				fill: func(t *tree) (func() error, func(), error) {
					fin, err := addFiles(t, o.BaseDir, f, j)
					return fin, nil, err
				}})
		}
	}
	if len(whole) > 0 {
		key, err := keyOf("files", whole)
		if err != nil {
			return nil, err
		}
		var dsts []string
		for _, f := range whole {
			dsts = append(dsts, f.Dst)
		}
		plans = append(plans, layerPlan{key: key, createdBy: "mlenv: files " + strings.Join(dsts, " "),
			fill: func(t *tree) (func() error, func(), error) {
				var checks []func() error
				for _, f := range whole {
					fin, err := addFiles(t, o.BaseDir, f, -1)
					if err != nil {
						return nil, nil, err
					}
					checks = append(checks, fin)
				}
				return func() error {
					for _, c := range checks {
						if err := c(); err != nil {
							return err
						}
					}
					return nil
				}, nil, nil
			}})
	}
	return plans, nil
}

// layerRecord is the layer cache's entry: the layer's digests and the
// blob's mtime right after it was written and hashed.
type layerRecord struct {
	layerInfo
	MtimeNs int64 `json:"mtimeNs"`
}

// produce returns the layer for a plan: from the layer cache when its key
// is known and its blob present, else built now.
func produce(o Options, p layerPlan) (*cachedLayer, error) {
	c := o.LayerCache
	meta := filepath.Join(c.Dir, "layers", strings.TrimPrefix(p.key, "sha256:")+".json")
	if b, err := os.ReadFile(meta); err == nil {
		var rec layerRecord
		if json.Unmarshal(b, &rec) == nil {
			hex := strings.TrimPrefix(rec.Digest, "sha256:")
			// A cached layer is reused only if it is provably the bytes
			// that were hashed: unchanged since (same size and mtime as
			// recorded right after writing), or re-hashed now. A corrupt
			// one is dropped and rebuilt, never shipped.
			if fi, err := os.Stat(c.Path(hex)); err == nil && fi.Size() == rec.Size {
				if fi.ModTime().UnixNano() == rec.MtimeNs || c.Verify(hex) == nil {
					return &cachedLayer{info: rec.layerInfo, path: c.Path(hex)}, nil
				}
			}
		}
	}
	t := newTree()
	finish, cleanup, err := p.fill(t)
	if cleanup != nil {
		defer cleanup()
	}
	if err != nil {
		return nil, err
	}
	info, err := writeLayer(c, t, Epoch(o.Lock).Unix(), o.Lock.Compression)
	if err != nil {
		return nil, err
	}
	if finish != nil {
		if err := finish(); err != nil {
			return nil, err
		}
	}
	rec := layerRecord{layerInfo: info}
	if fi, err := os.Stat(c.Path(strings.TrimPrefix(info.Digest, "sha256:"))); err == nil {
		rec.MtimeNs = fi.ModTime().UnixNano()
	}
	b, _ := json.Marshal(rec)
	if err := atomicfile.Write(meta, b, 0o644); err != nil {
		return nil, err
	}
	return &cachedLayer{info: info, path: c.Path(strings.TrimPrefix(info.Digest, "sha256:"))}, nil
}

func buildPlatform(ctx context.Context, o Options, platform string, arts *artifacts) (v1.Image, error) {
	base, err := loadBase(ctx, o, platform)
	if err != nil {
		return nil, err
	}
	plans, err := planLayers(o, platform, arts)
	if err != nil {
		return nil, err
	}
	layers := make([]*cachedLayer, len(plans))
	bar := progress.ForStderr(platform+": layers", int64(len(plans)), false)
	g, _ := errgroup.WithContext(ctx)
	g.SetLimit(o.Jobs)
	for i, p := range plans {
		g.Go(func() error {
			l, err := produce(o, p)
			if err != nil {
				return err
			}
			layers[i] = l
			bar.Add(1)
			return nil
		})
	}
	err = g.Wait()
	if len(plans) > 0 {
		bar.Done()
	}
	if err != nil {
		return nil, err
	}
	epoch := Epoch(o.Lock)
	img := base
	var adds []mutate.Addendum
	for i, l := range layers {
		adds = append(adds, mutate.Addendum{Layer: l, History: v1.History{
			Created: v1.Time{Time: epoch}, CreatedBy: plans[i].createdBy}})
	}
	if img, err = mutate.Append(img, adds...); err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	osName, arch, _ := strings.Cut(platform, "/")
	cf.OS, cf.Architecture = osName, arch
	cf.Created = v1.Time{Time: epoch}
	applyConfig(&cf.Config, o.Lock.Config)
	if cf.Config.Labels == nil {
		cf.Config.Labels = map[string]string{}
	}
	cf.Config.Labels[LabelLockDigest] = o.LockDigest
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return nil, err
	}
	ann := map[string]string{
		"org.opencontainers.image.created": epoch.Format(time.RFC3339),
		LabelLockDigest:                    o.LockDigest,
	}
	if o.Lock.Name != "" {
		ann["org.opencontainers.image.title"] = o.Lock.Name
	}
	if !o.Lock.Base.IsScratch() {
		ann["org.opencontainers.image.base.name"] = o.Lock.Base.Ref
		ann["org.opencontainers.image.base.digest"] = o.Lock.Base.Manifests[platform]
	}
	return mutate.Annotations(img, ann).(v1.Image), nil
}

// applyConfig merges the lock's settings over the base image's: env by
// key, labels by key, ports added; entrypoint, cmd, workdir, user replaced
// when the lock sets them.
func applyConfig(c *v1.Config, lc lockfile.ImageConfig) {
	for _, kv := range lc.Env {
		k, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, old := range c.Env {
			if strings.HasPrefix(old, k+"=") {
				c.Env[i], replaced = kv, true
			}
		}
		if !replaced {
			c.Env = append(c.Env, kv)
		}
	}
	if lc.Workdir != "" {
		c.WorkingDir = lc.Workdir
	}
	if lc.User != "" {
		c.User = lc.User
	}
	if lc.Entrypoint != nil {
		c.Entrypoint = lc.Entrypoint
		if lc.Cmd == nil {
			c.Cmd = nil // a new entrypoint does not inherit the base's arguments
		}
	}
	if lc.Cmd != nil {
		c.Cmd = lc.Cmd
	}
	for k, v := range lc.Labels {
		if c.Labels == nil {
			c.Labels = map[string]string{}
		}
		c.Labels[k] = v
	}
	for _, p := range lc.ExposedPorts {
		if !strings.Contains(p, "/") {
			p += "/tcp"
		}
		if c.ExposedPorts == nil {
			c.ExposedPorts = map[string]struct{}{}
		}
		c.ExposedPorts[p] = struct{}{}
	}
}
