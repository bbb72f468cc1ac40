// Package debpkg reads Debian binary packages (.deb): the ar container, the
// control file and the data archive. It reads by offsets through
// io.ReaderAt and never extracts anything to disk.
package debpkg

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

const arMagic = "!<arch>\n"

// member is one file inside the ar container.
type member struct {
	name   string
	offset int64
	size   int64
}

// Deb is an opened .deb.
type Deb struct {
	r       io.ReaderAt
	members []member
}

// Open parses the ar container of a .deb of the given total size.
func Open(r io.ReaderAt, size int64) (*Deb, error) {
	magic := make([]byte, len(arMagic))
	if _, err := r.ReadAt(magic, 0); err != nil || string(magic) != arMagic {
		return nil, errors.New("not a Debian package: missing the ar header \"!<arch>\"")
	}
	d := &Deb{r: r}
	off := int64(len(arMagic))
	hdr := make([]byte, 60)
	for off < size {
		if _, err := r.ReadAt(hdr, off); err != nil {
			return nil, fmt.Errorf("truncated ar member header at offset %d: %w", off, err)
		}
		if string(hdr[58:60]) != "`\n" {
			return nil, fmt.Errorf("corrupt ar member header at offset %d", off)
		}
		name := strings.TrimSuffix(strings.TrimSpace(string(hdr[0:16])), "/")
		msize, err := strconv.ParseInt(strings.TrimSpace(string(hdr[48:58])), 10, 64)
		if err != nil || msize < 0 {
			return nil, fmt.Errorf("corrupt size in ar member %q", name)
		}
		start := off + 60
		if start+msize > size {
			return nil, fmt.Errorf("ar member %q runs past the end of the file (truncated package?)", name)
		}
		d.members = append(d.members, member{name: name, offset: start, size: msize})
		off = start + msize + msize%2
	}
	if len(d.members) == 0 || d.members[0].name != "debian-binary" {
		return nil, errors.New("not a Debian package: first ar member is not debian-binary")
	}
	return d, nil
}

func (d *Deb) find(prefix string) (member, error) {
	for _, m := range d.members {
		if m.name == prefix || strings.HasPrefix(m.name, prefix+".") {
			return m, nil
		}
	}
	return member{}, fmt.Errorf("package has no %s member", prefix)
}

// Decoder bounds. A hostile header must not make a decoder allocate
// gigabytes: xz and zstd size their window from the stream, so the stream
// is refused when it asks for more than these.
const (
	// MaxXZDict is xz -9's dictionary; dpkg-deb uses 8 MiB.
	MaxXZDict = 64 << 20
	// MaxZstdWindow is zstd --long=27; dpkg-deb's level uses 8 MiB or less.
	MaxZstdWindow = 128 << 20
	// maxControlTar bounds the decompressed control.tar: its members are
	// skipped, not kept, but skipping still inflates them.
	maxControlTar = 64 << 20
	// maxControlMember bounds each control member that is kept.
	maxControlMember = 16 << 20
)

// decompress opens member m according to its file name suffix. Every
// decoder streams with a fixed, bounded buffer.
func (d *Deb) decompress(m member) (io.ReadCloser, error) {
	raw := io.NewSectionReader(d.r, m.offset, m.size)
	switch {
	case strings.HasSuffix(m.name, ".gz"):
		zr, err := gzip.NewReader(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.name, err)
		}
		return zr, nil
	case strings.HasSuffix(m.name, ".xz"):
		if err := checkXZDict(io.NewSectionReader(d.r, m.offset, m.size)); err != nil {
			return nil, fmt.Errorf("%s: %w", m.name, err)
		}
		zr, err := xz.NewReader(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.name, err)
		}
		return io.NopCloser(zr), nil
	case strings.HasSuffix(m.name, ".zst"):
		zr, err := zstd.NewReader(raw, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(MaxZstdWindow), zstd.WithDecoderMaxMemory(1<<40))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.name, err)
		}
		return zr.IOReadCloser(), nil
	case strings.HasSuffix(m.name, ".bz2"):
		return io.NopCloser(bzip2.NewReader(raw)), nil
	case strings.HasSuffix(m.name, ".tar"):
		return io.NopCloser(raw), nil
	}
	return nil, fmt.Errorf("unsupported compression of %s", m.name)
}

