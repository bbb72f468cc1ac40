package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/mlenv/mlenv/internal/boundedfile"
)

// Local image inputs (oci:DIR, tar:FILE) come from users and from CI
// artifacts that anyone may have produced. go-containerregistry opens and
// reads their files whole: a FIFO there blocks the process for good (no
// signal ends a blocked open), a symlink to /dev/zero, or a sparse tar
// entry of many GiB stored in a few bytes, is read into memory until the
// process dies. These checks run before any of that.

// regularFile refuses what is not a regular file (symlinks followed: a
// layout's blobs may be links to a shared store).
func regularFile(p, what string) (os.FileInfo, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %s is %s, not a regular file: an image is read from regular files only", what, p, boundedfile.Kind(fi.Mode()))
	}
	return fi, nil
}

// checkLayoutFiles: index.json and every blob of the layout at dir are
// regular files.
func checkLayoutFiles(dir string) error {
	if _, err := regularFile(filepath.Join(dir, "index.json"), "layout index"); err != nil {
		return err
	}
	algs, err := os.ReadDir(filepath.Join(dir, "blobs"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // the index will name what is missing
		}
		return err
	}
	for _, a := range algs {
		blobs, err := os.ReadDir(filepath.Join(dir, "blobs", a.Name()))
		if err != nil {
			return err
		}
		for _, b := range blobs {
			if _, err := regularFile(filepath.Join(dir, "blobs", a.Name(), b.Name()), "blob"); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkTarball: the tarball is a regular file, and no entry claims more
// bytes than the whole file holds (only a sparse or damaged entry can).
// Reading the headers seeks past the data, so this costs one read per
// entry, not per byte.
func checkTarball(p string) error {
	fi, err := regularFile(p, "tarball")
	if err != nil {
		return err
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		if hdr.Size > fi.Size() {
			return fmt.Errorf("%s: entry %s claims %d bytes, more than the whole file (%d bytes): a sparse or damaged tarball, not what `docker save` writes", p, hdr.Name, hdr.Size, fi.Size())
		}
	}
}
