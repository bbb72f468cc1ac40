package diff

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/mlenv/mlenv/attest"
	"github.com/mlenv/mlenv/internal/layerwalk"
)

// entry is the final state of one path in a layer stack: what a running
// container would see there (mtimes are not compared: builds stamp them).
type entry struct {
	deleted bool
	typ     byte
	mode    int64
	uid     int
	gid     int
	size    int64
	link    string
	digest  string // sha256 of a regular file's content, when hashed
	meta    []byte // a package metadata file's content (see attest inventory)
	layer   int
}

// tree is the paths one stack of layers touches, in layer order, with
// whiteouts applied.
type tree struct {
	state map[string]*entry
	// removed are whiteouts: they remove what layers below the walked ones
	// hold at the path (and below it).
	removed layerwalk.Whiteouts
	// paths indexes state by folder, so a whiteout finds what it hides.
	paths layerwalk.Paths
	// keep, when set, limits which paths are recorded (the shared layers
	// are walked only for the paths the rest left open).
	keep    func(string) bool
	hashAll bool
	inv     *attest.InventoryVisitor
}

func newTree(hashAll bool) *tree {
	return &tree{state: map[string]*entry{}, hashAll: hashAll, inv: attest.NewInventoryVisitor()}
}

// needsHash: without --files only the files that stand for a package's
// installed content are hashed (a wheel's RECORD, a deb's md5sums).
func needsHash(name string) bool {
	return strings.HasSuffix(name, ".dist-info/RECORD") ||
		strings.HasPrefix(name, "var/lib/dpkg/") && strings.HasSuffix(name, ".md5sums")
}

// Visit implements layerwalk.Visitor.
func (t *tree) Visit(layer int, name string, h *tar.Header, body io.Reader) (bool, error) {
	if removed, opaque, ok := layerwalk.Whiteout(name); ok {
		// A whiteout hides what lower layers hold, never its own layer's
		// entries (an opaque folder's new content sits beside the marker).
		hide := func(p string) {
			if e, ok := t.state[p]; ok && e.layer < layer {
				e.deleted, e.meta = true, nil
			}
		}
		t.paths.Hidden(removed, opaque, hide)
		if !opaque {
			if t.keep == nil || t.keep(removed) {
				t.set(removed, &entry{deleted: true, layer: layer})
			}
		}
		t.removed.Add(removed, opaque)
		return false, nil
	}
	if name == "" || name == "." {
		return false, nil
	}
	if t.keep != nil && !t.keep(name) {
		return false, nil
	}
	e := &entry{typ: h.Typeflag, mode: h.Mode & 0o7777, uid: h.Uid, gid: h.Gid, link: h.Linkname, layer: layer}
	if h.Typeflag == tar.TypeReg {
		e.size = h.Size
		if body != nil {
			var meta bytes.Buffer
			hasher := sha256.New()
			hash := t.hashAll || needsHash(name)
			var w io.Writer = &meta
			if hash {
				w = io.MultiWriter(&meta, hasher)
			}
			consumed, err := t.inv.Visit(layer, name, h, io.TeeReader(body, w))
			if err != nil {
				return true, err
			}
			if consumed {
				e.meta = meta.Bytes()
				// Core metadata is headers, then the long description: only
				// the headers name the package, keep just those in memory.
				if strings.HasSuffix(name, "/METADATA") || strings.HasSuffix(name, "PKG-INFO") {
					if i := bytes.Index(e.meta, []byte("\n\n")); i >= 0 {
						e.meta = append([]byte(nil), e.meta[:i+1]...)
					}
				}
			}
			if hash {
				if _, err := io.Copy(hasher, body); err != nil {
					return true, err
				}
				e.digest = "sha256:" + hex.EncodeToString(hasher.Sum(nil))
			}
			t.set(name, e)
			return true, nil
		}
	}
	t.set(name, e)
	return false, nil
}

// set records p's entry and indexes it by folder.
func (t *tree) set(p string, e *entry) {
	t.state[p] = e
	t.paths.Add(p)
}

// covers says whether one of the tree's whiteouts hides p in the layers
// below it.
func (t *tree) covers(p string) bool { return t.removed.Removes(p) }

// stacks is the result of walking two images: the layers they share
// (equal digests, from the bottom) are walked at most once, and only when
// a path the other layers touch might live there.
type stacks struct {
	a, b   *tree
	shared *tree // nil when the shared layers were not read
	// sharedLayers is how many bottom layers A and B share.
	sharedLayers int
}

