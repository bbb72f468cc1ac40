package builder

import (
	"archive/tar"
	"archive/zip"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"sync"
	"time"

	kflate "github.com/klauspost/compress/flate"

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
// less than compressing, and a stored or incompressible member (stored
// blocks inside its deflate stream) next to nothing.

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

// writeSpliced writes t as a spliced gzip stream to out and returns the
// diffID.
func writeSpliced(out io.Writer, t *tree, epoch int64, comp lockfile.Compression) ([]byte, error) {
	if _, err := out.Write(gzipHeader); err != nil {
		return nil, err
	}
	zw, err := kflate.NewWriter(out, comp.Level)
	if err != nil {
		return nil, err
	}
	diff, crc, size := sha256.New(), crc32.NewIEEE(), &countWriter{}
	rt := &router{u: io.MultiWriter(diff, crc, size), z: zw}
	tw := tar.NewWriter(rt)
	mtime := time.Unix(epoch, 0).UTC()
	buf := make([]byte, 1<<20)
	sorted := t.sorted()
	var toSplice []*entry
	for _, e := range sorted {
		if spliceable(e) {
			toSplice = append(toSplice, e)
		}
	}
	done := make(chan struct{})
	defer close(done)
	ahead := verifyAhead(toSplice, done)
	for _, e := range sorted {
		if err := tw.WriteHeader(tarHeader(e, mtime)); err != nil {
			return nil, fmt.Errorf("%s: %w", e.path, err)
		}
		if e.kind != kindFile {
			continue
		}
		if !spliceable(e) {
			if err := copyContent(tw, e, buf); err != nil {
				return nil, err
			}
			continue
		}
		// What the compressor holds ends on a byte boundary; the member's
		// stream follows; the compressor starts afresh after it, with no
		// history (its matches must not reach into the member's bytes).
		if err := zw.Flush(); err != nil {
			return nil, err
		}
		rt.splicing = true
		if err := spliceMember(out, tw, e, ahead[e], buf); err != nil {
			return nil, fmt.Errorf("%s (from %s): %w", e.path, e.owner, err)
		}
		rt.splicing = false
		zw.Reset(out)
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	var trailer [8]byte
	binary.LittleEndian.PutUint32(trailer[:4], crc.Sum32())
	binary.LittleEndian.PutUint32(trailer[4:], uint32(size.n)) // ISIZE: the size modulo 2^32
	if _, err := out.Write(trailer[:]); err != nil {
		return nil, err
	}
	return diff.Sum(nil), nil
}

// chunkSize is the unit workers hand to the writer: 4 stored blocks of
// the largest size, so that stored members' blocks do not depend on how
// the content was cut (every chunk but a member's last is full).
const chunkSize = 4 * 65535

// chunksAhead bounds what one worker holds for the writer (1 MiB): with
// at most 8 workers a layer holds about 13 MiB of buffers, inflater state
// included, whatever its members' sizes.
const chunksAhead = 4

var chunkPool = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// verified is one spliceable member being read by a worker: its content
// in order, then its deflate bounds and whether every check passed.
type verified struct {
	chunks chan *[]byte
	err    error // read after chunks is closed
	bounds deflate.Bounds
	raw    io.ReaderAt
}

// verifyAhead starts workers that read the spliceable entries in order,
// each worker taking every n-th one: inflate (or read a stored member),
// check against RECORD, size and CRC-32, and pass the content on in
// chunks. The writer takes them in order; a worker is at most chunksAhead
// chunks ahead, so memory stays bounded whatever the sizes. Closing done
// stops them.
func verifyAhead(entries []*entry, done <-chan struct{}) map[*entry]*verified {
	out := make(map[*entry]*verified, len(entries))
	var list []*verified
	for _, e := range entries {
		v := &verified{chunks: make(chan *[]byte, chunksAhead)}
		out[e] = v
		list = append(list, v)
	}
	workers := min(runtime.GOMAXPROCS(0), 8, len(entries))
	for w := 0; w < workers; w++ {
		go func() {
			// One inflater per worker, its buffers reused for every member.
			dr := deflate.NewReader(nil, 0)
			for i := w; i < len(entries); i += workers {
				v := list[i]
				v.err = readMember(entries[i], v, dr, done)
				close(v.chunks)
				if v.err == errStopped {
					return
				}
			}
		}()
	}
	return out
}

var errStopped = fmt.Errorf("stopped")

// readMember is one worker's job for one entry; dr is the worker's
// inflater.
func readMember(e *entry, v *verified, dr *deflate.Reader, done <-chan struct{}) error {
	f := e.member
	raw, err := f.OpenRaw()
	if err != nil {
		return err
	}
	ra, isRA := raw.(io.ReaderAt)
	if !isRA {
		return fmt.Errorf("zip member %s cannot be read at offsets", f.Name)
	}
	v.raw = ra
	csize := int64(f.CompressedSize64)
	var content io.Reader
	deflated := f.Method != zip.Store
	if !deflated {
		if csize != e.size {
			return fmt.Errorf("stored zip member %s is %d bytes, its header says %d", f.Name, csize, e.size)
		}
		content = io.NewSectionReader(ra, 0, csize)
	} else {
		dr.Reset(ra, csize)
		content = dr
	}
	memberCRC := crc32.NewIEEE()
	// One byte past the declared size is read to see a member that
	// inflates to more (the cap archive/zip enforces on the classic path).
	checked := io.TeeReader(io.LimitReader(content, e.size+1), memberCRC)
	if e.check != nil {
		checked = e.check(checked)
	}
	var n int64
	for n < e.size {
		bp := chunkPool.Get().(*[]byte)
		k, err := io.ReadFull(checked, (*bp)[:min(chunkSize, e.size-n)])
		if err != nil {
			chunkPool.Put(bp)
			if err == io.ErrUnexpectedEOF || err == io.EOF {
				return fmt.Errorf("inflates to %d bytes, the zip declares %d: corrupt wheel", n+int64(k), e.size)
			}
			return err
		}
		*bp = (*bp)[:k]
		select {
		case v.chunks <- bp:
		case <-done:
			return errStopped
		}
		n += int64(k)
	}
	if err := atEOF(checked); err != nil {
		return err
	}
	if f.CRC32 != 0 && memberCRC.Sum32() != f.CRC32 {
		return fmt.Errorf("zip member %s: CRC-32 %08x does not match the zip's %08x: corrupt wheel", f.Name, memberCRC.Sum32(), f.CRC32)
	}
	if deflated {
		b, ok := dr.Bounds()
		if !ok {
			return fmt.Errorf("zip member %s: deflate stream did not end", f.Name)
		}
		v.bounds = b
	}
	return nil
}

// spliceMember writes a verified member: its content to tw (the
// uncompressed side: diffID, CRC), its compressed form to out (the
// deflate stream copied, or stored blocks).
func spliceMember(out io.Writer, tw io.Writer, e *entry, v *verified, buf []byte) error {
	stored := e.member.Method == zip.Store
	for bp := range v.chunks {
		chunk := *bp
		_, err := tw.Write(chunk)
		if err == nil && stored {
			err = deflate.WriteStoredBytes(out, chunk)
		}
		*bp = (*bp)[:cap(*bp)]
		chunkPool.Put(bp)
		if err != nil {
			return err
		}
	}
	if v.err != nil {
		return v.err
	}
	if stored {
		return nil
	}
	_, err := deflate.Copy(out, io.NewSectionReader(v.raw, 0, v.bounds.Bytes()), v.bounds, buf)
	return err
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
