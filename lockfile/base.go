package lockfile

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/mlenv/mlenv/internal/netx"
)

// resolveBase pins the base image: a registry tag becomes a digest, and a
// multi-platform index is resolved to one manifest per target platform.
func resolveBase(ctx context.Context, ref, dir string, platforms []string, opts []remote.Option) (Base, error) {
	b := Base{Ref: ref}
	if ref == "scratch" {
		return b, nil
	}
	if layoutDir, ok := strings.CutPrefix(ref, "oci:"); ok {
		return resolveLayoutBase(b, filepath.Join(dir, layoutDir), platforms)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return b, fmt.Errorf("base %q is not a registry reference: %w", ref, err)
	}
	opts = append([]remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain),
		// Every phase bounded: a hung registry ends with an error naming it.
		remote.WithTransport(netx.Transport(netx.DefaultTimeouts))}, opts...)
	desc, err := remote.Get(r, opts...)
	if err != nil {
		return b, fmt.Errorf("resolving base %s: %w", ref, err)
	}
	b.Digest = desc.Digest.String()
	// Keep the reference the user wrote, without a tag that could move.
	b.Ref = r.Context().String() + "@" + b.Digest
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return b, err
		}
		return pinIndex(b, idx, platforms)
	}
	img, err := desc.Image()
	if err != nil {
		return b, err
	}
	return pinImage(b, img, desc.Digest, platforms)
}

func resolveLayoutBase(b Base, dir string, platforms []string) (Base, error) {
	lp, err := layout.FromPath(dir)
	if err != nil {
		return b, fmt.Errorf("base %s: not an OCI image layout: %w", b.Ref, err)
	}
	idx, err := lp.ImageIndex()
	if err != nil {
		return b, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return b, err
	}
	if len(im.Manifests) != 1 {
		return b, fmt.Errorf("base %s: the layout holds %d entries; mlenv needs exactly one", b.Ref, len(im.Manifests))
	}
	d := im.Manifests[0]
	b.Digest = d.Digest.String()
	if d.MediaType.IsIndex() {
		child, err := idx.ImageIndex(d.Digest)
		if err != nil {
			return b, err
		}
		return pinIndex(b, child, platforms)
	}
	img, err := idx.Image(d.Digest)
	if err != nil {
		return b, err
	}
	return pinImage(b, img, d.Digest, platforms)
}

func pinIndex(b Base, idx v1.ImageIndex, platforms []string) (Base, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return b, err
	}
	b.Manifests = map[string]string{}
	for _, p := range platforms {
		for _, m := range im.Manifests {
			if m.Platform != nil && m.Platform.OS+"/"+m.Platform.Architecture == p {
				b.Manifests[p] = m.Digest.String()
				break
			}
		}
		if b.Manifests[p] == "" {
			return b, fmt.Errorf("base %s has no image for %s", b.Ref, p)
		}
	}
	return b, nil
}

func pinImage(b Base, img v1.Image, digest v1.Hash, platforms []string) (Base, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return b, err
	}
	got := cf.OS + "/" + cf.Architecture
	b.Manifests = map[string]string{}
	for _, p := range platforms {
		if got != p {
			return b, fmt.Errorf("base %s is a single image for %s, not %s", b.Ref, got, p)
		}
		b.Manifests[p] = digest.String()
	}
	return b, nil
}
