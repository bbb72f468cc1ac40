package cas

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Temporary files in the cache are named .tmp-<pid>-<random>: the pid says
// which process owns one, so that a later run can tell a file being written
// by a live build from the leftover of a killed one (SIGKILL, power loss:
// cases where no deferred cleanup runs).
const tempPrefix = ".tmp-"

// staleAge is the age after which a temporary file is swept even if a
// process with its pid is alive (pids are reused).
const staleAge = 24 * time.Hour

// CreateTemp creates a temporary file in dir named for this process.
func CreateTemp(dir string) (*os.File, error) {
	return os.CreateTemp(dir, fmt.Sprintf("%s%d-*", tempPrefix, os.Getpid()))
}

// CreateBlobTemp creates a temporary file in the cache's blob folder, where
// a committed blob is renamed to (by Put, or by a writer outside this
// package, the layer writer, with Commit).
func (c *Cache) CreateBlobTemp() (*os.File, error) {
	dir := filepath.Join(c.Dir, "blobs", "sha256")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating cache folder: %w", err)
	}
	f, err := CreateTemp(dir)
	if err != nil {
		return nil, fmt.Errorf("creating cache file: %w", err)
	}
	return f, nil
}

// Commit makes a closed temporary file the blob hexsum, read-only: a blob
// is never edited in place, and 0444 keeps an output that hard-links it
// from being changed through the link.
func (c *Cache) Commit(tmpName, hexsum string) error {
	if err := os.Chmod(tmpName, 0o444); err != nil {
		return fmt.Errorf("committing cache blob: %w", err)
	}
	if err := os.Rename(tmpName, c.Path(hexsum)); err != nil {
		return fmt.Errorf("committing cache blob: %w", err)
	}
	// The caller hashed these bytes as it wrote them.
	c.writeSeal(hexsum)
	return nil
}

// SweepStale removes temporary files that a killed mlenv left in the cache:
// those whose owner process is gone, and any older than a day. It returns
// how many it removed; files it cannot judge are left alone.
func (c *Cache) SweepStale() int {
	n := 0
	for _, dir := range []string{filepath.Join(c.Dir, "blobs", "sha256"), filepath.Join(c.Dir, "layers"), filepath.Join(c.Dir, "seals", "sha256")} {
		n += SweepDir(dir)
	}
	return n
}

// SweepDir is SweepStale for one folder.
func SweepDir(dir string) int { return SweepNamed(dir, "") }

// TempPattern is the os.CreateTemp pattern for a temporary file or folder
// of this process named after what it will become: "<name>.tmp-<pid>-*".
func TempPattern(name string) string {
	return fmt.Sprintf("%s%s%d-*", name, tempPrefix, os.Getpid())
}

// SweepNamed removes stale temporaries made with TempPattern(base) in dir
// (base "" matches any). Next to a user's output only mlenv's own
// temporaries for that output are touched, never other files.
func SweepNamed(dir, base string) int {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		name, prefix := e.Name(), base
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		i := strings.Index(name[len(prefix):], tempPrefix)
		if i < 0 || (prefix != "" && i != 0) {
			continue
		}
		rest := name[len(prefix)+i+len(tempPrefix):]
		pidStr, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid <= 0 {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		if pid == os.Getpid() && time.Since(info.ModTime()) < staleAge {
			continue
		}
		if processAlive(pid) && time.Since(info.ModTime()) < staleAge {
			continue
		}
		if os.RemoveAll(filepath.Join(dir, name)) == nil {
			n++
		}
	}
	return n
}
