// Package gitinfo reads the commit a git checkout is at, and whether its
// tracked files differ from what the index records, straight from the
// .git folder: a lineage statement must not depend on a git binary being
// installed (or on which one), nor run one inside a training job.
package gitinfo

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/mlenv/mlenv/internal/boundedfile"
)

// Info is what a checkout says about itself.
type Info struct {
	// Commit is the hex object id HEAD points at ("" on a branch with no
	// commit yet).
	Commit string `json:"commit,omitempty"`
	// Branch is HEAD's branch ("" when detached).
	Branch string `json:"branch,omitempty"`
	// Dirty is true when a tracked file differs from the index (content,
	// executable bit, or missing); nil when it could not be decided, with
	// DirtyUnknown saying why. Untracked files do not count, as with
	// `git describe --dirty`.
	Dirty        *bool  `json:"dirty,omitempty"`
	DirtyUnknown string `json:"dirtyUnknown,omitempty"`
}

// ErrNotGit says the folder is not a git checkout.
var ErrNotGit = errors.New("not a git checkout")

// Bounds on what a .git folder may hand us.
const (
	maxSmallFile = 1 << 20   // HEAD, refs, packed-refs lines
	maxIndex     = 256 << 20 // the index of a very large repository
	maxEntries   = 1 << 21
)

// Read inspects dir, which must be the top of a checkout (holding .git).
func Read(dir string) (*Info, error) {
	gitDir, err := findGitDir(dir)
	if err != nil {
		return nil, err
	}
	head, err := readSmall(filepath.Join(gitDir, "HEAD"))
	if err != nil {
		return nil, fmt.Errorf("reading %s/HEAD: %w", gitDir, err)
	}
	info := &Info{}
	head = strings.TrimSpace(head)
	if ref, ok := strings.CutPrefix(head, "ref: "); ok {
		info.Branch = strings.TrimPrefix(ref, "refs/heads/")
		if info.Commit, err = resolveRef(gitDir, ref); err != nil {
			return nil, err
		}
	} else if isHex(head) {
		info.Commit = head
	} else {
		return nil, fmt.Errorf("%s/HEAD: %q is neither a ref nor an object id", gitDir, head)
	}
	dirty, why := worktreeDirty(dir, gitDir)
	info.Dirty, info.DirtyUnknown = dirty, why
	return info, nil
}

// findGitDir follows .git, a folder or a "gitdir: PATH" file (worktrees,
// submodules).
func findGitDir(dir string) (string, error) {
	p := filepath.Join(dir, ".git")
	fi, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("%s: %w", dir, ErrNotGit)
	}
	if fi.IsDir() {
		return p, nil
	}
	s, err := readSmall(p)
	if err != nil {
		return "", err
	}
	target, ok := strings.CutPrefix(strings.TrimSpace(s), "gitdir: ")
	if !ok {
		return "", fmt.Errorf("%s: not a gitdir file", p)
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(dir, target)
	}
	return target, nil
}

// commonDir is where refs live for a linked worktree.
func commonDir(gitDir string) string {
	s, err := readSmall(filepath.Join(gitDir, "commondir"))
	if err != nil {
		return gitDir
	}
	c := strings.TrimSpace(s)
	if !filepath.IsAbs(c) {
		c = filepath.Join(gitDir, c)
	}
	return c
}

func resolveRef(gitDir, ref string) (string, error) {
	if strings.Contains(ref, "..") || !strings.HasPrefix(ref, "refs/") {
		return "", fmt.Errorf("HEAD names %q, not a ref under refs/", ref)
	}
	for _, d := range []string{gitDir, commonDir(gitDir)} {
		if s, err := readSmall(filepath.Join(d, filepath.FromSlash(ref))); err == nil {
			s = strings.TrimSpace(s)
			if isHex(s) {
				return s, nil
			}
			return "", fmt.Errorf("%s: %q is not an object id", ref, s)
		}
		f, err := boundedfile.OpenRegular(filepath.Join(d, "packed-refs"))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(io.LimitReader(f, maxIndex))
		for sc.Scan() {
			id, name, ok := strings.Cut(sc.Text(), " ")
			if ok && name == ref && isHex(id) {
				f.Close()
				return id, nil
			}
		}
		f.Close()
	}
	return "", nil // a branch with no commit yet
}

func readSmall(p string) (string, error) {
	b, err := boundedfile.ReadRegular(p, maxSmallFile)
	return string(b), err
}