// checkXZDict reads the first block header of an xz stream and refuses an
// LZMA2 dictionary above MaxXZDict. ulikunitz/xz's ReaderConfig.DictCap is
// a floor, not a cap (the stream's own size wins), so the header is read
// here. Later blocks of a multi-block stream are not checked.
func checkXZDict(r io.Reader) error {
	var hdr [12 + 1024]byte
	n, _ := io.ReadFull(r, hdr[:])
	b := hdr[:n]
	if len(b) < 13 || string(b[:6]) != "\xfd7zXZ\x00" {
		return errors.New("not an xz stream")
	}
	b = b[12:]
	if b[0] == 0 {
		return nil // no block: the index follows at once
	}
	size := (int(b[0]) + 1) * 4
	if len(b) < size {
		return errors.New("truncated xz block header")
	}
	h := b[1:size]
	flags := h[0]
	h = h[1:]
	varint := func() (uint64, bool) {
		var v uint64
		for i := 0; i < 9 && len(h) > 0; i++ {
			c := h[0]
			h = h[1:]
			v |= uint64(c&0x7f) << (7 * i)
			if c&0x80 == 0 {
				return v, true
			}
		}
		return 0, false
	}
	if flags&0x40 != 0 { // compressed size present
		if _, ok := varint(); !ok {
			return errors.New("corrupt xz block header")
		}
	}
	if flags&0x80 != 0 { // uncompressed size present
		if _, ok := varint(); !ok {
			return errors.New("corrupt xz block header")
		}
	}
	for i := 0; i <= int(flags&3); i++ {
		id, ok1 := varint()
		psize, ok2 := varint()
		if !ok1 || !ok2 || uint64(len(h)) < psize {
			return errors.New("corrupt xz filter flags")
		}
		props := h[:psize]
		h = h[psize:]
		if id == 0x21 && psize == 1 { // LZMA2
			code := props[0] & 0x3f
			if code > 40 {
				return errors.New("corrupt xz LZMA2 dictionary size")
			}
			dict := uint64(2|code&1) << (code/2 + 11)
			if code == 40 {
				dict = 0xffffffff
			}
			if dict > MaxXZDict {
				return fmt.Errorf("xz dictionary of %d MiB is above mlenv's limit of %d MiB (dpkg-deb uses 8 MiB)", dict>>20, MaxXZDict>>20)
			}
		}
	}
	return nil
}

// Data returns a tar reader over data.tar.*; close the closer when done.
func (d *Deb) Data() (*tar.Reader, io.Closer, error) {
	m, err := d.find("data.tar")
	if err != nil {
		return nil, nil, err
	}
	rc, err := d.decompress(m)
	if err != nil {
		return nil, nil, err
	}
	return tar.NewReader(rc), rc, nil
}

// ControlFiles returns the named top-level files of control.tar.* (e.g.
// "control", "md5sums") and nothing else: other members (maintainer
// scripts, triggers) are skipped without being kept. A kept member over
// 16 MiB, or a control.tar inflating to more than 64 MiB, is refused.
func (d *Deb) ControlFiles(names ...string) (map[string][]byte, error) {
	m, err := d.find("control.tar")
	if err != nil {
		return nil, err
	}
	rc, err := d.decompress(m)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	files := map[string][]byte{}
	capped := &capReader{r: rc, left: maxControlTar, what: m.name}
	tr := tar.NewReader(capped)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", m.name, err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		if h.Typeflag != tar.TypeReg || !want[name] {
			continue
		}
		if _, dup := files[name]; dup {
			return nil, fmt.Errorf("%s holds %s twice", m.name, name)
		}
		if h.Size > maxControlMember {
			return nil, fmt.Errorf("%s/%s is %d bytes, above the %d MiB limit", m.name, name, h.Size, maxControlMember>>20)
		}
		b, err := io.ReadAll(io.LimitReader(tr, maxControlMember))
		if err != nil {
			return nil, fmt.Errorf("reading %s/%s: %w", m.name, name, err)
		}
		files[name] = b
	}
	return files, nil
}

