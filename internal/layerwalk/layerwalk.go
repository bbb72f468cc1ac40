// Package layerwalk streams the entries of an image's layers, in order and
// once, to several visitors, so that one pass over a large image serves
// every reader that needs its files (SBOM inventory, GPU code scan).
package layerwalk

import (
	"archive/tar"
	"fmt"
	"io"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Visitor sees every tar entry of every layer. body reads the entry's
// content; a visitor that reads it returns consumed = true, and the
// visitors after it get a nil body for that entry.
type Visitor interface {
	Visit(layer int, name string, h *tar.Header, body io.Reader) (consumed bool, err error)
}

// Walk streams img's layers through the visitors. name is the entry's
// path, cleaned, relative to the root.
func Walk(img v1.Image, visitors ...Visitor) error {
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	return WalkLayers(layers, 0, visitors...)
}

func walkLayer(i int, r io.Reader, visitors []Visitor) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		var body io.Reader = tr
		for _, v := range visitors {
			consumed, err := v.Visit(i, name, h, body)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if consumed {
				body = nil
			}
		}
	}
}

// Whiteout says whether name is an OCI whiteout, and what it removes:
// a path (and everything below it), or, for an opaque marker, everything
// below a folder (dir ends in "/").
func Whiteout(name string) (removed string, opaque, ok bool) {
	base := path.Base(name)
	if base == ".wh..wh..opq" {
		return path.Dir(name) + "/", true, true
	}
	if strings.HasPrefix(base, ".wh.") {
		return path.Join(path.Dir(name), strings.TrimPrefix(base, ".wh.")), false, true
	}
	return "", false, false
}

// Removes says whether a whiteout (as returned by Whiteout) removes p.
func Removes(removed string, opaque bool, p string) bool {
	if opaque {
		return removed == "./" || strings.HasPrefix(p, removed) // "./": the root's marker
	}
	return p == removed || strings.HasPrefix(p, removed+"/")
}
