// Package builder turns a lock into an OCI image, hermetically: the only
// inputs are the lock's content-addressed artifacts, and nothing of the
// host (time, user, umask, paths, core count) reaches the output.
package builder

import (
	"context"
	"fmt"
	"net/http"
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

	"github.com/mlenv/mlenv/internal/cas"
	"github.com/mlenv/mlenv/internal/localpath"
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
	// Jobs bounds parallel layer builds (default GOMAXPROCS).
	Jobs int
	// RetryBackoff is the first delay between download attempts (tests
	// shorten it); 0 means the fetcher's default.
	RetryBackoff time.Duration
	// Events, when set, counts layers built and reused.
	Events *Events
	// Limits bound what archives may unpack to (zero: the defaults).
	Limits Limits
	// HTTPClient downloads artifacts (default netx.DefaultClient: every
	// phase of a request bounded). Tests inject short timeouts.
	HTTPClient *http.Client
	// AllowOutside lists folders outside BaseDir that local inputs (files
	// sources, local artifact URIs) may come from. By default every local
	// input must lie inside BaseDir, symlinks resolved.
	AllowOutside []string
	// Progress receives progress reports (nil: none). The CLI passes one
	// that draws on a terminal; libraries never write to it themselves.
	Progress progress.Sink
	// ReverseListing hands the files walker's entries to the layer writer
	// in reverse order: --check-reproducible sets it for one of its two
	// builds, to prove that the order in which the file system lists a
	// folder never reaches the image.
	ReverseListing bool
}

// localPolicy is where local inputs may come from: BaseDir and the
// AllowOutside folders.
func (o Options) localPolicy() localpath.Policy {
	return localpath.Policy{Base: o.BaseDir, Allow: o.AllowOutside}
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
	// Verified maps each blob of the image(s) that this run hashed and
	// found matching its digest (built layers, layer cache hits, base
	// image blobs, configs and manifests from the cache) to its read-only
	// (0444) file in the cache. An output writer may hard-link exactly
	// these; any other blob it must copy and hash. Blobs that are not
	// files (configs and manifests go-containerregistry serialises) are
	// absent.
	Verified map[v1.Hash]string
}

// verifiedSet collects Result.Verified from parallel layer builds.
type verifiedSet struct {
	mu sync.Mutex
	m  map[v1.Hash]string
}

func (v *verifiedSet) add(digest, path string) {
	h, err := v1.NewHash(digest)
	if err != nil {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = map[v1.Hash]string{}
	}
	v.m[h] = path
}

// Epoch returns the time every timestamp in the image is set to: the
// lock's epoch. SOURCE_DATE_EPOCH is read by `mlenv lock`, never here: the
// lock is the build's only input.
func Epoch(l *lockfile.Lock) time.Time {
	return time.Unix(l.Epoch, 0).UTC()
}

// Build fetches what is missing and assembles the image.
func Build(ctx context.Context, o Options) (*Result, error) {
	if o.LayerCache == nil {
		o.LayerCache = o.Cache
	}
	if o.Jobs <= 0 {
		o.Jobs = runtime.GOMAXPROCS(0)
	}
	// Leftovers of killed runs (whose deferred cleanup never ran).
	o.Cache.SweepStale()
	if o.LayerCache.Dir != o.Cache.Dir {
		o.LayerCache.SweepStale()
	}
	fetcher := &cas.Fetcher{Cache: o.Cache, BaseDir: o.BaseDir, Offline: o.Offline, Backoff: o.RetryBackoff, Client: o.HTTPClient}
	arts, err := fetchAll(ctx, o, fetcher)
	if err != nil {
		return nil, err
	}
	defer arts.close()
	vs := &verifiedSet{}
	res := &Result{Images: map[string]v1.Image{}, blobDirs: []string{o.LayerCache.Dir, o.Cache.Dir}}
	defer func() { res.Verified = vs.m }()
	for _, p := range o.Lock.Platforms {
		img, err := buildPlatform(ctx, o, p, arts, vs)
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

func buildPlatform(ctx context.Context, o Options, platform string, arts *artifacts, vs *verifiedSet) (v1.Image, error) {
	base, err := loadBase(ctx, o, platform, vs)
	if err != nil {
		return nil, err
	}
	links, err := baseSymlinks(o, base)
	if err != nil {
		return nil, err
	}
	redirect := newRedirector(links)
	plans, err := planLayers(o, platform, arts, redirect)
	if err != nil {
		return nil, err
	}
	layers := make([]*cachedLayer, len(plans))
	bar := o.Progress.Start(platform+": layers", int64(len(plans)), false)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Jobs)
	for i, p := range plans {
		g.Go(func() error {
			// An interrupt stops the build between layers; a layer being
			// written is abandoned by its temp file's deferred removal.
			if err := gctx.Err(); err != nil {
				return err
			}
			l, err := produce(o, p, redirect, vs)
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
	if err := checkAcrossLayers(o, links, layers); err != nil {
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
