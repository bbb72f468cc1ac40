package verify

// This file is verify's one door to images. It calls go-containerregistry
// directly today; when the image package lands it becomes a thin call to
// it (parse oci:/tar:/registry references, resolve once to a digest).

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/mlenv/mlenv/internal/netx"
)

// Target is an image resolved once: everything verify checks after this
// is about Digest, never the reference it came from.
type Target struct {
	// Name is the repository ("host/team/train") or the local path.
	Name string
	// Digest is the image's manifest digest.
	Digest v1.Hash
	// Ref is the digest reference for registry images; nil for local ones
	// (oci:, tar:), whose statements must come from a bundle.
	Ref *name.Digest
	// Labels of the image config.
	Labels map[string]string
	// Arch is the image config's architecture (amd64, arm64).
	Arch string
	// Created is the image config's creation time (RFC 3339), if any.
	Created string
}

// RemoteOptions is what every registry call of verify uses: the Docker
// keychain, the bounded netx transport, the caller's context.
func RemoteOptions(ctx context.Context, extra ...remote.Option) []remote.Option {
	return append([]remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithTransport(netx.Transport(netx.DefaultTimeouts))}, extra...)
}

// IsDigestRef says whether a registry reference names a digest (what the
// admission webhook requires unless the policy lets it resolve tags).
func IsDigestRef(ref string) bool {
	r, err := name.ParseReference(ref)
	if err != nil {
		return false
	}
	_, ok := r.(name.Digest)
	return ok
}

// Resolve reads IMAGE (a registry reference, oci:DIR or tar:FILE) and
// fixes its digest. A registry index is refused: verify one platform's
// image by digest.
func Resolve(ctx context.Context, image string, opts []remote.Option) (*Target, error) {
	var img v1.Image
	t := &Target{}
	switch {
	case strings.HasPrefix(image, "oci:"):
		dir := strings.TrimPrefix(image, "oci:")
		lp, err := layout.FromPath(dir)
		if err != nil {
			return nil, fmt.Errorf("reading %s: not an OCI image layout: %w", image, err)
		}
		idx, err := lp.ImageIndex()
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", image, err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", image, err)
		}
		if len(im.Manifests) != 1 || im.Manifests[0].MediaType.IsIndex() {
			return nil, fmt.Errorf("%s holds %d entries or an index; verify needs exactly one image", image, len(im.Manifests))
		}
		if img, err = idx.Image(im.Manifests[0].Digest); err != nil {
			return nil, fmt.Errorf("reading %s: %w", image, err)
		}
		t.Name = dir
	case strings.HasPrefix(image, "tar:"):
		file := strings.TrimPrefix(image, "tar:")
		var err error
		if img, err = tarball.ImageFromPath(file, nil); err != nil {
			return nil, fmt.Errorf("reading %s: %w", image, err)
		}
		t.Name = file
	default:
		ref, err := name.ParseReference(image)
		if err != nil {
			return nil, fmt.Errorf("image %q is not a registry reference, oci:DIR or tar:FILE: %w", image, err)
		}
		desc, err := remote.Get(ref, opts...)
		if err != nil {
			return nil, fmt.Errorf("resolving %s: %w", image, err)
		}
		if desc.MediaType.IsIndex() {
			return nil, fmt.Errorf("%s is a multi-platform index (%s): verify each platform's image by digest", image, desc.Digest)
		}
		if img, err = desc.Image(); err != nil {
			return nil, fmt.Errorf("reading %s: %w", image, err)
		}
		d := ref.Context().Digest(desc.Digest.String())
		t.Ref, t.Name = &d, ref.Context().String()
	}
	dg, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("digest of %s: %w", image, err)
	}
	if t.Ref != nil && t.Ref.DigestStr() != dg.String() {
		return nil, fmt.Errorf("registry served %s for %s", dg, t.Ref)
	}
	t.Digest = dg
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config of %s: %w", image, err)
	}
	t.Labels = cf.Config.Labels
	t.Arch = cf.Architecture
	if !cf.Created.IsZero() {
		t.Created = cf.Created.UTC().Format("2006-01-02T15:04:05Z")
	}
	return t, nil
}

// ResolveDigestRef pins a registry reference to the digest it names now
// ("host/repo@sha256:..."); a digest reference is returned as it is.
func ResolveDigestRef(ref string, opts []remote.Option) (string, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", fmt.Errorf("image %q: %w", ref, err)
	}
	if d, ok := r.(name.Digest); ok {
		return d.String(), nil
	}
	desc, err := remote.Head(r, opts...)
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", ref, err)
	}
	return r.Context().Digest(desc.Digest.String()).String(), nil
}
