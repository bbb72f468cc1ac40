package builder

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"

	"github.com/mlenv/mlenv/internal/cas"
	"github.com/mlenv/mlenv/lockfile"
)

// Compression settings are part of the output: changing the block size,
// the level or the library version changes layer digests. They are fixed
// here, not derived from the machine (core count never changes bytes).
const (
	gzipBlockSize   = 1 << 20 // pgzip block; each block carries the previous 32 KiB as dictionary
	zstdConcurrency = 4       // fixed, so that a 2-core and a 64-core machine write the same stream
)

// CompressorID names the compressor and its settings for provenance.
func CompressorID(c lockfile.Compression) string {
	if c.Algorithm == "zstd" {
		return fmt.Sprintf("klauspost/compress/zstd level=%d concurrency=%d", c.Level, zstdConcurrency)
	}
	pgzip := fmt.Sprintf("klauspost/pgzip level=%d block=%d", c.Level, gzipBlockSize)
	if c.Layout == lockfile.LayoutSplice {
		return fmt.Sprintf("mlenv %s (wheel layers: members' deflate streams copied from the wheels, other bytes klauspost/compress/flate level=%d); other layers %s", c.Layout, c.Level, pgzip)
	}
	return pgzip
}

// layerInfo is what the cache remembers about a written layer.
type layerInfo struct {
	Digest    string          `json:"digest"`
	DiffID    string          `json:"diffID"`
	Size      int64           `json:"size"`
	MediaType types.MediaType `json:"mediaType"`
}

// writeLayer streams t as a deterministic tar through the compressor into
// the cache, hashing the uncompressed stream (diffID) and the compressed one
// (digest) on the way: every input byte is read once.
func writeLayer(c *cas.Cache, t *tree, epoch int64, comp lockfile.Compression) (layerInfo, error) {
	if comp.Algorithm == "gzip" && comp.Layout == lockfile.LayoutSplice && splices(t) {
		return writeBlob(c, types.OCILayer, func(out *bufio.Writer) ([]byte, error) {
			return writeSpliced(out, t, epoch, comp)
		})
	}
	mt := types.OCILayer
	if comp.Algorithm == "zstd" {
		mt = types.OCILayerZStd
	}
	return writeBlob(c, mt, func(out *bufio.Writer) ([]byte, error) {
		var zw io.WriteCloser
		switch comp.Algorithm {
		case "zstd":
			enc, err := zstd.NewWriter(out, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(comp.Level)),
				zstd.WithEncoderConcurrency(zstdConcurrency), zstd.WithZeroFrames(true))
			if err != nil {
				return nil, err
			}
			zw = enc
		default:
			gz, err := pgzip.NewWriterLevel(out, comp.Level)
			if err != nil {
				return nil, err
			}
			if err := gz.SetConcurrency(gzipBlockSize, 16); err != nil {
				return nil, err
			}
			gz.Header.OS = 255 // "unknown": the host OS never leaks
			zw = gz
		}
		diff := sha256.New()
		tw := tar.NewWriter(io.MultiWriter(zw, diff))
		if err := writeTar(tw, t, epoch); err != nil {
			return nil, err
		}
		if err := tw.Close(); err != nil {
			return nil, err
		}
		if err := zw.Close(); err != nil {
			return nil, err
		}
		return diff.Sum(nil), nil
	})
}

