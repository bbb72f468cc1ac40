package image

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"regexp"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/mlenv/mlenv/internal/atomicfile"
	"github.com/mlenv/mlenv/internal/boundedfile"
	"github.com/mlenv/mlenv/internal/cas"
)

const ociLayoutFile = `{"imageLayoutVersion":"1.0.0"}`

// maxManifest bounds the manifests read back from a layout when looking
// for blobs no entry uses.
const maxManifest = 4 << 20

func writeLayout(out Ref, c Content, o WriteOptions) error {
	dir := filepath.Clean(out.Path)
	exists, err := checkLayoutTarget(out)
	if err != nil {
		return err
	}
	if !exists {
		return writeNewLayout(out, dir, c, o)
	}
	return updateLayout(out, dir, c, o)
}

// checkLayoutTarget says whether an oci: output exists, refusing one that
// mlenv must not write into: a file, or a folder with other things in it.
func checkLayoutTarget(out Ref) (exists bool, err error) {
	dir := filepath.Clean(out.Path)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("output %s: %w", out, err)
	case !fi.IsDir():
		return false, fmt.Errorf("output %s exists and is not a folder: refusing to replace it", out)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, fmt.Errorf("output %s: %w", out, err)
	}
	if len(entries) > 0 {
		if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
			return false, fmt.Errorf("output %s exists and is not an OCI image layout (no oci-layout file): refusing to write into it; pick an empty or new folder", out)
		}
	}
	return true, nil
}

// writeNewLayout writes a whole layout next to dir and renames it into
// place: dir appears complete or not at all.
func writeNewLayout(out Ref, dir string, c Content, o WriteOptions) error {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("output %s: %w", out, err)
	}
	// A run killed before it could clean up left a folder named for its
	// pid: remove those of dead processes, then write ours.
	cas.SweepNamed(parent, "."+filepath.Base(dir))
	tmp, err := os.MkdirTemp(parent, cas.TempPattern("."+filepath.Base(dir)))
	if err != nil {
		return fmt.Errorf("output %s: %w", out, err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	w := &layoutWriter{dir: tmp, o: o, done: map[v1.Hash]bool{}}
	desc, err := w.content(c)
	if err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	if err := w.finish([]v1.Descriptor{entry(desc, out.Tag)}); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("output %s: %w", out, err)
	}
	return nil
}

// updateLayout writes into an existing empty folder or layout. Readers see
// the old index.json until the new one is complete; blobs are only added
// before that, and removed only after.
func updateLayout(out Ref, dir string, c Content, o WriteOptions) (err error) {
	// Blobs half-written by a killed run carry its pid: sweep them.
	cas.SweepDir(filepath.Join(dir, "blobs", "sha256"))
	var keep []v1.Descriptor
	if out.Tag != "" {
		old, err := readIndexJSON(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("output %s: %w", out, err)
		}
		for _, m := range old {
			if m.Annotations[AnnotationRefName] != out.Tag {
				keep = append(keep, m)
			}
		}
	}
	w := &layoutWriter{dir: dir, o: o, done: map[v1.Hash]bool{}}
	defer func() {
		if err != nil {
			for _, p := range w.created {
				os.Remove(p)
			}
		}
	}()
	desc, err := w.content(c)
	if err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	if err := w.finish(append(keep, entry(desc, out.Tag))); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	w.created = nil // index.json now refers to them
	removeUnreferenced(dir)
	return nil
}

func entry(d v1.Descriptor, tag string) v1.Descriptor {
	e := v1.Descriptor{MediaType: d.MediaType, Size: d.Size, Digest: d.Digest}
	if tag != "" {
		e.Annotations = map[string]string{AnnotationRefName: tag}
	}
	return e
}

type layoutWriter struct {
	dir     string
	o       WriteOptions
	done    map[v1.Hash]bool
	created []string // blobs this write added, removed again on failure
}

// finish writes oci-layout and index.json (atomically, last).
func (w *layoutWriter) finish(manifests []v1.Descriptor) error {
	if err := atomicfile.Write(filepath.Join(w.dir, "oci-layout"), []byte(ociLayoutFile), 0o644); err != nil {
		return err
	}
	b, err := json.MarshalIndent(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: manifests}, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(w.dir, "index.json"), append(b, '\n'), 0o644)
}