func isHex(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// IndexEntry is one stage-0 path of the index.
type IndexEntry struct {
	Path string
	Mode uint32
	Size uint32
	ID   [20]byte
}

// ParseIndex reads a git index (versions 2 and 3, sha1 object ids): the
// entries of stage 0. Version 4 (path compression) is refused.
func ParseIndex(b []byte) ([]IndexEntry, error) {
	if len(b) < 12 || string(b[:4]) != "DIRC" {
		return nil, errors.New("not a git index (no DIRC header)")
	}
	ver := binary.BigEndian.Uint32(b[4:8])
	if ver != 2 && ver != 3 {
		return nil, fmt.Errorf("git index version %d: only 2 and 3 are read", ver)
	}
	n := binary.BigEndian.Uint32(b[8:12])
	if n > maxEntries {
		return nil, fmt.Errorf("git index with %d entries, more than %d", n, maxEntries)
	}
	var out []IndexEntry
	off := 12
	for i := uint32(0); i < n; i++ {
		const fixed = 62
		if off+fixed > len(b) {
			return nil, fmt.Errorf("git index truncated at entry %d", i)
		}
		e := b[off:]
		var ent IndexEntry
		ent.Mode = binary.BigEndian.Uint32(e[24:28])
		ent.Size = binary.BigEndian.Uint32(e[36:40])
		copy(ent.ID[:], e[40:60])
		flags := binary.BigEndian.Uint16(e[60:62])
		hdr := fixed
		if flags&0x4000 != 0 { // extended flags (version 3)
			if ver < 3 {
				return nil, fmt.Errorf("git index entry %d: extended flags in a version-2 index", i)
			}
			hdr += 2
			if off+hdr > len(b) {
				return nil, fmt.Errorf("git index truncated at entry %d", i)
			}
		}
		nul := bytes.IndexByte(b[off+hdr:], 0)
		if nul < 0 {
			return nil, fmt.Errorf("git index entry %d: unterminated path", i)
		}
		ent.Path = string(b[off+hdr : off+hdr+nul])
		// Entries are padded with 1-8 NULs to a multiple of 8 bytes.
		size := (hdr + nul + 8) &^ 7
		if off+size > len(b) {
			return nil, fmt.Errorf("git index truncated at entry %d", i)
		}
		off += size
		if stage := (flags >> 12) & 3; stage == 0 {
			out = append(out, ent)
		}
	}
	return out, nil
}

// worktreeDirty compares each tracked file with its index entry: size
// first, then the blob id of its content.
func worktreeDirty(dir, gitDir string) (*bool, string) {
	b, err := boundedfile.ReadRegular(filepath.Join(gitDir, "index"), maxIndex)
	if err != nil {
		if os.IsNotExist(err) {
			no := false
			return &no, "" // nothing tracked yet
		}
		return nil, err.Error()
	}
	ents, err := ParseIndex(b)
	if err != nil {
		return nil, err.Error()
	}
	dirty := func(v bool) (*bool, string) { return &v, "" }
	for _, e := range ents {
		p := filepath.Join(dir, filepath.FromSlash(e.Path))
		fi, err := os.Lstat(p)
		if err != nil {
			return dirty(true)
		}
		switch e.Mode >> 12 {
		case 0o10: // regular file
			if !fi.Mode().IsRegular() || (fi.Mode().Perm()&0o100 != 0) != (e.Mode&0o100 != 0) || uint32(fi.Size()) != e.Size {
				return dirty(true)
			}
			id, err := blobID(p, fi.Size())
			if err != nil {
				return nil, err.Error()
			}
			if id != e.ID {
				return dirty(true)
			}
		case 0o12: // symlink: the blob is the target
			t, err := os.Readlink(p)
			if err != nil {
				return dirty(true)
			}
			if blobBytes([]byte(t)) != e.ID {
				return dirty(true)
			}
		}
		// gitlinks (submodules) are not looked into.
	}
	return dirty(false)
}

func blobID(p string, size int64) ([20]byte, error) {
	var id [20]byte
	// Regular files only, without blocking (a file swapped for a FIFO
	// after the Lstat), and no more than one byte past the size the
	// index expects (a file that grew is dirty either way).
	f, err := boundedfile.OpenRegular(p)
	if err != nil {
		return id, err
	}
	defer f.Close()
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", size)
	if _, err := io.Copy(h, io.LimitReader(f, size+1)); err != nil {
		return id, err
	}
	copy(id[:], h.Sum(nil))
	return id, nil
}

func blobBytes(b []byte) [20]byte {
	var id [20]byte
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	copy(id[:], h.Sum(nil))
	return id
}
