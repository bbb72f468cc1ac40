// Package image is the one place where mlenv names, reads and writes
// images: it parses the IMAGE and --output arguments (oci:DIR[:TAG],
// tar:FILE, tar:-, registry references), resolves a reference once to a
// digest, reads an image or index (picking a platform), writes the three
// kinds of output, names an image for statements and SBOMs, and holds the
// registry options (keychain, bounded transport, context).
//
// The verbs build on it: Parse an argument, Resolve it, then ask the
// Resolved for its digest, Image(platform), Index or Name; Write sends an
// image or index to a Ref.
package image

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Kind says where an image lives.
type Kind int

const (
	// Registry is a registry reference (repo:tag or repo@sha256:...).
	Registry Kind = iota
	// Layout is an OCI image layout folder (oci:DIR[:TAG]).
	Layout
	// Tarball is a `docker save` file (tar:FILE, tar:- for stdout).
	Tarball
)

// Annotation and label keys mlenv reads and writes.
const (
	// AnnotationRefName names an entry of an OCI layout's index.json: what
	// `skopeo copy oci:DIR:TAG` and `umoci unpack --image DIR:TAG` look for.
	AnnotationRefName = "org.opencontainers.image.ref.name"
	// AnnotationTitle is the image's human name (mlenv writes the lock's name).
	AnnotationTitle = "org.opencontainers.image.title"
	// LabelLockDigest is the config label holding the sha256 of the lock
	// the image was built from.
	LabelLockDigest = "dev.mlenv.lock.digest"
)

// Stdio is the Path of tar:- (stdout for outputs).
const Stdio = "-"

// Ref is a parsed IMAGE or --output argument.
type Ref struct {
	Kind Kind
	// Path is the layout folder or tarball file (Stdio for tar:-).
	Path string
	// Tag is the layout entry's org.opencontainers.image.ref.name ("" for
	// none); only for Layout.
	Tag string
	// Name is the registry reference; only for Registry.
	Name name.Reference
}

// String gives the argument back in the form Parse reads.
func (r Ref) String() string {
	switch r.Kind {
	case Layout:
		if r.Tag != "" {
			return "oci:" + r.Path + ":" + r.Tag
		}
		return "oci:" + r.Path
	case Tarball:
		return "tar:" + r.Path
	}
	if r.Name == nil {
		return ""
	}
	return r.Name.String()
}

// tagRe is the OCI distribution spec's tag grammar, which skopeo and umoci
// also use for layout references.
var tagRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

// Parse reads an image argument:
//
//   - oci:DIR or oci:DIR:TAG: an OCI image layout. The text after the last
//     ':' is a tag when it is a valid tag (letters, digits, '_', '.', '-',
//     at most 128, not starting with '.' or '-'); otherwise it is part of
//     the folder. This reads every reference skopeo and umoci accept the
//     same way, and still allows folders with ':' in their name: end such a
//     path with '/' (oci:./a:b/) or give a tag (oci:./a:b:latest).
//   - tar:FILE: a `docker save` tarball; tar:- is stdout (outputs only).
//   - anything else: a registry reference (host/repo:tag, repo@sha256:...).
//
// Parse looks at no file: the same text always means the same thing.
func Parse(s string) (Ref, error) {
	switch {
	case strings.HasPrefix(s, "oci:"):
		rest := strings.TrimPrefix(s, "oci:")
		dir, tag := rest, ""
		if i := strings.LastIndexByte(rest, ':'); i >= 0 && tagRe.MatchString(rest[i+1:]) {
			dir, tag = rest[:i], rest[i+1:]
		}
		if dir == "" {
			return Ref{}, fmt.Errorf("image %q: expected oci:DIR or oci:DIR:TAG with a folder, e.g. oci:./out or oci:./out:v1", s)
		}
		return Ref{Kind: Layout, Path: dir, Tag: tag}, nil
	case strings.HasPrefix(s, "tar:"):
		file := strings.TrimPrefix(s, "tar:")
		if file == "" {
			return Ref{}, fmt.Errorf("image %q: expected tar:FILE (or tar:- for stdout), e.g. tar:image.tar", s)
		}
		return Ref{Kind: Tarball, Path: file}, nil
	case s == "":
		return Ref{}, fmt.Errorf("no image given: expected oci:DIR[:TAG], tar:FILE or a registry reference")
	}
	ref, err := name.ParseReference(s)
	if err != nil {
		return Ref{}, fmt.Errorf("image %q is neither oci:DIR[:TAG], tar:FILE nor a registry reference (host/repo:tag or host/repo@sha256:...): %w", s, err)
	}
	return Ref{Kind: Registry, Name: ref}, nil
}