// content writes an image or index and every blob below it.
func (w *layoutWriter) content(c Content) (v1.Descriptor, error) {
	d, err := partial.Descriptor(c)
	if err != nil {
		return v1.Descriptor{}, err
	}
	img, idx, err := split(c)
	if err != nil {
		return v1.Descriptor{}, err
	}
	if idx != nil {
		err = w.index(idx)
	} else {
		err = w.image(img)
	}
	if err != nil {
		return v1.Descriptor{}, err
	}
	raw, err := c.RawManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	return *d, w.bytes(d.Digest, raw)
}

func (w *layoutWriter) index(idx v1.ImageIndex) error {
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	for _, m := range im.Manifests {
		var child Content
		switch {
		case m.MediaType.IsIndex():
			child, err = idx.ImageIndex(m.Digest)
		case m.MediaType.IsImage():
			child, err = idx.Image(m.Digest)
		default:
			return fmt.Errorf("index entry %s has media type %s: only images and indexes can be written", m.Digest, m.MediaType)
		}
		if err != nil {
			return err
		}
		if _, err := w.content(child); err != nil {
			return err
		}
	}
	return nil
}

func (w *layoutWriter) image(img v1.Image) error {
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		size, err := l.Size()
		if err != nil {
			return err
		}
		if err := w.blob(d, size, l.Compressed); err != nil {
			return err
		}
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	cn, err := img.ConfigName()
	if err != nil {
		return err
	}
	return w.bytes(cn, cfg)
}

