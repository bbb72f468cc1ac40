// Package treehash gives a local file or folder one sha256 that covers
// names, kinds, normalised modes and contents, so that a lock can pin an
// application folder the way it pins a wheel. The builder recomputes it
// while it writes the layer and refuses a folder that changed.
package treehash

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/mlenv/mlenv/internal/cas"
	"hash"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Entry is one file system object below the root, path slash-separated
// and relative ("" is the root itself when the root is a file).
type Entry struct {
	Path string
	Kind byte // 'd' dir, 'f' file, 'l' symlink
	Mode int64
	Size int64
	// Link is a symlink's target.
	Link string
	// Abs is where to read a file's content.
	Abs string
}

// NormMode is the mode mlenv writes: 0755 for folders and files with any
// executable bit, 0644 for other files. The host's umask never leaks.
func NormMode(kind byte, perm fs.FileMode) int64 {
	if kind == 'd' || kind == 'l' || perm&0o111 != 0 {
		if kind == 'l' {
			return 0o777
		}
		return 0o755
	}
	return 0o644
}

// Walk lists root (a file or folder) in byte order of path, parents first.
// Anything but folders, files and symlinks (devices, sockets) is an error.
func Walk(root string) ([]Entry, error) { return WalkFiltered(root, nil) }

// WalkFiltered is Walk restricted to the paths keep accepts (nil: all).
// Entries it rejects are never stat'ed, so listing one chunk of a large
// folder costs little more than reading its directories.
func WalkFiltered(root string, keep func(rel string) bool) ([]Entry, error) {
	fi, err := os.Lstat(root)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		e, err := entryFor(root, "", fi)
		if err != nil {
			return nil, err
		}
		return []Entry{e}, nil
	}
	var out []Entry
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		if keep != nil && !keep(filepath.ToSlash(rel)) {
			return nil // folders are still descended into
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		e, err := entryFor(p, filepath.ToSlash(rel), info)
		if err != nil {
			return err
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func entryFor(abs, rel string, fi fs.FileInfo) (Entry, error) {
	e := Entry{Path: rel, Abs: abs}
	switch {
	case fi.Mode().IsDir():
		e.Kind = 'd'
	case fi.Mode().IsRegular():
		e.Kind = 'f'
		e.Size = fi.Size()
	case fi.Mode()&fs.ModeSymlink != 0:
		e.Kind = 'l'
		t, err := os.Readlink(abs)
		if err != nil {
			return e, err
		}
		e.Link = t
	default:
		return e, fmt.Errorf("%s: %s is neither a file, a folder nor a symlink", abs, fi.Mode().Type())
	}
	e.Mode = NormMode(e.Kind, fi.Mode().Perm())
	if strings.ContainsAny(rel, "\n\x00") {
		return e, fmt.Errorf("%q: file names with newlines are not supported", abs)
	}
	return e, nil
}

// Hasher accumulates the tree hash entry by entry, in Walk order.
type Hasher struct {
	h hash.Hash
}

// New starts a tree hash.
func New() *Hasher { return &Hasher{h: sha256.New()} }

// Add records one entry; contentSHA is the hex sha256 of a file's bytes.
func (t *Hasher) Add(e Entry, contentSHA string) {
	fmt.Fprintf(t.h, "%c %o %d %s %q %q\n", e.Kind, e.Mode, e.Size, contentSHA, e.Path, e.Link)
}

// Sum is the hex tree hash.
func (t *Hasher) Sum() string { return hex.EncodeToString(t.h.Sum(nil)) }

// Hash walks root and returns its tree hash, total file bytes and count.
func Hash(root string) (sum string, size int64, files int, err error) {
	entries, err := Walk(root)
	if err != nil {
		return "", 0, 0, err
	}
	t := New()
	for _, e := range entries {
		content := ""
		if e.Kind == 'f' {
			content, err = fileSHA(e.Abs)
			if err != nil {
				return "", 0, 0, err
			}
			size += e.Size
			files++
		}
		t.Add(e, content)
	}
	return t.Sum(), size, files, nil
}

func fileSHA(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sum, _, err := cas.HashReader(f)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", p, err)
	}
	return sum, nil
}

// ChunkTarget is the size a file set's layers aim at: a large application
// folder is split into several layers so that changing one file rebuilds
// only the layer that holds it.
const ChunkTarget = 4 << 20

// MaxChunks bounds the layers one file set may take.
const MaxChunks = 32

// ChunkCount is how many layers a file set of size bytes is split into.
func ChunkCount(size int64) int {
	k := int((size + ChunkTarget - 1) / ChunkTarget)
	return max(1, min(k, MaxChunks))
}

// Bucket assigns an entry to one of k chunks by its parent folder, so
// files of one folder stay together and adding or changing a file moves
// nothing else (FNV-1a of the folder path).
func Bucket(path string, k int) int {
	if k <= 1 {
		return 0
	}
	dir := ""
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		dir = path[:i]
	}
	h := uint32(2166136261)
	for i := 0; i < len(dir); i++ {
		h ^= uint32(dir[i])
		h *= 16777619
	}
	return int(h % uint32(k))
}

// Chunk is the tree hash of the entries of one bucket.
type Chunk struct {
	SHA256 string
	Files  int
	Size   int64
}

// HashWithChunks walks root once and returns the whole tree's hash, its
// size and file count, and (when it is large enough to be split) the hash
// of each chunk.
func HashWithChunks(root string) (sum string, size int64, files int, chunks []Chunk, err error) {
	entries, err := Walk(root)
	if err != nil {
		return "", 0, 0, nil, err
	}
	sums := make([]string, len(entries))
	for i, e := range entries {
		if e.Kind == 'f' {
			if sums[i], err = fileSHA(e.Abs); err != nil {
				return "", 0, 0, nil, err
			}
			size += e.Size
			files++
		}
	}
	t := New()
	for i, e := range entries {
		t.Add(e, sums[i])
	}
	k := ChunkCount(size)
	if k > 1 {
		hs := make([]*Hasher, k)
		chunks = make([]Chunk, k)
		for j := range hs {
			hs[j] = New()
		}
		for i, e := range entries {
			j := Bucket(e.Path, k)
			hs[j].Add(e, sums[i])
			if e.Kind == 'f' {
				chunks[j].Files++
				chunks[j].Size += e.Size
			}
		}
		for j := range hs {
			chunks[j].SHA256 = hs[j].Sum()
		}
	}
	return t.Sum(), size, files, chunks, nil
}
