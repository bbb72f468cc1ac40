// Package cas is mlenv's content-addressed cache: blobs stored under their
// sha256, written atomically (temporary file, then rename), verified against
// their digest before anyone reads them. Two builds may share one cache: a
// blob is either absent or complete and correct.
package cas

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

var hexDigest = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ErrMissing is returned (wrapped) when an offline lookup finds no blob.
var ErrMissing = errors.New("not in the cache")

// Cache is a folder of blobs: DIR/blobs/sha256/<hex>.
type Cache struct {
	Dir string
	// FullVerify re-hashes every cache hit instead of trusting a blob whose
	// file-system state equals its seal (see seal.go).
	FullVerify bool
}

// DefaultDir is $XDG_CACHE_HOME/mlenv, else ~/.cache/mlenv.
func DefaultDir() (string, error) {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "mlenv"), nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache folder: set XDG_CACHE_HOME: %w", err)
	}
	return filepath.Join(d, "mlenv"), nil
}

// ParseSHA256 accepts "sha256:<hex>" or "<hex>" and returns the hex part.
func ParseSHA256(s string) (string, error) {
	h := strings.TrimPrefix(s, "sha256:")
	if !hexDigest.MatchString(h) {
		return "", fmt.Errorf("%q is not a sha256 digest (64 lowercase hex characters, optionally prefixed sha256:)", s)
	}
	return h, nil
}

// Path is where the blob with this hex digest lives (whether or not present).
func (c *Cache) Path(hexsum string) string {
	return filepath.Join(c.Dir, "blobs", "sha256", hexsum)
}

// Has reports whether the blob is present with the expected size (-1: any).
// Content is verified when the blob is opened with Open.
func (c *Cache) Has(hexsum string, size int64) bool {
	fi, err := os.Stat(c.Path(hexsum))
	return err == nil && fi.Mode().IsRegular() && (size < 0 || fi.Size() == size)
}

// Verify checks a cached blob before use: a blob whose seal still holds
// (unchanged through the file system since it was hashed, see seal.go) is
// accepted at the cost of two stat calls; any other is re-hashed. A blob
// that no longer matches (disk corruption, a hand edit) is removed so that
// the next fetch replaces it.
func (c *Cache) Verify(hexsum string) error {
	p := c.Path(hexsum)
	if c.sealed(hexsum) {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("blob sha256:%s: %w", hexsum, ErrMissing)
		}
		return err
	}
	defer f.Close()
	got, _, err := HashReader(f)
	if err != nil {
		return fmt.Errorf("reading cached blob %s: %w", p, err)
	}
	if got != hexsum {
		os.Remove(p)
		os.Remove(c.sealPath(hexsum))
		return fmt.Errorf("cached blob %s was corrupt (sha256 %s), removed it: run the build again to fetch it anew", p, got)
	}
	c.writeSeal(hexsum)
	return nil
}

// Put copies r into the cache, hashing as it writes, and commits the blob
// (read-only) only if its sha256 (and size, when size >= 0) match. It reads
// at most size+1 bytes: a body that does not end fails as soon as it is
// longer than the lock says, instead of filling the disk. On any mismatch
// or error nothing is left behind.
func (c *Cache) Put(r io.Reader, want string, size int64) error {
	tmp, err := c.CreateBlobTemp()
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if size >= 0 {
		r = io.LimitReader(r, size+1)
	}
	h := sha256.New()
	bp := bufPool.Get().(*[]byte)
	n, err := io.CopyBuffer(io.MultiWriter(tmp, h), r, *bp)
	bufPool.Put(bp)
	if err != nil {
		return err
	}
	if size >= 0 && n != size {
		got := fmt.Sprint(n)
		if n > size {
			got = "more"
		}
		return &MismatchError{What: "size", Want: fmt.Sprint(size), Got: got}
	}
	got := hex.EncodeToString(h.Sum(nil))
	if got != want {
		return &MismatchError{What: "sha256", Want: want, Got: got}
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := c.Commit(tmp.Name(), got); err != nil {
		return err
	}
	committed = true
	return nil
}

// MismatchError says that content did not match what the lock pins.
type MismatchError struct {
	What, Want, Got string
}

func (e *MismatchError) Error() string {
	if e.What == "size" && e.Got == "more" {
		return fmt.Sprintf("size mismatch: the lock says %s bytes, the content is longer (stopped reading there)", e.Want)
	}
	if e.What == "size" {
		return fmt.Sprintf("size mismatch: the lock says %s bytes, got %s (truncated or changed download?)", e.Want, e.Got)
	}
	return fmt.Sprintf("sha256 mismatch: the lock says %s, the content is %s", e.Want, e.Got)
}

// VerifyReader checks that r yields size bytes (size < 0: any) whose
// sha256 is hexsum; p names it in errors. A local artifact is verified
// through the descriptor the build then reads (builder's artifacts.file),
// never by path.
func VerifyReader(r io.Reader, p, hexsum string, size int64) error {
	got, n, err := HashReader(r)
	if err != nil {
		return fmt.Errorf("reading %s: %w", p, err)
	}
	if size >= 0 && n != size {
		return fmt.Errorf("%s: %w", p, &MismatchError{What: "size", Want: fmt.Sprint(size), Got: fmt.Sprint(n)})
	}
	if got != hexsum {
		return fmt.Errorf("%s: %w", p, &MismatchError{What: "sha256", Want: hexsum, Got: got})
	}
	return nil
}

// bufPool holds 1 MiB buffers: hashing large files in 32 KiB reads
// (io.Copy's default) spends more time in read calls than in sha256.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// HashReader returns the hex sha256 of everything r yields, and its size.
func HashReader(r io.Reader) (string, int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	h := sha256.New()
	n, err := io.CopyBuffer(h, r, *bp)
	if err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
