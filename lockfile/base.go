package lockfile

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/mlenv/mlenv/image"
	"github.com/mlenv/mlenv/internal/localpath"
	"github.com/mlenv/mlenv/internal/netx"
)

// resolveBase pins the base image: a registry tag becomes a digest, and a
// multi-platform index is resolved to one manifest per target platform.
//
// A local layout (oci:DIR) is a local input like any other: it must lie
// inside the project folder (pol), symlinks resolved, unless the user
// allowed another folder; its layers end up in the image.
func resolveBase(ctx context.Context, ref string, pol localpath.Policy, platforms []string, opts []remote.Option) (Base, error) {
	b := Base{Ref: ref}
	if ref == "scratch" {
		return b, nil
	}
	if layoutDir, ok := strings.CutPrefix(ref, "oci:"); ok {
		dir, err := LayoutBaseDir(pol, layoutDir)
		if err != nil {
			return b, err
		}
		return resolveLayoutBase(ctx, b, dir, platforms)
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

// LayoutBaseDir is the folder of a base given as oci:DIR, checked against
// the project's local-input policy (lock and build use the same check).
func LayoutBaseDir(pol localpath.Policy, dir string) (string, error) {
	p, err := pol.Resolve(dir)
	if err != nil {
		return "", fmt.Errorf("base oci:%s: %w", dir, err)
	}
	if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("base oci:%s: not a folder (an OCI image layout is a folder holding index.json)", dir)
	}
	return p, nil
}

// resolveLayoutBase pins a local layout's one entry, read through the
// image package (regular files only, bounded index).
func resolveLayoutBase(ctx context.Context, b Base, dir string, platforms []string) (Base, error) {
	r, err := image.Resolve(ctx, image.Ref{Kind: image.Layout, Path: dir}, image.Options{})
	if err != nil {
		return b, fmt.Errorf("base %s: %w", b.Ref, err)
	}
	b.Digest = r.Digest().String()
	if r.IsIndex() {
		idx, err := r.Index()
		if err != nil {
			return b, err
		}
		return pinIndex(b, idx, platforms)
	}
	img, err := r.Image("")
	if err != nil {
		return b, err
	}
	return pinImage(b, img, r.Digest(), platforms)
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
