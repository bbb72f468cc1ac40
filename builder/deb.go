package builder

import (
	"archive/tar"
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/mlenv/mlenv/internal/debpkg"
	"github.com/mlenv/mlenv/lockfile"
)

// installDeb adds a .deb's files to t and registers the package with dpkg
// the way distroless images do (/var/lib/dpkg/status.d/<package>, plus the
// file list in /var/lib/dpkg/info), so that SBOM scanners see it without
// rewriting the base image's status file.
//
// Deb data is a compressed stream with no random access, and the layer is
// written in path order, not archive order: file contents are spooled to
// an unlinked temporary file (nothing is left behind, even on a crash) and
// read back from there. Memory stays bounded whatever the package holds.
// f is the verified deb (d.Size bytes), read at offsets only.
func installDeb(t *tree, f io.ReaderAt, d lockfile.Deb) error {
	owner := d.Package + "_" + d.Version + "_" + d.Architecture + ".deb"
	ctl, deb, ctlFiles, err := debpkg.ReadControlFiles(f, d.Size)
	if err != nil {
		return fmt.Errorf("%s: %w", owner, err)
	}
	if ctl.Package() != d.Package || ctl.Version() != d.Version {
		return fmt.Errorf("%s: control file says %s %s: the lock is out of date", owner, ctl.Package(), ctl.Version())
	}
	// From here on, names come from the validated control file.
	pkg := ctl.Package()
	tr, closer, err := deb.Data()
	if err != nil {
		return fmt.Errorf("%s: %w", owner, err)
	}
	defer closer.Close()
	sp, err := newSpool(t)
	if err != nil {
		return fmt.Errorf("%s: %w", owner, err)
	}
	bud := t.archiveBudget(owner)
	var list []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: data archive: %w", owner, err)
		}
		if err := bud.add(1, 0); err != nil {
			return err
		}
		p, err := cleanPath(owner, h.Name)
		if err != nil {
			return err
		}
		if p == "" {
			continue
		}
		e := &entry{path: p, mode: h.Mode & 0o7777, owner: owner}
		switch h.Typeflag {
		case tar.TypeDir:
			e.kind = kindDir
		case tar.TypeReg: // the reader already maps the old TypeRegA here
			if err := bud.add(0, h.Size); err != nil {
				return err
			}
			open, err := sp.add(tr, h.Size)
			if err != nil {
				return fmt.Errorf("%s: %s: %w (truncated package?)", owner, h.Name, err)
			}
			e.kind, e.open, e.size = kindFile, open, h.Size
		case tar.TypeSymlink:
			e.kind, e.link = kindSymlink, h.Linkname
		case tar.TypeLink:
			src, err := cleanPath(owner, h.Linkname)
			if err != nil {
				return err
			}
			e.kind, e.link = kindHard, src
		default:
			return &PathError{owner, h.Name, fmt.Sprintf("has unsupported type %q (devices and fifos are not installed)", h.Typeflag)}
		}
		if err := t.add(e); err != nil {
			return err
		}
		list = append(list, "/"+p)
	}
	if err := sp.flush(); err != nil {
		return fmt.Errorf("%s: %w", owner, err)
	}
	status := ctl.Format("Package", debpkg.Field{Name: "Status", Value: "install ok installed"})
	if err := t.addData(owner, "var/lib/dpkg/status.d/"+pkg, 0o644, status); err != nil {
		return err
	}
	sort.Strings(list)
	var lb bytes.Buffer
	for _, p := range list {
		lb.WriteString(p + "\n")
	}
	if err := t.addData(owner, "var/lib/dpkg/info/"+pkg+".list", 0o644, lb.Bytes()); err != nil {
		return err
	}
	if md5, ok := ctlFiles["md5sums"]; ok {
		if err := t.addData(owner, "var/lib/dpkg/info/"+pkg+".md5sums", 0o644, md5); err != nil {
			return err
		}
	}
	return nil
}

// spool is one unlinked temporary file holding streamed contents back to
// back; entries read their part through io.SectionReader.
type spool struct {
	f   *os.File
	w   *bufio.Writer
	off int64
}

func newSpool(t *tree) (*spool, error) {
	f, err := os.CreateTemp(t.tmpDir, ".spool-*")
	if err != nil {
		return nil, fmt.Errorf("creating a spool file: %w", err)
	}
	// Unlinked at once: the space returns when the file is closed, and a
	// killed build leaves nothing in the cache.
	os.Remove(f.Name())
	t.closers = append(t.closers, func() { f.Close() })
	return &spool{f: f, w: bufio.NewWriterSize(f, 1<<20)}, nil
}

// add copies exactly size bytes of r and returns how to read them back.
func (s *spool) add(r io.Reader, size int64) (func() (io.ReadCloser, error), error) {
	n, err := io.Copy(s.w, io.LimitReader(r, size))
	if err == nil && n != size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, err
	}
	off := s.off
	s.off += size
	return func() (io.ReadCloser, error) {
		return io.NopCloser(io.NewSectionReader(s.f, off, size)), nil
	}, nil
}

func (s *spool) flush() error {
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("writing the spool file: %w", err)
	}
	return nil
}
