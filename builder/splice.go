package builder

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"
	kflate "github.com/klauspost/compress/flate"

	"github.com/mlenv/mlenv/internal/cas"
	"github.com/mlenv/mlenv/internal/deflate"
	"github.com/mlenv/mlenv/lockfile"
)

// A spliced gzip layer (lock compression layout "splice-v1") is one gzip
// member whose deflate stream is made of parts: tar headers, padding and
// every byte mlenv writes itself, compressed here; and each wheel
// member's deflate stream copied from the wheel as it is (stored members
// become stored blocks). Deflate streams join without recompression (see
// internal/deflate). The uncompressed tar is the one writeTar writes, so
// the diffID is the same as the classic layout's; only the compressed
// bytes differ, and they depend only on the wheels' bytes, the tree and
// mlenv's version.
//
// Every member is still inflated once: checked against RECORD's hash and
// size and the zip's CRC-32, and hashed into the diffID. Inflating costs
// a fraction of compressing.

// gzipHeader: no name, no mtime, OS "unknown" (255).
var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255}

// spliceable reports whether e's content can be copied as its wheel
// member's compressed bytes.
func spliceable(e *entry) bool {
	return e.member != nil && e.kind == kindFile && e.size > 0 &&
		(e.member.Method == zip.Deflate || e.member.Method == zip.Store)
}

// splices reports whether a layer has anything to splice: wheel layers.
func splices(t *tree) bool {
	for _, e := range t.entries {
		if spliceable(e) {
			return true
		}
	}
	return false
}

// router sends the tar stream to the uncompressed hashes always and to
// the compressor unless a spliced member's content is passing.
type router struct {
	u        io.Writer
	z        io.Writer
	splicing bool
}

func (r *router) Write(p []byte) (int, error) {
	if _, err := r.u.Write(p); err != nil {
		return 0, err
	}
	if r.splicing {
		return len(p), nil
	}
	return r.z.Write(p)
}

// writeSplicedLayer writes t as a spliced gzip layer into the cache.
func writeSplicedLayer(c *cas.Cache, t *tree, epoch int64, comp lockfile.Compression) (layerInfo, error) {
	info := layerInfo{MediaType: types.OCILayer}
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
	if _, err := out.Write(gzipHeader); err != nil {
		return info, err
	}
	zw, err := kflate.NewWriter(out, comp.Level)
	if err != nil {
		return info, err
	}
	diff, crc, size := sha256.New(), crc32.NewIEEE(), &countWriter{}
	rt := &router{u: io.MultiWriter(diff, crc, size), z: zw}
	tw := tar.NewWriter(rt)
	mtime := time.Unix(epoch, 0).UTC()
	buf := make([]byte, 1<<20)
	for _, e := range t.sorted() {
		if err := tw.WriteHeader(tarHeader(e, mtime)); err != nil {
			return info, fmt.Errorf("%s: %w", e.path, err)
		}
		if e.kind != kindFile {
			continue
		}
		if !spliceable(e) {
			if err := copyContent(tw, e, buf); err != nil {
				return info, err
			}
			continue
		}
		// What the compressor holds ends on a byte boundary; the member's
		// stream follows; the compressor starts afresh after it, with no
		// history (its matches must not reach into the member's bytes).
		if err := zw.Flush(); err != nil {
			return info, err
		}
		rt.splicing = true
		if err := spliceMember(out, tw, e, buf); err != nil {
			return info, fmt.Errorf("%s (from %s): %w", e.path, e.owner, err)
		}
		rt.splicing = false
		zw.Reset(out)
	}
	if err := tw.Close(); err != nil {
		return info, err
	}
	if err := zw.Close(); err != nil {
		return info, err
	}
	var trailer [8]byte
	binary.LittleEndian.PutUint32(trailer[:4], crc.Sum32())
	binary.LittleEndian.PutUint32(trailer[4:], uint32(size.n))
	if _, err := out.Write(trailer[:]); err != nil {
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
	info.DiffID = "sha256:" + hex.EncodeToString(diff.Sum(nil))
	info.Size = counter.n
	return info, nil
}

// spliceMember inflates e's member into tw (the uncompressed side: RECORD
// check, diffID, CRC) and copies its compressed bytes to out.
func spliceMember(out io.Writer, tw io.Writer, e *entry, buf []byte) error {
	f := e.member
	raw, err := f.OpenRaw()
	if err != nil {
		return err
	}
	ra, isRA := raw.(io.ReaderAt)
	if !isRA {
		return fmt.Errorf("zip member %s cannot be read at offsets", f.Name)
	}
	csize := int64(f.CompressedSize64)
	memberCRC := crc32.NewIEEE()
	var content io.Reader
	var dr *deflate.Reader
	if f.Method == zip.Store {
		if csize != e.size {
			return fmt.Errorf("stored zip member %s is %d bytes, its header says %d", f.Name, csize, e.size)
		}
		content = io.NewSectionReader(ra, 0, csize)
	} else {
		dr = deflate.NewReader(ra, csize)
		defer dr.Close()
		content = dr
	}
	// One byte past the declared size is read to see a member that
	// inflates to more (the cap archive/zip enforces on the classic path).
	checked := io.TeeReader(io.LimitReader(content, e.size+1), memberCRC)
	if e.check != nil {
		checked = e.check(checked)
	}
	if f.Method == zip.Store {
		// Stored: the content is read once, hashed and written as stored
		// blocks in the same pass.
		if err := deflate.WriteStored(out, io.TeeReader(checked, tw), e.size, nil); err != nil {
			return err
		}
		if err := atEOF(checked); err != nil {
			return err
		}
	} else {
		n, err := io.CopyBuffer(tw, io.LimitReader(checked, e.size), buf)
		if err != nil {
			return err
		}
		if n != e.size {
			return fmt.Errorf("inflates to %d bytes, the zip declares %d: corrupt wheel", n, e.size)
		}
		if err := atEOF(checked); err != nil {
			return err
		}
		b, ok := dr.Bounds()
		if !ok {
			return fmt.Errorf("zip member %s: deflate stream did not end", f.Name)
		}
		if _, err := deflate.Copy(out, io.NewSectionReader(ra, 0, b.Bytes()), b, buf); err != nil {
			return err
		}
	}
	if f.CRC32 != 0 && memberCRC.Sum32() != f.CRC32 {
		return fmt.Errorf("zip member %s: CRC-32 %08x does not match the zip's %08x: corrupt wheel", f.Name, memberCRC.Sum32(), f.CRC32)
	}
	return nil
}

// atEOF reads r to its end, which must come now: that is when entry
// checks compare hashes.
func atEOF(r io.Reader) error {
	var one [1]byte
	n, err := r.Read(one[:])
	if n > 0 {
		return fmt.Errorf("inflates to more than the size the zip declares: refused (a zip bomb, or a corrupt wheel)")
	}
	if err == io.EOF {
		return nil
	}
	if err == nil {
		return atEOF(r)
	}
	return err
}
