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

// decompress opens member m according to its file name suffix.
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
		zr, err := xz.NewReader(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.name, err)
		}
		return io.NopCloser(zr), nil
	case strings.HasSuffix(m.name, ".zst"):
		zr, err := zstd.NewReader(raw)
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

// ControlFiles returns the files of control.tar.* by base name (control,
// md5sums, conffiles, postinst, ...).
func (d *Deb) ControlFiles() (map[string][]byte, error) {
	m, err := d.find("control.tar")
	if err != nil {
		return nil, err
	}
	rc, err := d.decompress(m)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", m.name, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		name := strings.TrimPrefix(h.Name, "./")
		if strings.Contains(name, "/") || h.Size > 8<<20 {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("reading %s/%s: %w", m.name, name, err)
		}
		files[name] = b
	}
	return files, nil
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
			c.Fields[len(c.Fields)-1].Value += "\n" + text
			continue
		}
		name, value, ok := strings.Cut(text, ":")
		if !ok || name == "" {
			return c, fmt.Errorf("control line %d: expected \"Field: value\", got %q", line, text)
		}
		c.Fields = append(c.Fields, Field{Name: name, Value: strings.TrimSpace(value)})
	}
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

// ReadControl opens a .deb and parses its control file.
func ReadControl(r io.ReaderAt, size int64) (Control, *Deb, error) {
	d, err := Open(r, size)
	if err != nil {
		return Control{}, nil, err
	}
	files, err := d.ControlFiles()
	if err != nil {
		return Control{}, nil, err
	}
	raw, ok := files["control"]
	if !ok {
		return Control{}, nil, errors.New("control archive has no control file")
	}
	c, err := ParseControl(raw)
	return c, d, err
}