func (w *layoutWriter) bytes(h v1.Hash, b []byte) error {
	return w.blob(h, int64(len(b)), func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}

// blob puts the blob with digest h into blobs/, from BlobFile's file when
// there is one, else from open. Every byte that lands in the output is
// hashed on the way, except a hard link to a verified read-only file.
func (w *layoutWriter) blob(h v1.Hash, size int64, open func() (io.ReadCloser, error)) error {
	if w.done[h] {
		return nil
	}
	if h.Algorithm != "sha256" {
		return fmt.Errorf("blob %s: only sha256 digests are supported", h)
	}
	dst := filepath.Join(w.dir, "blobs", "sha256", h.Hex)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	src, verified := w.sourceFile(h)
	// Already there from an earlier write of this layout: a hard link to
	// the very file the caller verified in this run needs no second look;
	// anything else is re-hashed, and replaced if it no longer matches.
	if verified && sameFile(dst, src) {
		w.done[h] = true
		return nil
	}
	if got, err := hashFile(dst); err == nil && got == h.Hex {
		w.done[h] = true
		return nil
	}
	var err error
	if src != "" {
		err = w.fromFile(h, size, src, verified, dst)
	} else {
		err = w.fromStream(h, size, open, dst)
	}
	if err != nil {
		return err
	}
	w.done[h] = true
	w.created = append(w.created, dst)
	return nil
}

func (w *layoutWriter) sourceFile(h v1.Hash) (string, bool) {
	if w.o.BlobFile == nil {
		return "", false
	}
	return w.o.BlobFile(h)
}

func (w *layoutWriter) fromFile(h v1.Hash, size int64, src string, verified bool, dst string) error {
	if fi, err := os.Stat(src); err == nil && verified && fi.Mode().IsRegular() && fi.Mode().Perm()&0o222 == 0 && fi.Size() == size {
		if err := linkInto(src, dst); err == nil {
			return nil
		}
		// Another file system, or links not allowed: copy below.
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("blob %s: %w", h, err)
	}
	defer in.Close()
	return w.commit(h, size, dst, src, func(tmp *os.File) (hash.Hash, error) {
		if cloneFile(tmp, in) == nil {
			return hashOf(tmp) // the clone is hashed: a reflink copies no check
		}
		sum := sha256.New()
		_, err := io.Copy(io.MultiWriter(tmp, sum), in)
		return sum, err
	})
}

func (w *layoutWriter) fromStream(h v1.Hash, size int64, open func() (io.ReadCloser, error), dst string) error {
	rc, err := open()
	if err != nil {
		return fmt.Errorf("blob %s: %w", h, err)
	}
	defer rc.Close()
	return w.commit(h, size, dst, "", func(tmp *os.File) (hash.Hash, error) {
		sum := sha256.New()
		var r io.Reader = rc
		if size >= 0 {
			// One byte more than declared is enough to tell a longer blob.
			r = io.LimitReader(rc, size+1)
		}
		_, err := io.Copy(io.MultiWriter(tmp, sum), r)
		return sum, err
	})
}

// commit fills a temporary file with fill, checks its digest and size and
// renames it to dst.
func (w *layoutWriter) commit(h v1.Hash, size int64, dst, from string, fill func(*os.File) (hash.Hash, error)) error {
	tmp, err := os.CreateTemp(filepath.Dir(dst), cas.TempPattern("."+h.Hex[:12]))
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	sum, err := fill(tmp)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	var n int64
	if err == nil {
		n, err = tmp.Seek(0, io.SeekEnd)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("blob %s: %w", h, err)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != h.Hex || (size >= 0 && n != size) {
		where := ""
		if from != "" {
			where = " in " + from
		}
		return fmt.Errorf("blob %s%s does not match its digest (got sha256:%s, %d bytes; want %d bytes): refusing to write a corrupt image; if it comes from the cache, delete that file and build again", h, where, got, n, size)
	}
	return os.Rename(tmp.Name(), dst)
}

// linkInto hard-links src as dst, atomically replacing a stale dst.
func linkInto(src, dst string) error {
	tmp := dst + ".link-tmp"
	os.Remove(tmp)
	if err := os.Link(src, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

func hashOf(f *os.File) (hash.Hash, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	sum := sha256.New()
	_, err := io.Copy(sum, f)
	return sum, err
}

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sum, _, err := cas.HashReader(f)
	return sum, err
}

// readIndexJSON reads a layout's top-level entries.
func readIndexJSON(dir string) ([]v1.Descriptor, error) {
	b, err := readBounded(filepath.Join(dir, "index.json"), maxIndexJSON)
	if err != nil {
		return nil, err
	}
	var im v1.IndexManifest
	if err := json.Unmarshal(b, &im); err != nil {
		return nil, fmt.Errorf("%s/index.json: %w", dir, err)
	}
	return im.Manifests, nil
}

// readBounded reads a layout's small file (index.json, a manifest):
// regular files only (a FIFO would block), at most limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	b, err := boundedfile.ReadRegular(path, limit)
	var nr *boundedfile.NotRegularError
	if errors.As(err, &nr) {
		return nil, fmt.Errorf("layout file %s is %s, not a regular file: an image is read from regular files only", path, nr.Kind)
	}
	return b, err
}

var hexName = regexp.MustCompile(`^[0-9a-f]{64}$`)

// removeUnreferenced deletes the sha256 blobs that no entry of index.json
// reaches any more (a replaced image's layers). Anything it cannot read
// stops it: a blob is removed only when it is surely unused.
func removeUnreferenced(dir string) {
	top, err := readIndexJSON(dir)
	if err != nil {
		return
	}
	used := map[string]bool{}
	var walk func(d v1.Descriptor) error
	walk = func(d v1.Descriptor) error {
		if used[d.Digest.String()] {
			return nil
		}
		used[d.Digest.String()] = true
		if !d.MediaType.IsIndex() && !d.MediaType.IsImage() {
			return nil
		}
		b, err := readBounded(filepath.Join(dir, "blobs", d.Digest.Algorithm, d.Digest.Hex), maxManifest)
		if err != nil {
			return err
		}
		// Every place a manifest, index or artifact manifest names a blob.
		var m struct {
			Config    *v1.Descriptor  `json:"config"`
			Layers    []v1.Descriptor `json:"layers"`
			Manifests []v1.Descriptor `json:"manifests"`
			Blobs     []v1.Descriptor `json:"blobs"`
			Subject   *v1.Descriptor  `json:"subject"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		children := append(append(m.Layers, m.Manifests...), m.Blobs...)
		if m.Config != nil {
			children = append(children, *m.Config)
		}
		if m.Subject != nil {
			children = append(children, *m.Subject)
		}
		for _, c := range children {
			if err := walk(c); err != nil {
				return err
			}
		}
		return nil
	}
	for _, d := range top {
		if walk(d) != nil {
			return
		}
	}
	blobs := filepath.Join(dir, "blobs", "sha256")
	entries, err := os.ReadDir(blobs)
	if err != nil {
		return
	}
	for _, e := range entries {
		if hexName.MatchString(e.Name()) && !used["sha256:"+e.Name()] {
			os.Remove(filepath.Join(blobs, e.Name()))
		}
	}
}

// sameFile says whether a and b are the same file (one inode).
func sameFile(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}
