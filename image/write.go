package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/mlenv/mlenv/internal/cas"
)

// Content is what Write sends: a v1.Image or a v1.ImageIndex.
type Content interface {
	partial.Describable
	RawManifest() ([]byte, error)
}

// WriteOptions configure Write.
type WriteOptions struct {
	// Options are the registry settings for registry outputs.
	Options
	// BlobFile, when set, names a file on disk that holds the blob with
	// digest h (a cache entry), so that an oci: output can take it from
	// there instead of streaming it. verified says the caller checked the
	// file's bytes against h in this run.
	//
	// The layout writer hard-links such a file only when it is verified
	// AND read-only (no write bit: 0444), so that the output and the cache
	// cannot corrupt each other through a shared inode; otherwise it
	// clones it (FICLONE reflink, where the file system has them) or
	// copies it, hashing the bytes, and refuses a blob whose bytes do not
	// match h. The cost of not linking: one read of every blob, and one
	// write where reflinks are not available.
	BlobFile func(h v1.Hash) (path string, verified bool)
	// Stdout receives tar:- (default os.Stdout).
	Stdout io.Writer
}

// ErrMultiPlatformTar says that a tarball output got an index.
var ErrMultiPlatformTar = errors.New("tar: output holds one image; this is a multi-platform index: use oci:DIR or a registry reference")

// tarballTag is the RepoTags entry of tar: outputs: `docker load` names
// the loaded image after it.
const tarballTag = "mlenv.local/image:latest"

// Write sends an image or index to out. Nothing half-written is left
// behind on error:
//
//   - oci:DIR: a new DIR is written next to its final place and renamed
//     into it. An existing DIR is accepted only when it is empty or an OCI
//     layout (a mistyped --output never deletes someone's files), and is
//     updated in place (so oci:. works): new blobs first, then index.json
//     replaced atomically, then blobs no entry references any more are
//     removed. Without a TAG the layout ends up holding exactly this image;
//     with oci:DIR:TAG the entry tagged TAG is replaced (annotation
//     org.opencontainers.image.ref.name) and other entries are kept, as
//     skopeo and umoci do.
//   - tar:FILE: one image (`docker load` format), written to a temporary
//     file and renamed over FILE. A symbolic link is followed: its target
//     is replaced and the link kept. A FIFO or character device (/dev/null,
//     /dev/stdout to a pipe) is written in place, never replaced by a file.
//     tar:- writes to o.Stdout.
//   - a registry reference: pushed with o's keychain and timeouts.
func Write(ctx context.Context, out Ref, c Content, o WriteOptions) error {
	img, idx, err := split(c)
	if err != nil {
		return err
	}
	switch out.Kind {
	case Layout:
		return writeLayout(out, c, o)
	case Tarball:
		if idx != nil {
			return ErrMultiPlatformTar
		}
		return writeTarball(out, img, o)
	case Registry:
		if out.Name == nil {
			return errors.New("empty registry reference")
		}
		if idx != nil {
			err = remote.WriteIndex(out.Name, idx, o.RemoteOptions(ctx)...)
		} else {
			err = remote.Write(out.Name, img, o.RemoteOptions(ctx)...)
		}
		if err != nil {
			return fmt.Errorf("pushing to %s: %w", out, err)
		}
		return nil
	}
	return fmt.Errorf("unknown output kind %d", out.Kind)
}

func split(c Content) (v1.Image, v1.ImageIndex, error) {
	switch x := c.(type) {
	case v1.ImageIndex:
		return nil, x, nil
	case v1.Image:
		return x, nil, nil
	}
	return nil, nil, fmt.Errorf("write: %T is neither an image nor an index", c)
}

func writeTarball(out Ref, img v1.Image, o WriteOptions) error {
	tag, err := name.NewTag(tarballTag)
	if err != nil {
		return err
	}
	if out.Path == Stdio {
		w := o.Stdout
		if w == nil {
			w = os.Stdout
		}
		if err := tarball.Write(tag, img, w); err != nil {
			return fmt.Errorf("writing the tarball to stdout: %w", err)
		}
		return nil
	}
	target := out.Path
	if fi, err := os.Stat(target); err == nil && !fi.Mode().IsRegular() {
		if fi.IsDir() {
			return fmt.Errorf("output %s is a folder: expected tar:FILE (or oci:%s for an OCI layout)", out, out.Path)
		}
		// A FIFO or a device: replacing it by a regular file would break
		// whoever reads it (or, as root, /dev/null for everyone).
		f, err := os.OpenFile(target, os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("opening %s (a %s) for writing: %w", target, fi.Mode().Type(), err)
		}
		err = tarball.Write(tag, img, f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("writing %s: %w", out, err)
		}
		return nil
	}
	if lfi, err := os.Lstat(target); err == nil && lfi.Mode()&os.ModeSymlink != 0 {
		// Renaming over the link would replace the link itself.
		if target, err = filepath.EvalSymlinks(target); err != nil {
			return fmt.Errorf("output %s is a symbolic link that does not resolve: %w", out, err)
		}
	}
	if err := replaceableTarball(target); err != nil {
		return fmt.Errorf("output %s: %w", out, err)
	}
	cas.SweepNamed(filepath.Dir(target), "."+filepath.Base(target))
	tmp, err := os.CreateTemp(filepath.Dir(target), cas.TempPattern("."+filepath.Base(target)))
	if err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	err = tarball.Write(tag, img, tmp)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	return os.Rename(tmp.Name(), target)
}

// replaceableTarball refuses to replace an existing file that is neither
// empty nor a tar archive: `--output tar:mlenv.lock` (typed for --lock),
// or a wheel of the build, was silently replaced by the image. A tar
// archive's first header has the ustar magic at offset 257 (POSIX and GNU
// formats; tarball.Write writes one).
func replaceableTarball(p string) error {
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	var hdr [512]byte
	n, err := io.ReadFull(f, hdr[:])
	if n == 0 && (err == io.EOF) {
		return nil
	}
	if n < len(hdr) || !bytes.HasPrefix(hdr[257:], []byte("ustar")) {
		return fmt.Errorf("%s exists and is not a tar archive: refusing to replace it with the image; remove it or pick another name", p)
	}
	return nil
}

// CheckOutput refuses, before any work, an output that Write would refuse
// for what is already there: an oci: target that is a file or a foreign
// folder, a tar: target that is a folder or a file that is not a tarball
// (the lock or a wheel, typed by mistake). A build can then fail in a
// second instead of after its whole run. Registry outputs are not checked.
func CheckOutput(out Ref) error {
	switch out.Kind {
	case Layout:
		_, err := checkLayoutTarget(out)
		return err
	case Tarball:
		if out.Path == Stdio {
			return nil
		}
		target := out.Path
		if t, err := filepath.EvalSymlinks(target); err == nil {
			target = t
		}
		fi, err := os.Stat(target)
		if err != nil {
			return nil // absent (or a dangling link: Write says why)
		}
		if fi.IsDir() {
			return fmt.Errorf("output %s is a folder: expected tar:FILE (or oci:%s for an OCI layout)", out, out.Path)
		}
		if !fi.Mode().IsRegular() {
			return nil // a FIFO or device is written in place
		}
		if err := replaceableTarball(target); err != nil {
			return fmt.Errorf("output %s: %w", out, err)
		}
	}
	return nil
}
