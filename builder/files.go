package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/mlenv/mlenv/internal/localpath"
	"github.com/mlenv/mlenv/internal/treehash"
	"github.com/mlenv/mlenv/lockfile"
)

// addFiles adds a locked local file set to t: all of it (chunk < 0) or
// the entries of one chunk. The tree hash is recomputed from exactly the
// bytes written to the layer; finish() says whether they still match the
// lock (checked after the layer is written, so each file is read once).
func addFiles(t *tree, pol localpath.Policy, reverse bool, fs lockfile.FileSet, chunk int) (finish func() error, err error) {
	owner := "files " + fs.Src
	var keep func(string) bool
	want := fs.SHA256
	if chunk >= 0 {
		want = fs.Chunks[chunk].SHA256
		keep = func(rel string) bool { return treehash.Bucket(rel, len(fs.Chunks)) == chunk }
	}
	// The source must lie inside the project (symlinks resolved): a lock
	// with src ../../../../etc/ssl must not put the host's files in the
	// image. Symlinks below it are kept as symlinks, never followed.
	root, err := pol.Resolve(fs.Src)
	if err != nil {
		return nil, fmt.Errorf("files: %w", err)
	}
	entries, err := treehash.WalkFiltered(root, keep)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", owner, err)
	}
	order := entries
	if reverse {
		order = slices.Clone(entries)
		slices.Reverse(order)
	}
	dst := strings.TrimPrefix(path.Clean(fs.Dst), "/")
	// Files are hashed as the tar writer reads them, in tree order; the
	// tree hash is assembled afterwards in walk order.
	var mu sync.Mutex
	sums := map[string]string{}
	for _, e := range order {
		p := dst
		if e.Path != "" {
			p = path.Join(dst, e.Path)
		}
		if _, err := cleanPath(owner, p); err != nil {
			return nil, err
		}
		ne := &entry{path: p, mode: e.Mode, owner: owner}
		switch e.Kind {
		case 'd':
			ne.kind = kindDir
		case 'l':
			ne.kind, ne.link = kindSymlink, e.Link
		case 'f':
			abs, rel := e.Abs, e.Path
			ne.kind, ne.size = kindFile, e.Size
			// Opened refusing FIFOs, devices and a path that now leads
			// outside the project, in case the file or a folder above it
			// was swapped after the walk.
			ne.open = func() (io.ReadCloser, error) { return pol.OpenResolved(abs) }
			ne.check = func(r io.Reader) io.Reader {
				return &teeHash{r: r, h: sha256.New(), done: func(sum string) {
					mu.Lock()
					sums[rel] = sum
					mu.Unlock()
				}}
			}
		}
		if err := t.add(ne); err != nil {
			return nil, err
		}
	}
	return func() error {
		th := treehash.New()
		for _, e := range entries {
			th.Add(e, sums[e.Path])
		}
		if got := th.Sum(); got != want {
			return fmt.Errorf("%s changed since it was locked (tree sha256 %s, lock says %s): run `mlenv lock` again", fs.Src, got, want)
		}
		return nil
	}, nil
}

type teeHash struct {
	r    io.Reader
	h    hash.Hash
	done func(string)
}

func (t *teeHash) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.h.Write(p[:n])
	if err == io.EOF {
		t.done(hex.EncodeToString(t.h.Sum(nil)))
	}
	return n, err
}
