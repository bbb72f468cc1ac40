package builder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Write sends the result to an output: "oci:DIR", "tar:FILE" or a
// registry reference. Files and folders are written next to their final
// place and renamed into it: a failed write leaves the old output intact.
func Write(ctx context.Context, r *Result, output string, remoteOpts ...remote.Option) error {
	switch {
	case strings.HasPrefix(output, "oci:"):
		return writeLayout(r, strings.TrimPrefix(output, "oci:"))
	case strings.HasPrefix(output, "tar:"):
		return writeTarball(r, strings.TrimPrefix(output, "tar:"))
	}
	ref, err := name.ParseReference(output)
	if err != nil {
		return fmt.Errorf("output %q is neither oci:DIR, tar:FILE nor a registry reference: %w", output, err)
	}
	opts := append([]remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}, remoteOpts...)
	if r.Index != nil {
		err = remote.WriteIndex(ref, r.Index, opts...)
	} else {
		err = remote.Write(ref, r.Image, opts...)
	}
	if err != nil {
		return fmt.Errorf("pushing to %s: %w", ref, err)
	}
	return nil
}

func writeLayout(r *Result, dir string) error {
	dir = filepath.Clean(dir)
	// Only an earlier OCI layout (or an empty folder) may be replaced: a
	// mistyped --output must never delete someone's files.
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
			return fmt.Errorf("output %s exists and is not an OCI image layout: refusing to replace it", dir)
		}
	} else if err == nil || !os.IsNotExist(err) {
		if fi, serr := os.Stat(dir); serr == nil && !fi.IsDir() {
			return fmt.Errorf("output %s exists and is not a folder", dir)
		}
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	lp, err := layout.Write(tmp, idx)
	if err != nil {
		return err
	}
	linkCachedBlobs(r, tmp)
	if r.Index != nil {
		err = lp.AppendIndex(r.Index)
	} else {
		err = lp.AppendImage(r.Image)
	}
	if err != nil {
		return fmt.Errorf("writing OCI layout: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	// Replace an existing output only once the new one is complete.
	if _, err := os.Stat(dir); err == nil {
		old := tmp + ".old"
		if err := os.Rename(dir, old); err != nil {
			return fmt.Errorf("replacing %s: %w", dir, err)
		}
		defer os.RemoveAll(old)
	}
	return os.Rename(tmp, dir)
}

func writeTarball(r *Result, file string) error {
	if r.Index != nil {
		return errMultiPlatformTar
	}
	tag, err := name.NewTag("mlenv.local/image:latest")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tarball.Write(tag, r.Image, tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", file, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}

// ReadImage opens IMAGE as the CLI contract spells it: oci:DIR (an OCI
// layout with one entry), tar:FILE (docker save / mlenv tar output) or a
// registry reference. A multi-platform index needs ReadImageFor.
func ReadImage(ctx context.Context, image string, remoteOpts ...remote.Option) (v1.Image, error) {
	return ReadImageFor(ctx, image, "", remoteOpts...)
}

// ReadImageFor is ReadImage that picks platform ("linux/arm64") out of a
// multi-platform index; "" accepts only single images.
func ReadImageFor(ctx context.Context, image, platform string, remoteOpts ...remote.Option) (v1.Image, error) {
	switch {
	case strings.HasPrefix(image, "oci:"):
		lp, err := layout.FromPath(strings.TrimPrefix(image, "oci:"))
		if err != nil {
			return nil, err
		}
		idx, err := lp.ImageIndex()
		if err != nil {
			return nil, err
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, err
		}
		if len(im.Manifests) != 1 {
			return nil, fmt.Errorf("%s holds %d entries; expected one", image, len(im.Manifests))
		}
		if !im.Manifests[0].MediaType.IsIndex() {
			return idx.Image(im.Manifests[0].Digest)
		}
		child, err := idx.ImageIndex(im.Manifests[0].Digest)
		if err != nil {
			return nil, err
		}
		return pickPlatform(image, child, platform)
	case strings.HasPrefix(image, "tar:"):
		return tarball.ImageFromPath(strings.TrimPrefix(image, "tar:"), nil)
	}
	ref, err := name.ParseReference(image)
	if err != nil {
		return nil, err
	}
	opts := append([]remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}, remoteOpts...)
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return nil, err
	}
	if !desc.MediaType.IsIndex() {
		return desc.Image()
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, err
	}
	return pickPlatform(image, idx, platform)
}

func pickPlatform(image string, idx v1.ImageIndex, platform string) (v1.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var have []string
	for _, m := range im.Manifests {
		if m.Platform == nil {
			continue
		}
		p := m.Platform.OS + "/" + m.Platform.Architecture
		if p == platform {
			return idx.Image(m.Digest)
		}
		have = append(have, p)
	}
	if platform == "" {
		return nil, fmt.Errorf("%s is a multi-platform index (%s): pick one with --platform", image, strings.Join(have, ", "))
	}
	return nil, fmt.Errorf("%s has no image for %s (it has %s)", image, platform, strings.Join(have, ", "))
}

// linkCachedBlobs hard-links the image's layers from the cache into a new
// layout, so that go-containerregistry finds them present and copies
// nothing. Blobs that cannot be linked (another file system) are copied by
// the layout writer as usual.
func linkCachedBlobs(r *Result, layoutDir string) {
	dst := filepath.Join(layoutDir, "blobs", "sha256")
	if os.MkdirAll(dst, 0o755) != nil {
		return
	}
	for _, img := range r.Images {
		layers, err := img.Layers()
		if err != nil {
			continue
		}
		for _, l := range layers {
			d, err := l.Digest()
			if err != nil {
				continue
			}
			for _, dir := range r.blobDirs {
				src := filepath.Join(dir, "blobs", "sha256", d.Hex)
				if os.Link(src, filepath.Join(dst, d.Hex)) == nil {
					break
				}
			}
		}
	}
}
