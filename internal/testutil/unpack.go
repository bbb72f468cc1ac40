package testutil

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/mlenv/mlenv/internal/layerwalk"
)

// Unpack applies an image's layers, in order, to dir, the way a container
// runtime would (whiteouts aside), refusing any entry that would land
// outside dir: names are checked, and no path may pass through a symlink
// that a layer created.
func Unpack(img v1.Image, dir string) error {
	return layerwalk.Walk(img, unpacker(dir))
}

type unpacker string

func (u unpacker) Visit(_ int, _ string, h *tar.Header, body io.Reader) (bool, error) {
	dir := string(u)
	for _, part := range strings.Split(h.Name, "/") {
		if part == ".." {
			return false, fmt.Errorf("%q climbs out of the root", h.Name)
		}
	}
	target := filepath.Join(dir, filepath.Clean("/"+h.Name))
	// No component of the parent may be a symlink.
	parent := filepath.Dir(target)
	for p := parent; len(p) > len(dir); p = filepath.Dir(p) {
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			return false, fmt.Errorf("%q passes through the symlink %s", h.Name, p)
		}
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return false, err
	}
	mode := os.FileMode(h.Mode & 0o7777)
	switch h.Typeflag {
	case tar.TypeDir:
		return false, os.MkdirAll(target, mode)
	case tar.TypeReg:
		os.Remove(target)
		f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
		if err != nil {
			return false, err
		}
		_, err = io.Copy(f, body)
		f.Close()
		if err != nil {
			return true, err
		}
		return true, os.Chmod(target, mode)
	case tar.TypeSymlink:
		os.Remove(target)
		return false, os.Symlink(h.Linkname, target)
	case tar.TypeLink:
		os.Remove(target)
		return false, os.Link(filepath.Join(dir, filepath.Clean("/"+h.Linkname)), target)
	}
	return false, nil
}
