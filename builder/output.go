package builder

import (
	"context"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/mlenv/mlenv/image"
	"github.com/mlenv/mlenv/internal/cas"
)

// LabelLockDigest is the config label holding the lock's digest.
const LabelLockDigest = image.LabelLockDigest

// Write parses output (oci:DIR[:TAG], tar:FILE, tar:- or a registry
// reference) and writes r there with the default registry options.
func Write(ctx context.Context, r *Result, output string) error {
	out, err := image.Parse(output)
	if err != nil {
		return err
	}
	return WriteTo(ctx, r, out, image.WriteOptions{})
}

// WriteTo writes r's image or index to out (see image.Write). Unless o
// says otherwise, an oci: output takes layer blobs from the build's caches:
// blobs this run verified (r.Verified, read-only files) are hard-linked,
// any other is cloned or copied with every byte hashed.
func WriteTo(ctx context.Context, r *Result, out image.Ref, o image.WriteOptions) error {
	if o.BlobFile == nil {
		o.BlobFile = r.cachedBlob
	}
	var c image.Content = r.Image
	if r.Index != nil {
		if out.Kind == image.Tarball {
			return errMultiPlatformTar // says why in the lock's words
		}
		c = r.Index
	}
	err := image.Write(ctx, out, c, o)
	// A hard link changes the blob's inode (link count, ctime), not its
	// bytes: renew the seals so that the next build need not re-hash.
	for _, p := range r.Verified {
		cas.ResealFile(p)
	}
	return err
}

// cachedBlob finds a blob in the build's caches; verified says this run
// checked it (see Result.Verified).
func (r *Result) cachedBlob(h v1.Hash) (path string, verified bool) {
	if p, ok := r.Verified[h]; ok {
		return p, true
	}
	for _, dir := range r.blobDirs {
		p := filepath.Join(dir, "blobs", h.Algorithm, h.Hex)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, false
		}
	}
	return "", false
}
