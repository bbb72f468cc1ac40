package builder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/mlenv/mlenv/image"
	"github.com/mlenv/mlenv/internal/boundedfile"
	"github.com/mlenv/mlenv/internal/cas"
	"github.com/mlenv/mlenv/lockfile"
)

// loadBase returns the base image for a platform. Registry bases are
// copied into the cache (whose blobs/sha256 folder is an OCI blob store)
// and read from there, so that --offline works and every blob is verified
// against its digest on the way in. Base layers are never rewritten.
func loadBase(ctx context.Context, o Options, platform string, vs *verifiedSet) (v1.Image, error) {
	b := o.Lock.Base
	if b.IsScratch() {
		img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
		return mutate.ConfigMediaType(img, types.OCIConfigJSON), nil
	}
	h, err := v1.NewHash(b.Manifests[platform])
	if err != nil {
		return nil, fmt.Errorf("base %s: lock has no manifest digest for %s", b.Ref, platform)
	}
	if dir, ok := strings.CutPrefix(b.Ref, "oci:"); ok {
		// A local input: inside the project unless allowed (the lock
		// checked it too, but the lock may come from elsewhere), read
		// through the image package (regular files only, bounded index).
		p, err := lockfile.LayoutBaseDir(o.localPolicy(), dir)
		if err != nil {
			return nil, err
		}
		r, err := image.Resolve(ctx, image.Ref{Kind: image.Layout, Path: p}, image.Options{})
		if err != nil {
			return nil, fmt.Errorf("base %s: %w", b.Ref, err)
		}
		var img v1.Image
		if r.IsIndex() {
			idx, err := r.Index()
			if err != nil {
				return nil, err
			}
			img, err = idx.Image(h)
		} else {
			img, err = r.Image("")
		}
		if err != nil {
			return nil, fmt.Errorf("base %s: %w", b.Ref, err)
		}
		return verifiedDigest(img, h, b.Ref)
	}
	// Every cached blob of the base is re-hashed before use (in
	// parallel); a corrupt one is removed, so the base is pulled again,
	// or, offline, the error names it.
	var corrupt error
	if img, err := cachedImage(o.Cache, h); err == nil && imageComplete(o.Cache, img) {
		if corrupt = verifyImageBlobs(ctx, o.Cache, img, h, vs); corrupt == nil {
			return img, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	if o.Offline {
		if corrupt != nil {
			return nil, fmt.Errorf("base %s@%s: %w; --offline forbids pulling it again", b.Ref, h, corrupt)
		}
		return nil, fmt.Errorf("base %s@%s: %w, and --offline forbids pulling it", b.Ref, h, cas.ErrMissing)
	}
	ref, err := name.ParseReference(b.Ref)
	if err != nil {
		return nil, err
	}
	dref := ref.Context().Digest(h.String())
	// The default keychain, every phase bounded (a hung registry ends with
	// an error naming it), then the caller's options.
	rimg, err := remote.Image(dref, image.Options{Remote: o.RemoteOptions}.RemoteOptions(ctx)...)
	if err != nil {
		return nil, fmt.Errorf("pulling base %s: %w", dref, err)
	}
	if err := storeImage(o.Cache, rimg, h); err != nil {
		return nil, fmt.Errorf("caching base %s: %w", dref, err)
	}
	img, err := cachedImage(o.Cache, h)
	if err != nil {
		return nil, err
	}
	// Blobs just stored were hashed by Put; ones that were already there
	// are hashed now.
	if err := verifyImageBlobs(ctx, o.Cache, img, h, vs); err != nil {
		return nil, fmt.Errorf("base %s: %w", dref, err)
	}
	return img, nil
}

// verifyImageBlobs re-hashes the manifest, config and layers of a cached
// image, several layers at once, and records them in vs. It reports the
// first corrupt blob (which Verify removed).
func verifyImageBlobs(ctx context.Context, c *cas.Cache, img v1.Image, manifest v1.Hash, vs *verifiedSet) error {
	digests := []v1.Hash{manifest}
	cfg, err := img.ConfigName()
	if err != nil {
		return err
	}
	digests = append(digests, cfg)
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		digests = append(digests, d)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, d := range digests {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			if err := c.Verify(d.Hex); err != nil {
				return err
			}
			vs.add(d.String(), c.Path(d.Hex))
			return nil
		})
	}
	return g.Wait()
}

// cachedImage reads an image whose manifest, config and layers are blobs
// in the cache.
func cachedImage(c *cas.Cache, h v1.Hash) (v1.Image, error) {
	if !c.Has(h.Hex, -1) {
		return nil, fmt.Errorf("manifest %s: %w", h, cas.ErrMissing)
	}
	return partial.CompressedToImage(&cacheImageCore{c: c, digest: h})
}

