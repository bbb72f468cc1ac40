package verify

// This file is verify's one door to images: the image package parses the
// argument (oci:/tar:/registry) and resolves it once to a digest.

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/mlenv/mlenv/image"
)

// Target is an image resolved once: everything verify checks after this
// is about Digest, never the reference it came from.
type Target struct {
	// Name is the repository ("host/team/train"), or a local image's own
	// name (see image.Resolved.Name): never a local path.
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

// RemoteOptions is what every registry call of verify uses: the image
// package's (Docker keychain, the bounded netx transport, ctx), then extra.
func RemoteOptions(ctx context.Context, extra ...remote.Option) []remote.Option {
	return image.Options{Remote: extra}.RemoteOptions(ctx)
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

// Resolve reads IMAGE (a registry reference, oci:DIR[:TAG] or tar:FILE)
// through the image package and fixes its digest once. A multi-platform
// index is refused: verify one platform's image by digest.
func Resolve(ctx context.Context, arg string, opts []remote.Option) (*Target, error) {
	res, img, err := image.ResolveSingle(ctx, arg, image.Options{Remote: opts})
	if err != nil {
		return nil, err
	}
	t := &Target{Name: res.Name(), Digest: res.Digest()}
	if d, ok := res.DigestRef(); ok {
		t.Ref = &d
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config of %s: %w", arg, err)
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