// writeBlob runs write over a new cache blob, hashing and counting what it
// writes, and commits the blob under its digest; write returns the diffID.
// On any error the temporary file is removed: nothing half-written stays.
func writeBlob(c *cas.Cache, mt types.MediaType, write func(out *bufio.Writer) (diffID []byte, err error)) (layerInfo, error) {
	info := layerInfo{MediaType: mt}
	tmp, err := c.CreateBlobTemp()
	if err != nil {
		return info, err
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	digest := sha256.New()
	counter := &countWriter{}
	out := bufio.NewWriterSize(io.MultiWriter(tmp, digest, counter), 1<<20)
	diff, err := write(out)
	if err != nil {
		return info, err
	}
	if err := out.Flush(); err != nil {
		return info, err
	}
	if err := tmp.Close(); err != nil {
		return info, err
	}
	dhex := hex.EncodeToString(digest.Sum(nil))
	if err := c.Commit(tmp.Name(), dhex); err != nil {
		return info, err
	}
	ok = true
	info.Digest = "sha256:" + dhex
	info.DiffID = "sha256:" + hex.EncodeToString(diff)
	info.Size = counter.n
	return info, nil
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// writeTar writes the entries in sorted order with normalised metadata:
// owner 0:0 with empty names, the epoch as every mtime, no atime/ctime,
// no xattrs.
func writeTar(tw *tar.Writer, t *tree, epoch int64) error {
	mtime := time.Unix(epoch, 0).UTC()
	buf := make([]byte, 1<<20)
	for _, e := range t.sorted() {
		if err := tw.WriteHeader(tarHeader(e, mtime)); err != nil {
			return fmt.Errorf("%s: %w", e.path, err)
		}
		if e.kind != kindFile {
			continue
		}
		if err := copyContent(tw, e, buf); err != nil {
			return err
		}
	}
	return nil
}

// tarHeader is e's normalised tar header.
func tarHeader(e *entry, mtime time.Time) *tar.Header {
	h := &tar.Header{Name: e.path, Mode: e.mode, ModTime: mtime}
	switch e.kind {
	case kindDir:
		h.Typeflag = tar.TypeDir
		h.Name += "/"
	case kindFile:
		h.Typeflag = tar.TypeReg
		h.Size = e.size
	case kindSymlink:
		// Link permissions mean nothing on Linux; one value for all.
		h.Typeflag, h.Mode = tar.TypeSymlink, 0o777
		h.Linkname = e.link
	case kindHard:
		h.Typeflag = tar.TypeLink
		h.Linkname = e.link
	}
	return h
}

// copyContent writes a file entry's content, checked, to tw.
func copyContent(tw io.Writer, e *entry, buf []byte) error {
	rc, err := e.reader()
	if err != nil {
		return fmt.Errorf("%s (from %s): %w", e.path, e.owner, err)
	}
	n, err := io.CopyBuffer(tw, rc, buf)
	cerr := rc.Close()
	if err != nil {
		return fmt.Errorf("%s (from %s): %w", e.path, e.owner, err)
	}
	if cerr != nil {
		return fmt.Errorf("%s (from %s): %w", e.path, e.owner, cerr)
	}
	if n != e.size {
		return fmt.Errorf("%s (from %s): size changed while reading (%d, expected %d)", e.path, e.owner, n, e.size)
	}
	return nil
}

// cachedLayer is a layer blob that sits in the cache, with digests known:
// go-containerregistry never re-reads it to learn them.
type cachedLayer struct {
	info  layerInfo
	path  string
	index *linkIndex
}

func (l *cachedLayer) Digest() (v1.Hash, error) { return v1.NewHash(l.info.Digest) }
func (l *cachedLayer) DiffID() (v1.Hash, error) { return v1.NewHash(l.info.DiffID) }
func (l *cachedLayer) Size() (int64, error)     { return l.info.Size, nil }
func (l *cachedLayer) MediaType() (types.MediaType, error) {
	return l.info.MediaType, nil
}
func (l *cachedLayer) Compressed() (io.ReadCloser, error) { return os.Open(l.path) }
func (l *cachedLayer) Uncompressed() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, err
	}
	if l.info.MediaType == types.OCILayerZStd {
		zr, err := zstd.NewReader(f)
		if err != nil {
			f.Close()
			return nil, err
		}
		return readCloser{zr.IOReadCloser(), f}, nil
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return readCloser{zr, f}, nil
}

type readCloser struct {
	io.ReadCloser
	f *os.File
}

func (r readCloser) Close() error {
	r.ReadCloser.Close()
	return r.f.Close()
}

// hashingCheck returns an entry check that fails at EOF unless the content
// hashes to want (computed with newHash, compared by the encode function).
func hashingCheck(what string, newHash func() hash.Hash, want string, encode func([]byte) string) func(io.Reader) io.Reader {
	return func(r io.Reader) io.Reader {
		return &checkReader{r: r, h: newHash(), want: want, encode: encode, what: what}
	}
}

type checkReader struct {
	r      io.Reader
	h      hash.Hash
	want   string
	what   string
	encode func([]byte) string
}

func (c *checkReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	if err == io.EOF {
		if got := c.encode(c.h.Sum(nil)); got != c.want {
			return n, fmt.Errorf("%s: hash mismatch: expected %s, content has %s", c.what, c.want, got)
		}
	}
	return n, err
}
