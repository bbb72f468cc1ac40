// Package localpath keeps local build inputs (files sources, artifacts given
// by path) inside the project folder: a lock or intent must not be able to
// pull host files such as /etc/ssl or /etc/shadow into an image, nor hang
// a build on /dev/zero or a FIFO. Anything else needs an explicit opt-in
// (the --allow-outside flag of build and lock).
package localpath

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/mlenv/mlenv/internal/boundedfile"
)

// ErrOutside is returned (wrapped) for a path outside the project and every
// allowed folder. Its message says nothing about the outside file: not its
// size, not even whether it exists.
var ErrOutside = errors.New("is outside the project folder")

// Policy says where local inputs may come from.
type Policy struct {
	// Base is the project folder (the lock's or intent's folder).
	Base string
	// Allow lists more folders (or files) the user opted into.
	Allow []string
}

// Resolve returns the absolute, symlink-free path of p (relative to Base
// unless absolute, "file://" accepted) after checking that it lies inside
// Base or an allowed folder, symlinks resolved, and is a regular file or a
// folder.
func (pol Policy) Resolve(p string) (string, error) {
	raw := p
	p = strings.TrimPrefix(p, "file://")
	if !filepath.IsAbs(p) {
		p = filepath.Join(pol.Base, filepath.FromSlash(p))
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("%s: %w", raw, err)
	}
	roots, err := pol.roots()
	if err != nil {
		return "", err
	}
	// Lexically outside: refuse before touching the file system, so that
	// the answer is the same whether or not the file exists.
	if !insideAny(abs, roots.lexical) {
		return "", pol.outside(raw)
	}
	real, err := evalInside(abs, roots)
	if errors.Is(err, ErrOutside) {
		return "", pol.outside(raw)
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("%s: not found in the project folder %s", raw, pol.Base)
		}
		return "", fmt.Errorf("%s: %w", raw, err)
	}
	if !insideAny(real, roots.real) {
		return "", pol.outside(raw)
	}
	fi, err := os.Lstat(real)
	if err != nil {
		return "", fmt.Errorf("%s: %w", raw, err)
	}
	if !fi.Mode().IsRegular() && !fi.IsDir() {
		return "", fmt.Errorf("%s is %s, not a regular file or folder: only files and folders can be build inputs", raw, boundedfile.Kind(fi.Mode()))
	}
	return real, nil
}

// Open resolves p and opens it as a regular file, checking again on the
// open file (a path swapped for a FIFO or device after the check is still
// refused).
func (pol Policy) Open(p string) (*os.File, error) {
	real, err := pol.Resolve(p)
	if err != nil {
		return nil, err
	}
	return pol.OpenResolved(real)
}

// OpenResolved opens real (a path Resolve returned, or one found by a walk
// of a resolved folder) as a regular file (not following a symlink put in
// its place, not waiting on a FIFO, not reading a device), then checks
// where the open descriptor really is: a parent folder swapped for a
// symlink to outside between the check and the open (someone changing
// the project while mlenv runs) is caught here, not followed into the
// image. Where the system cannot say where a descriptor is (no /proc), the
// check before the open is all there is.
func (pol Policy) OpenResolved(real string) (*os.File, error) {
	f, err := boundedfile.OpenRegularNoFollow(real)
	if err != nil {
		return nil, err
	}
	at, ok := openedPath(f)
	if !ok {
		return f, nil
	}
	roots, err := pol.roots()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !insideAny(at, roots.real) {
		f.Close()
		return nil, pol.outside(real)
	}
	return f, nil
}

// openedPath is where an open file is, as the kernel says (Linux).
func openedPath(f *os.File) (string, bool) {
	p, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil || !filepath.IsAbs(p) {
		return "", false
	}
	return p, true
}

func (pol Policy) outside(raw string) error {
	return fmt.Errorf("%s %w %s: build inputs must lie inside it (symlinks resolved); to allow another folder, pass --allow-outside FOLDER", raw, ErrOutside, pol.Base)
}

type rootSet struct{ lexical, real []string }

func (pol Policy) roots() (rootSet, error) {
	var rs rootSet
	for _, r := range append([]string{pol.Base}, pol.Allow...) {
		abs, err := filepath.Abs(r)
		if err != nil {
			return rs, fmt.Errorf("folder %s: %w", r, err)
		}
		rs.lexical = append(rs.lexical, abs)
		// An allowed folder that is itself a symlink counts by its target.
		if real, err := filepath.EvalSymlinks(abs); err == nil {
			rs.real = append(rs.real, real)
			rs.lexical = append(rs.lexical, real)
		} else {
			rs.real = append(rs.real, abs)
		}
	}
	return rs, nil
}

func insideAny(p string, roots []string) bool {
	for _, r := range roots {
		if rel, err := filepath.Rel(r, p); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel) {
			return true
		}
	}
	return false
}

// maxLinks bounds symlink chains, as the kernel's ELOOP does.
const maxLinks = 40

// evalInside is filepath.EvalSymlinks with one difference: a link inside
// the project whose target lies outside every allowed folder is refused
// (ErrOutside) before its target is looked at. Otherwise a committed link
// would tell "not found" from "outside" and so reveal whether a host file
// exists.
func evalInside(abs string, roots rootSet) (string, error) {
	allowed := append(append([]string{}, roots.lexical...), roots.real...)
	rest := strings.Split(filepath.ToSlash(filepath.Clean(abs)), "/")
	cur := string(filepath.Separator)
	if vol := filepath.VolumeName(abs); vol != "" {
		cur = vol + string(filepath.Separator)
		rest = rest[1:]
	}
	hops := 0
	for len(rest) > 0 {
		part := rest[0]
		rest = rest[1:]
		switch part {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, part)
		fi, err := os.Lstat(next)
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if hops++; hops > maxLinks {
			return "", fmt.Errorf("more than %d symlinks on the way (a loop?)", maxLinks)
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(cur, target)
		}
		target = filepath.Clean(target)
		if insideAny(next, allowed) && !insideAny(target, allowed) {
			return "", ErrOutside
		}
		rest = append(strings.Split(filepath.ToSlash(target), "/"), rest...)
		cur = string(filepath.Separator)
		if vol := filepath.VolumeName(target); vol != "" {
			cur = vol + string(filepath.Separator)
			rest = rest[1:]
		}
	}
	return cur, nil
}
