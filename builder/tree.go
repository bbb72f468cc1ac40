package builder

import (
	"archive/zip"
	"bytes"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
)

// A layer is first described as a tree of entries in memory (contents are
// opened lazily) so that it can be checked as a whole (traversal, writes
// through symlinks, duplicates) and then written in one deterministic order.

type entryKind byte

const (
	kindDir     entryKind = 'd'
	kindFile    entryKind = 'f'
	kindSymlink entryKind = 'l'
	kindHard    entryKind = 'h'
)

type entry struct {
	path  string // clean, relative to the image root, no leading slash
	kind  entryKind
	mode  int64
	size  int64
	link  string // symlink target, or hardlink source path
	owner string // who added it, for conflict messages
	// open returns the file's content; data is used when open is nil.
	open func() (io.ReadCloser, error)
	data []byte
	// check, when set, is given everything read and must accept it at EOF
	// (RECORD hashes, tree hashes).
	check func(content io.Reader) io.Reader
	// implicit marks a parent folder nobody declared.
	implicit bool
	// member is the wheel member the content is, unchanged: a spliced
	// gzip layer copies its deflate stream (see splice.go).
	member *zip.File
}

// tree is the content of one layer.
type tree struct {
	entries map[string]*entry
	// budget counts unpacked bytes and entries for the whole image.
	budget *budget
	// tmpDir holds spool files of streamed archives ("" = os.TempDir).
	tmpDir string
	// closers run once the layer is written (or abandoned).
	closers []func()
	// redirect, when set, moves entries through the base's links.
	redirect *redirector
}

func newTree() *tree { return &tree{entries: map[string]*entry{}} }

// archiveBudget starts counting one archive; a tree made without a build
// (unit tests, fuzzing) gets the default limits.
func (t *tree) archiveBudget(owner string) *archiveBudget {
	if t.budget == nil {
		t.budget = newBudget(Limits{})
	}
	return t.budget.archive(owner)
}

// close releases what the entries read from (spool files, zips).
func (t *tree) close() {
	for _, c := range t.closers {
		c()
	}
	t.closers = nil
}

// PathError is an archive entry that would escape or corrupt the image.
type PathError struct {
	Owner, Path, Reason string
}

func (e *PathError) Error() string {
	return fmt.Sprintf("%s: entry %q %s", e.Owner, e.Path, e.Reason)
}

// cleanPath validates an archive member name and returns it relative to the
// root. Absolute names and any ".." component are refused outright rather
// than silently rewritten: an archive that tries them is not trustworthy.
func cleanPath(owner, name string) (string, error) {
	if strings.ContainsRune(name, 0) {
		return "", &PathError{owner, name, "contains a NUL byte"}
	}
	if strings.HasPrefix(name, "/") {
		return "", &PathError{owner, name, "is an absolute path"}
	}
	n := strings.TrimPrefix(name, "./")
	for _, part := range strings.Split(n, "/") {
		if part == ".." {
			return "", &PathError{owner, name, "climbs out of the root with \"..\""}
		}
	}
	n = path.Clean("/" + n)[1:]
	return n, nil
}

// composedPath checks a path that mlenv builds itself from package
// metadata (dpkg status and info files, dist-info, scripts, .data moves):
// it must already be clean, since a field that changes under cleaning
// ("a/../b", "a//b", a trailing "/") came from a hostile name.
func composedPath(owner, p string) (string, error) {
	c, err := cleanPath(owner, p)
	if err != nil {
		return "", err
	}
	if c != p || c == "" || strings.ContainsAny(p, "\n\r\\") {
		return "", &PathError{owner, p, "is not a plain path (built from package metadata): refused"}
	}
	return c, nil
}

// add inserts e, creating implicit parents. It refuses a path whose parent
// is a symlink (a write through a link can land anywhere), and two entries
// at the same path unless both are folders.
func (t *tree) add(e *entry) error {
	if e.path == "" {
		return nil // the root itself
	}
	if t.redirect != nil {
		p, err := t.redirect.resolve(e.path, e.kind == kindDir)
		if err != nil {
			return &PathError{e.owner, e.path, err.Error()}
		}
		if e.kind == kindHard {
			if e.link, err = t.redirect.resolve(e.link, false); err != nil {
				return &PathError{e.owner, e.path, err.Error()}
			}
		}
		if p == "" {
			return nil // a folder that resolves to the root
		}
		e.path = p
	}
	parts := strings.Split(e.path, "/")
	for i := 1; i < len(parts); i++ {
		parent := strings.Join(parts[:i], "/")
		p, ok := t.entries[parent]
		switch {
		case !ok:
			t.entries[parent] = &entry{path: parent, kind: kindDir, mode: 0o755, owner: e.owner, implicit: true}
		case p.kind == kindSymlink:
			return &PathError{e.owner, e.path, fmt.Sprintf("is written through the symlink %q (-> %q): refused, it could write outside the image root", parent, p.link)}
		case p.kind != kindDir:
			return &PathError{e.owner, e.path, fmt.Sprintf("has the file %q as a parent folder", parent)}
		}
	}
	if prev, ok := t.entries[e.path]; ok {
		if prev.kind == kindDir && e.kind == kindDir {
			if prev.implicit {
				prev.mode, prev.implicit, prev.owner = e.mode, false, e.owner
			}
			return nil
		}
		if prev.kind == kindDir && e.kind == kindSymlink {
			// A link placed over a folder that already has children
			// would redirect them.
			return &PathError{e.owner, e.path, fmt.Sprintf("is a symlink but the folder %q (from %s) is already there", e.path, prev.owner)}
		}
		if prev.owner == e.owner {
			return &PathError{e.owner, e.path, "appears twice in the archive"}
		}
		return &PathError{e.owner, e.path, fmt.Sprintf("is also provided by %s", prev.owner)}
	}
	// Every entry brings its parents (above), so a new path has nothing
	// below it yet: no scan of the tree is needed for a new symlink, and
	// the check stays linear in the number of entries.
	if e.kind == kindHard {
		src, ok := t.entries[e.link]
		if !ok || src.kind != kindFile {
			return &PathError{e.owner, e.path, fmt.Sprintf("is a hard link to %q, which is not a file earlier in the same archive", e.link)}
		}
	}
	t.entries[e.path] = e
	return nil
}

// addData adds a file whose path mlenv composed (see composedPath).
func (t *tree) addData(owner, p string, mode int64, data []byte) error {
	if _, err := composedPath(owner, p); err != nil {
		return err
	}
	return t.add(&entry{path: p, kind: kindFile, mode: mode, size: int64(len(data)), data: data, owner: owner})
}

// sorted returns the entries in byte order of path: parents precede
// children because "a" < "a/b".
func (t *tree) sorted() []*entry {
	out := make([]*entry, 0, len(t.entries))
	for _, e := range t.entries {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out
}

func (e *entry) reader() (io.ReadCloser, error) {
	var rc io.ReadCloser
	if e.open != nil {
		r, err := e.open()
		if err != nil {
			return nil, err
		}
		rc = r
	} else {
		rc = io.NopCloser(bytes.NewReader(e.data))
	}
	if e.check != nil {
		return struct {
			io.Reader
			io.Closer
		}{e.check(rc), rc}, nil
	}
	return rc, nil
}