// capReader fails once more than left bytes were read.
type capReader struct {
	r    io.Reader
	left int64
	what string
}

func (c *capReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return n, fmt.Errorf("%s inflates to more than %d MiB: refused", c.what, maxControlTar>>20)
	}
	return n, err
}

// Control is one deb822 paragraph, its fields in file order.
type Control struct {
	Fields []Field
}

// Field is one "Name: value" (value may span continuation lines).
type Field struct {
	Name, Value string
}

// Get returns the value of a field (case-insensitive name) or "".
func (c Control) Get(name string) string {
	for _, f := range c.Fields {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// Package, Version and Architecture are the identity of a binary package.
func (c Control) Package() string      { return c.Get("Package") }
func (c Control) Version() string      { return c.Get("Version") }
func (c Control) Architecture() string { return c.Get("Architecture") }

// ParseControl parses one deb822 paragraph.
func ParseControl(b []byte) (Control, error) {
	var c Control
	// A field's continuation lines are collected and joined once the
	// field ends, as dep5's parser does: appending each to the value
	// copied it every line (a 1 MiB Description of 350,000 lines took
	// over two minutes; a control member may be 16 MiB).
	var cont []string
	endField := func() {
		if len(cont) > 0 {
			c.Fields[len(c.Fields)-1].Value += "\n" + strings.Join(cont, "\n")
			cont = cont[:0]
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if strings.TrimSpace(text) == "" {
			if len(c.Fields) > 0 {
				break
			}
			continue
		}
		if text[0] == ' ' || text[0] == '\t' {
			if len(c.Fields) == 0 {
				return c, fmt.Errorf("control line %d: continuation line before any field", line)
			}
			cont = append(cont, text)
			continue
		}
		endField()
		name, value, ok := strings.Cut(text, ":")
		if !ok || name == "" {
			return c, fmt.Errorf("control line %d: expected \"Field: value\", got %q", line, text)
		}
		c.Fields = append(c.Fields, Field{Name: name, Value: strings.TrimSpace(value)})
	}
	endField()
	if err := sc.Err(); err != nil {
		return c, err
	}
	for _, req := range []string{"Package", "Version", "Architecture"} {
		if c.Get(req) == "" {
			return c, fmt.Errorf("control file lacks the %s field", req)
		}
	}
	return c, nil
}

// Format writes the paragraph back, fields in order, with the given extra
// fields inserted after Package (used for dpkg's "Status:" line).
func (c Control) Format(after string, extra ...Field) []byte {
	var b bytes.Buffer
	for _, f := range c.Fields {
		fmt.Fprintf(&b, "%s: %s\n", f.Name, f.Value)
		if strings.EqualFold(f.Name, after) {
			for _, e := range extra {
				fmt.Fprintf(&b, "%s: %s\n", e.Name, e.Value)
			}
		}
	}
	return b.Bytes()
}

// ReadControl opens a .deb, parses its control file and checks its
// identity fields (see Validate).
func ReadControl(r io.ReaderAt, size int64) (Control, *Deb, error) {
	c, d, _, err := ReadControlFiles(r, size)
	return c, d, err
}

// ReadControlFiles is ReadControl that also returns the control files it
// read ("control", and "md5sums" when present).
func ReadControlFiles(r io.ReaderAt, size int64) (Control, *Deb, map[string][]byte, error) {
	d, err := Open(r, size)
	if err != nil {
		return Control{}, nil, nil, err
	}
	files, err := d.ControlFiles("control", "md5sums")
	if err != nil {
		return Control{}, nil, nil, err
	}
	raw, ok := files["control"]
	if !ok {
		return Control{}, nil, nil, errors.New("control archive has no control file")
	}
	c, err := ParseControl(raw)
	if err != nil {
		return c, nil, nil, err
	}
	if err := c.Validate(); err != nil {
		return c, nil, nil, err
	}
	return c, d, files, nil
}
