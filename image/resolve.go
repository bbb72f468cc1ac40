package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// maxIndexJSON bounds how much of a layout's index.json is read: real ones
// are a few hundred bytes per entry.
const maxIndexJSON = 4 << 20

// DefaultName is the name of an image that carries none: a local layout or
// tarball is never named after its path, which would leak the build
// machine's folders into signed statements.
const DefaultName = "image"

// Resolved is an image argument pinned to one digest. Everything after
// Resolve is about that digest: a registry tag is looked up once, and a
// layout entry is chosen once.
type Resolved struct {
	Ref Ref
	// Descriptor is the manifest's (or index's) descriptor: digest, media
	// type, size and, for layout entries, index.json's annotations.
	Descriptor v1.Descriptor

	img v1.Image
	idx v1.ImageIndex
}

// Resolve pins ref to a digest and opens what it names. A layout with
// several entries needs a tag (oci:DIR:TAG); with one entry, that entry is
// taken. tar:- (stdin) is not readable: save the stream to a file first.
func Resolve(ctx context.Context, ref Ref, o Options) (*Resolved, error) {
	switch ref.Kind {
	case Layout:
		return resolveLayout(ref)
	case Tarball:
		if ref.Path == Stdio {
			return nil, fmt.Errorf("tar:- can only be an output; to read an image from stdin, save it to a file and pass tar:FILE")
		}
		if err := checkTarball(ref.Path); err != nil {
			return nil, fmt.Errorf("reading %s: %w", ref, err)
		}
		img, err := tarball.ImageFromPath(ref.Path, nil)
		if err != nil {
			return nil, fmt.Errorf("reading %s (expected a `docker save` tarball): %w", ref, err)
		}
		d, err := partial.Descriptor(img)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", ref, err)
		}
		return &Resolved{Ref: ref, Descriptor: *d, img: img}, nil
	case Registry:
		if ref.Name == nil {
			return nil, errors.New("empty registry reference")
		}
		desc, err := remote.Get(ref.Name, o.RemoteOptions(ctx)...)
		if err != nil {
			return nil, fmt.Errorf("resolving %s: %w", ref, err)
		}
		r := &Resolved{Ref: ref, Descriptor: desc.Descriptor}
		if desc.MediaType.IsIndex() {
			r.idx, err = desc.ImageIndex()
		} else {
			r.img, err = desc.Image()
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s@%s: %w", ref.Name.Context(), desc.Digest, err)
		}
		return r, nil
	}
	return nil, fmt.Errorf("unknown image kind %d", ref.Kind)
}

func resolveLayout(ref Ref) (*Resolved, error) {
	fi, err := os.Stat(filepath.Join(ref.Path, "index.json"))
	if err != nil {
		return nil, fmt.Errorf("reading %s: not an OCI image layout (expected DIR/index.json): %w", ref, err)
	}
	if fi.Size() > maxIndexJSON {
		return nil, fmt.Errorf("reading %s: index.json is %d bytes, more than the %d an OCI layout index needs", ref, fi.Size(), maxIndexJSON)
	}
	if err := checkLayoutFiles(ref.Path); err != nil {
		return nil, fmt.Errorf("reading %s: %w", ref, err)
	}
	lp, err := layout.FromPath(ref.Path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", ref, err)
	}
	top, err := lp.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", ref, err)
	}
	im, err := top.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("reading %s/index.json: %w", ref.Path, err)
	}
	var picked []v1.Descriptor
	var tags []string
	for _, m := range im.Manifests {
		tag := m.Annotations[AnnotationRefName]
		if tag != "" {
			tags = append(tags, tag)
		}
		if ref.Tag == "" || tag == ref.Tag {
			picked = append(picked, m)
		}
	}
	sort.Strings(tags)
	switch {
	case len(picked) == 0 && ref.Tag != "":
		return nil, fmt.Errorf("%s: no entry is tagged %q (%s has tags: %s)", ref, ref.Tag, ref.Path, orNone(tags))
	case len(picked) == 0:
		return nil, fmt.Errorf("%s: the layout's index.json lists no image", ref)
	case len(picked) > 1 && ref.Tag == "":
		return nil, fmt.Errorf("%s holds %d entries (tags: %s): name one as oci:%s:TAG", ref, len(picked), orNone(tags), ref.Path)
	case len(picked) > 1:
		return nil, fmt.Errorf("%s: %d entries are tagged %q: the layout is ambiguous", ref, len(picked), ref.Tag)
	}
	r := &Resolved{Ref: ref, Descriptor: picked[0]}
	if r.Descriptor.MediaType.IsIndex() {
		r.idx, err = top.ImageIndex(r.Descriptor.Digest)
	} else {
		r.img, err = top.Image(r.Descriptor.Digest)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s entry %s: %w", ref, r.Descriptor.Digest, err)
	}
	return r, nil
}

