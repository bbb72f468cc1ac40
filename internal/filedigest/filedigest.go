// Package filedigest lists a model's or a dataset's files with the sha256
// of each, hashing files in parallel (one pass over each file's bytes).
// The list is what lineage statements name as subjects, what a ModelPack
// push turns into layers and what verification re-hashes.
package filedigest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"
)

// File is one regular file below a root.
type File struct {
	// Name is slash-separated and relative to the root; for a root that is
	// itself a file, its base name.
	Name string `json:"name"`
	// SHA256 is the hex sha256 of the content ("" until hashed).
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// Abs is where the content is read from.
	Abs string `json:"-"`
	// Exec is true when any executable bit is set.
	Exec bool `json:"-"`
}

// DefaultMaxFiles bounds a listing: a folder with more files is refused
// (a model or a dataset folder of a million files is a mistake, and the
// statement would be larger than a registry accepts).
const DefaultMaxFiles = 1 << 20

// Options for List.
type Options struct {
	// Exclude skips a slash-separated relative path (a folder with all it
	// holds, or a file) when it returns true.
	Exclude func(rel string) bool
	// MaxFiles bounds the listing (0: DefaultMaxFiles).
	MaxFiles int
	// Workers hash files in parallel (0: the number of CPUs).
	Workers int
}

// ErrNotRegular is returned for symlinks, devices, sockets and pipes: a
// file list names content, and those have none mlenv can pin.
var ErrNotRegular = errors.New("not a regular file or folder")

// List walks root (a file or a folder) and returns its regular files in
// byte order of name, not yet hashed.
func List(root string, o Options) ([]File, error) {
	max := o.MaxFiles
	if max <= 0 {
		max = DefaultMaxFiles
	}
	fi, err := os.Lstat(root)
	if err != nil {
		return nil, err
	}
	if fi.Mode().IsRegular() {
		return []File{{Name: filepath.Base(root), Abs: root, Size: fi.Size(), Exec: fi.Mode().Perm()&0o111 != 0}}, nil
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s: %w (%s)", root, ErrNotRegular, fi.Mode().Type())
	}
	var out []File
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if o.Exclude != nil && o.Exclude(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		if !utf8.ValidString(rel) {
			return fmt.Errorf("%s: the name is not UTF-8, so no statement can name it", p)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return fmt.Errorf("%s: %w (%s): replace it with the file it stands for", p, ErrNotRegular, info.Mode().Type())
		}
		if len(out) >= max {
			return fmt.Errorf("%s holds more than %d files, the most one listing takes", root, max)
		}
		out = append(out, File{Name: rel, Abs: p, Size: info.Size(), Exec: info.Mode().Perm()&0o111 != 0})
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Hash fills in every file's SHA256, reading files in parallel; a file
// whose size changed since it was listed is an error (it is being
// written to).
func Hash(ctx context.Context, files []File, workers int) error {
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	// Largest first, so that one big file started last does not leave
	// every other worker idle at the end.
	order := make([]int, len(files))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return files[order[a]].Size > files[order[b]].Size })
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
	}
	for w := 0; w < workers && w < len(files); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1<<20)
			for i := range next {
				f := &files[i]
				sum, n, err := hashFile(ctx, f.Abs, buf)
				if err == nil && n != f.Size {
					err = fmt.Errorf("%s changed size while it was read (%d, then %d bytes): is it still being written?", f.Abs, f.Size, n)
				}
				if err != nil {
					fail(err)
					continue
				}
				f.SHA256 = sum
			}
		}()
	}
	for _, i := range order {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// Sum lists root and hashes every file.
func Sum(ctx context.Context, root string, o Options) ([]File, error) {
	files, err := List(root, o)
	if err != nil {
		return nil, err
	}
	if err := Hash(ctx, files, o.Workers); err != nil {
		return nil, err
	}
	return files, nil
}

// ctxReader stops a long read when the context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func hashFile(ctx context.Context, path string, buf []byte) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, ctxReader{ctx, f}, buf)
	if err != nil {
		return "", n, fmt.Errorf("reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// HashFile is the hex sha256 and size of one file.
func HashFile(ctx context.Context, path string) (string, int64, error) {
	return hashFile(ctx, path, make([]byte, 1<<20))
}

// TreeDigest is one sha256 for a file list: the sha256 of the lines
// "<hex>  <name>\n" in byte order of name, which is exactly what
// `find . -type f | sed 's|^\./||' | LC_ALL=C sort | xargs sha256sum | sha256sum`
// prints in the root folder, so anyone can recompute it without mlenv.
func TreeDigest(files []File) string {
	sorted := append([]File(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	h := sha256.New()
	for _, f := range sorted {
		io.WriteString(h, f.SHA256+"  "+f.Name+"\n")
	}
	return hex.EncodeToString(h.Sum(nil))
}

// CleanName checks a relative name taken from a statement or a registry
// (never trusted): slash-separated, no "..", not absolute, no empty or "."
// parts, no NUL. It returns the name unchanged or an error.
func CleanName(name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "/") || strings.ContainsRune(name, 0) || strings.Contains(name, "\\") {
		return "", fmt.Errorf("file name %q: must be a relative slash-separated path", name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == "" || part == "." || part == ".." {
			return "", fmt.Errorf("file name %q: empty, \".\" or \"..\" part", name)
		}
	}
	return name, nil
}
