// Package boundedfile reads whole files that must be small (locks,
// manifests, signatures, git metadata) with a bound on what it reads, so
// that a mistaken or hostile input fails with a message instead of
// exhausting memory or blocking.
//
// Read is for a file the user named: a pipe is fine there (process
// substitution, /dev/stdin), and whatever it is, no more than limit+1
// bytes are read. ReadRegular is for a file found inside an input (an
// image layout, a model folder, a .git folder): anything but a regular
// file is refused, and a named pipe is refused without blocking, because
// the file is opened non-blocking and checked on the open descriptor
// (no window between a check and the open).
package boundedfile

import (
	"fmt"
	"io"
	"os"
)

// TooLargeError says a file held more than the bound. Size is the file's
// size when known, otherwise limit+1 (it holds at least that).
type TooLargeError struct {
	Path        string
	Size, Limit int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s is %d bytes or more, larger than the %d bytes read for it", e.Path, e.Size, e.Limit)
}

// NotRegularError says ReadRegular was given a folder, pipe, socket or
// device.
type NotRegularError struct {
	Path string
	Kind string // "a folder", "a named pipe", ...
}

func (e *NotRegularError) Error() string {
	return fmt.Sprintf("%s is %s, not a regular file", e.Path, e.Kind)
}

// Read reads the file at path, refusing one larger than limit without
// reading more than limit+1 bytes of it.
func Read(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return read(f, path, limit)
}

// ReadRegular reads the regular file at path (symlinks followed),
// refusing anything else, and one larger than limit.
func ReadRegular(path string, limit int64) ([]byte, error) {
	f, err := OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return read(f, path, limit)
}

// OpenRegular opens the regular file at path for reading (symlinks
// followed), refusing anything else without blocking: for a file read as
// a stream, with its own bound.
func OpenRegular(path string) (*os.File, error) {
	return openRegular(path, 0)
}

// OpenRegularNoFollow is OpenRegular for a path already resolved (its
// symlinks checked): a symlink put in its last component's place since is
// refused, not followed.
func OpenRegularNoFollow(path string) (*os.File, error) {
	return openRegular(path, noFollow)
}

func openRegular(path string, flags int) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|nonBlock|flags, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, &NotRegularError{Path: path, Kind: Kind(fi.Mode())}
	}
	return f, nil
}

// ReadFrom reads the already open f (named path in errors) to its end,
// refusing more than limit bytes: for a file the caller opened its own
// way (a local input opened and checked by localpath).
func ReadFrom(f *os.File, path string, limit int64) ([]byte, error) {
	return read(f, path, limit)
}

func read(f *os.File, path string, limit int64) ([]byte, error) {
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > limit {
		return nil, &TooLargeError{Path: path, Size: fi.Size(), Limit: limit}
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, &TooLargeError{Path: path, Size: int64(len(b)), Limit: limit}
	}
	return b, nil
}

// Kind names a file mode's type in words, for errors.
func Kind(m os.FileMode) string {
	switch {
	case m.IsRegular():
		return "a regular file"
	case m.IsDir():
		return "a folder"
	case m&os.ModeSymlink != 0:
		return "a symlink"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a device"
	}
	return "a special file"
}