type cacheImageCore struct {
	c      *cas.Cache
	digest v1.Hash
}

func (ci *cacheImageCore) RawManifest() ([]byte, error) { return readVerified(ci.c, ci.digest) }

// maxSmallBlob bounds manifests and configs read whole into memory.
const maxSmallBlob = 16 << 20

// readVerified reads a small blob (manifest, config) and checks its digest.
func readVerified(c *cas.Cache, h v1.Hash) ([]byte, error) {
	b, err := boundedfile.ReadRegular(c.Path(h.Hex), maxSmallBlob)
	var tl *boundedfile.TooLargeError
	if errors.As(err, &tl) {
		return nil, fmt.Errorf("cached blob %s is larger than %d bytes: not a manifest or config", c.Path(h.Hex), maxSmallBlob)
	}
	if err != nil {
		return nil, err
	}
	if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != h.Hex {
		return nil, fmt.Errorf("cached blob %s does not match its digest %s: remove it and build again", c.Path(h.Hex), h)
	}
	return b, nil
}

func (ci *cacheImageCore) MediaType() (types.MediaType, error) {
	m, err := partial.Manifest(ci)
	if err != nil {
		return "", err
	}
	if m.MediaType == "" {
		return types.OCIManifestSchema1, nil
	}
	return m.MediaType, nil
}

func (ci *cacheImageCore) RawConfigFile() ([]byte, error) {
	m, err := partial.Manifest(ci)
	if err != nil {
		return nil, err
	}
	return readVerified(ci.c, m.Config.Digest)
}

func (ci *cacheImageCore) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	m, err := partial.Manifest(ci)
	if err != nil {
		return nil, err
	}
	for _, d := range m.Layers {
		if d.Digest == h {
			return &cacheBlob{c: ci.c, desc: d}, nil
		}
	}
	if m.Config.Digest == h {
		return &cacheBlob{c: ci.c, desc: m.Config}, nil
	}
	return nil, fmt.Errorf("blob %s is not part of image %s", h, ci.digest)
}

type cacheBlob struct {
	c    *cas.Cache
	desc v1.Descriptor
}

func (b *cacheBlob) Digest() (v1.Hash, error)            { return b.desc.Digest, nil }
func (b *cacheBlob) Size() (int64, error)                { return b.desc.Size, nil }
func (b *cacheBlob) MediaType() (types.MediaType, error) { return b.desc.MediaType, nil }

// Compressed streams the blob, hashing it on the way: a reader that sees
// EOF has seen bytes that match the digest, else an error (a copy into a
// tar or a registry fails rather than ship changed bytes).
func (b *cacheBlob) Compressed() (io.ReadCloser, error) {
	f, err := os.Open(b.c.Path(b.desc.Digest.Hex))
	if err != nil {
		return nil, err
	}
	check := hashingCheck("cached blob "+b.c.Path(b.desc.Digest.Hex), sha256.New, b.desc.Digest.Hex, hex.EncodeToString)
	return readCloser{ReadCloser: io.NopCloser(check(f)), f: f}, nil
}

func verifiedDigest(img v1.Image, want v1.Hash, what string) (v1.Image, error) {
	got, err := img.Digest()
	if err != nil {
		return nil, err
	}
	if got != want {
		return nil, fmt.Errorf("base %s: manifest digest is %s, the lock says %s", what, got, want)
	}
	return img, nil
}

func imageComplete(c *cas.Cache, img v1.Image) bool {
	layers, err := img.Layers()
	if err != nil {
		return false
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil || !c.Has(d.Hex, -1) {
			return false
		}
	}
	cfg, err := img.ConfigName()
	return err == nil && c.Has(cfg.Hex, -1)
}

// storeImage writes manifest, config and layers into the cache, each
// verified against its digest.
func storeImage(c *cas.Cache, img v1.Image, want v1.Hash) error {
	raw, err := img.RawManifest()
	if err != nil {
		return err
	}
	if err := c.Put(bytes.NewReader(raw), want.Hex, int64(len(raw))); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	if err := c.Put(bytes.NewReader(cfg), cfgName.Hex, int64(len(cfg))); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		if c.Has(d.Hex, -1) {
			continue
		}
		size, err := l.Size()
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		err = c.Put(rc, d.Hex, size)
		rc.Close()
		if err != nil {
			return fmt.Errorf("layer %s: %w", d, err)
		}
	}
	return nil
}

var errMultiPlatformTar = errors.New("tar: output holds one image; this lock has several platforms: use oci:DIR or a registry reference")