// ResolveSingle parses and resolves arg (a registry reference,
// oci:DIR[:TAG] or tar:FILE) to one single-platform image, and checks that
// its manifest hashes to the digest it resolved to: what a statement or a
// check names is what the bytes are. A multi-platform index is refused:
// statements and checks are about one platform's image, named by digest.
// attest, its training image and verify all resolve through here.
func ResolveSingle(ctx context.Context, arg string, o Options) (*Resolved, v1.Image, error) {
	ref, err := Parse(arg)
	if err != nil {
		return nil, nil, err
	}
	r, err := Resolve(ctx, ref, o)
	if err != nil {
		return nil, nil, err
	}
	if r.IsIndex() {
		return nil, nil, fmt.Errorf("%s is a multi-platform index (%s): name one platform's image, by its digest", arg, r.Digest())
	}
	img, err := r.Image("")
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", arg, err)
	}
	d, err := img.Digest()
	if err != nil {
		return nil, nil, fmt.Errorf("digest of %s: %w", arg, err)
	}
	if d != r.Digest() {
		return nil, nil, fmt.Errorf("%s resolved to %s but its manifest hashes to %s", arg, r.Digest(), d)
	}
	return r, img, nil
}

// Digest is the pinned manifest (or index) digest.
func (r *Resolved) Digest() v1.Hash { return r.Descriptor.Digest }

// DigestRef is repository@digest for registry images; ok is false for
// local ones, which have no repository to attach anything to.
func (r *Resolved) DigestRef() (d name.Digest, ok bool) {
	if r.Ref.Kind != Registry {
		return name.Digest{}, false
	}
	return r.Ref.Name.Context().Digest(r.Descriptor.Digest.String()), true
}

// IsIndex says whether the digest names a multi-platform index.
func (r *Resolved) IsIndex() bool { return r.idx != nil }

// Index is the multi-platform index; an error for a single image.
func (r *Resolved) Index() (v1.ImageIndex, error) {
	if r.idx == nil {
		return nil, fmt.Errorf("%s is a single image, not a multi-platform index", r.Ref)
	}
	return r.idx, nil
}

// Image is the image itself, or the one for platform ("linux/arm64",
// "linux/arm64/v8") out of an index. platform "" accepts only a single
// image; a single image is returned whatever platform says (its config
// names its own platform).
func (r *Resolved) Image(platform string) (v1.Image, error) {
	if r.img != nil {
		return r.img, nil
	}
	return PickPlatform(r.Ref.String(), r.idx, platform)
}

// PickPlatform returns the image for platform out of idx; what names idx in
// error messages.
func PickPlatform(what string, idx v1.ImageIndex, platform string) (v1.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("reading %s's index: %w", what, err)
	}
	var have []string
	for _, m := range im.Manifests {
		if m.Platform == nil || !m.MediaType.IsImage() {
			continue
		}
		p := m.Platform.OS + "/" + m.Platform.Architecture
		if platform != "" && (p == platform || p+"/"+m.Platform.Variant == platform) {
			return idx.Image(m.Digest)
		}
		if m.Platform.Variant != "" {
			p += "/" + m.Platform.Variant
		}
		have = append(have, p)
	}
	if platform == "" {
		return nil, fmt.Errorf("%s is a multi-platform index (%s): pick one with --platform", what, orNone(have))
	}
	return nil, fmt.Errorf("%s has no image for %s (it has %s)", what, platform, orNone(have))
}

// Name is what statements and SBOMs call the image; never a local path:
//
//  1. a registry image: its repository (host/path, no tag);
//  2. a layout entry whose org.opencontainers.image.ref.name is a full
//     reference (it has a '/'): that reference's repository; a bare tag
//     such as "v1" or "latest" names a version, not an image, so it is
//     passed over;
//  3. the manifest's (or index's) org.opencontainers.image.title
//     annotation, else the config's label of that name (mlenv writes the
//     lock's name there);
//  4. DefaultName ("image").
func (r *Resolved) Name() string {
	if r.Ref.Kind == Registry {
		return r.Ref.Name.Context().Name()
	}
	if rn := r.Descriptor.Annotations[AnnotationRefName]; strings.Contains(rn, "/") {
		if ref, err := name.ParseReference(rn); err == nil {
			return ref.Context().Name()
		}
	}
	if t := r.title(); t != "" {
		return t
	}
	return DefaultName
}

// title reads the title annotation or label; errors just mean "none".
func (r *Resolved) title() string {
	if r.idx != nil {
		if im, err := r.idx.IndexManifest(); err == nil && im.Annotations[AnnotationTitle] != "" {
			return im.Annotations[AnnotationTitle]
		}
		return ""
	}
	if m, err := r.img.Manifest(); err == nil && m.Annotations[AnnotationTitle] != "" {
		return m.Annotations[AnnotationTitle]
	}
	if cf, err := r.img.ConfigFile(); err == nil {
		return cf.Config.Labels[AnnotationTitle]
	}
	return ""
}

// ReadImage is Parse, Resolve and Image(platform) in one call, for
// commands that only need the image's content.
func ReadImage(ctx context.Context, arg, platform string, o Options) (v1.Image, error) {
	ref, err := Parse(arg)
	if err != nil {
		return nil, err
	}
	r, err := Resolve(ctx, ref, o)
	if err != nil {
		return nil, err
	}
	return r.Image(platform)
}

func orNone(list []string) string {
	if len(list) == 0 {
		return "none"
	}
	return strings.Join(list, ", ")
}
