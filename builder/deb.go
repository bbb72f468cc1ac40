package builder

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/mlenv/mlenv/internal/debpkg"
	"github.com/mlenv/mlenv/lockfile"
)

// maxDebInMemory bounds what one deb may unpack to: deb data is a stream
// (no random access), so its files are held in memory until the layer is
// written.
const maxDebInMemory = 2 << 30

// installDeb adds a .deb's files to t and registers the package with dpkg
// the way distroless images do (/var/lib/dpkg/status.d/<package>, plus the
// file list in /var/lib/dpkg/info), so that SBOM scanners see it without
// rewriting the base image's status file.
func installDeb(t *tree, file string, d lockfile.Deb) error {
	owner := d.Package + "_" + d.Version + "_" + d.Architecture + ".deb"
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	ctl, deb, err := debpkg.ReadControl(f, fi.Size())
	if err != nil {
		return fmt.Errorf("%s: %w", owner, err)
	}
	if ctl.Package() != d.Package || ctl.Version() != d.Version {
		return fmt.Errorf("%s: control file says %s %s: the lock is out of date", owner, ctl.Package(), ctl.Version())
	}
	tr, closer, err := deb.Data()
	if err != nil {
		return fmt.Errorf("%s: %w", owner, err)
	}
	defer closer.Close()
	var list []string
	var total int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: data archive: %w", owner, err)
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
			total += h.Size
			if total > maxDebInMemory {
				return fmt.Errorf("%s: unpacks to more than %d bytes", owner, int64(maxDebInMemory))
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				return fmt.Errorf("%s: %s: %w (truncated package?)", owner, h.Name, err)
			}
			e.kind, e.data, e.size = kindFile, data, int64(len(data))
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
	status := ctl.Format("Package", debpkg.Field{Name: "Status", Value: "install ok installed"})
	if err := t.addData(owner, "var/lib/dpkg/status.d/"+d.Package, 0o644, status); err != nil {
		return err
	}
	sort.Strings(list)
	var lb bytes.Buffer
	for _, p := range list {
		lb.WriteString(p + "\n")
	}
	if err := t.addData(owner, "var/lib/dpkg/info/"+d.Package+".list", 0o644, lb.Bytes()); err != nil {
		return err
	}
	if files, err := deb.ControlFiles(); err == nil {
		if md5, ok := files["md5sums"]; ok {
			if err := t.addData(owner, "var/lib/dpkg/info/"+d.Package+".md5sums", 0o644, md5); err != nil {
				return err
			}
		}
	}
	return nil
}