// walkImages reads what differs between two images' file trees. When b
// is nil, a alone is walked in full (to list its packages).
func walkImages(a, b v1.Image, hashAll bool) (*stacks, error) {
	la, err := a.Layers()
	if err != nil {
		return nil, fmt.Errorf("listing A's layers: %w", err)
	}
	var lb []v1.Layer
	if b != nil {
		if lb, err = b.Layers(); err != nil {
			return nil, fmt.Errorf("listing B's layers: %w", err)
		}
	}
	k := 0
	for k < len(la) && k < len(lb) {
		da, err1 := la[k].Digest()
		db, err2 := lb[k].Digest()
		if err1 != nil || err2 != nil || da != db {
			break
		}
		k++
	}
	s := &stacks{a: newTree(hashAll), b: newTree(hashAll), sharedLayers: k}
	var g errgroup.Group
	g.Go(func() error {
		if err := layerwalk.WalkLayers(la[k:], k, s.a); err != nil {
			return fmt.Errorf("A: %w", err)
		}
		return nil
	})
	if b != nil {
		g.Go(func() error {
			if err := layerwalk.WalkLayers(lb[k:], k, s.b); err != nil {
				return fmt.Errorf("B: %w", err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if k == 0 {
		return s, nil
	}
	// Which paths does one side leave to the shared layers?
	open := map[string]bool{}
	for _, p := range s.candidates() {
		_, inA := s.a.state[p]
		_, inB := s.b.state[p]
		if (!inA && !s.a.covers(p)) || (!inB && !s.b.covers(p)) {
			open[p] = true
		}
	}
	if len(open) == 0 && s.a.removed.Len()+s.b.removed.Len() == 0 {
		return s, nil
	}
	s.shared = newTree(hashAll)
	s.shared.keep = func(p string) bool {
		return open[p] || s.a.covers(p) || s.b.covers(p)
	}
	if err := layerwalk.WalkLayers(la[:k], 0, s.shared); err != nil {
		return nil, fmt.Errorf("shared layers: %w", err)
	}
	return s, nil
}

// candidates are the paths that may differ: those the unshared layers
// touch, those their whiteouts hide in the shared layers, and for each
// package manifest that changed, the metadata that names its package.
func (s *stacks) candidates() []string {
	set := map[string]bool{}
	for _, t := range []*tree{s.a, s.b, s.shared} {
		if t == nil {
			continue
		}
		for p := range t.state {
			set[p] = true
		}
	}
	for p := range set {
		if strings.HasSuffix(p, ".dist-info/RECORD") {
			set[path.Dir(p)+"/METADATA"] = true
		}
		if strings.HasPrefix(p, "var/lib/dpkg/info/") && strings.HasSuffix(p, ".md5sums") {
			set["var/lib/dpkg/status"] = true
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// final is p's state on one side (nil when absent).
func (s *stacks) final(t *tree, p string) *entry {
	if e, ok := t.state[p]; ok {
		if e.deleted {
			return nil
		}
		return e
	}
	if t.covers(p) || s.shared == nil {
		return nil
	}
	if e, ok := s.shared.state[p]; ok && !e.deleted {
		return e
	}
	return nil
}

// packages lists the packages whose metadata sits at the given paths on
// one side, with their installed-content hash where the manifest is known.
func (s *stacks) packages(t *tree, paths []string) []Package {
	inv := attest.NewInventoryVisitor()
	for _, p := range paths {
		e := s.final(t, p)
		if e == nil || e.meta == nil {
			continue
		}
		h := &tar.Header{Name: p, Typeflag: tar.TypeReg, Size: int64(len(e.meta))}
		inv.Visit(e.layer, p, h, bytes.NewReader(e.meta))
	}
	var out []Package
	for _, fp := range inv.Inventory().Packages {
		pkg := Package{Name: fp.Name, Version: fp.Version}
		var manifest string
		switch fp.Type {
		case "pypi":
			pkg.Ecosystem = EcoPython
			manifest = path.Dir(fp.Path) + "/RECORD"
		case "deb":
			pkg.Ecosystem = EcoDeb
			manifest = "var/lib/dpkg/info/" + fp.Name + ".md5sums"
			if e := s.final(t, manifest); e == nil && fp.Arch != "" {
				manifest = "var/lib/dpkg/info/" + fp.Name + ":" + fp.Arch + ".md5sums"
			}
		default:
			pkg.Ecosystem = EcoOther
		}
		if e := s.final(t, manifest); manifest != "" && e != nil && e.digest != "" {
			pkg.Hash, pkg.HashKind = e.digest, HashInstalled
		}
		out = append(out, pkg)
	}
	return out
}
