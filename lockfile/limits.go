package lockfile

import (
	"errors"
	"fmt"
	"os"

	"github.com/mlenv/mlenv/internal/boundedfile"
)

// Bounds on the files mlenv reads, so that a mistaken or hostile input
// fails with a message instead of exhausting memory. Real intents are a
// few KiB; a lock holds about 300 bytes per wheel or deb, so 64 MiB is
// some 200,000 pinned files.
const (
	MaxIntentSize = 1 << 20  // mlenv.yaml
	MaxLockSize   = 64 << 20 // mlenv.lock
	MaxImportSize = 64 << 20 // pylock.toml, uv.lock, requirements files
)

// errTooLarge says which file is too large and what the bound is.
func errTooLarge(file, what string, size, max int64) error {
	return &FieldError{File: file, Msg: fmt.Sprintf("is %d bytes or more, larger than mlenv reads for %s (%d MiB): is this the right file?", size, what, max>>20)}
}

// readBounded reads file, refusing one larger than max without reading
// more than max+1 bytes of it (a FIFO or /dev/zero has no size to check first).
func readBounded(file, what string, max int64) ([]byte, error) {
	data, err := boundedfile.Read(file, max)
	return lockTooLarge(data, err, file, what, max)
}

// readBoundedFrom is readBounded for a file already open (a local input
// opened and checked through localpath).
func readBoundedFrom(f *os.File, file, what string, max int64) ([]byte, error) {
	data, err := boundedfile.ReadFrom(f, file, max)
	return lockTooLarge(data, err, file, what, max)
}

// lockTooLarge says boundedfile's TooLargeError in the lock's words.
func lockTooLarge(data []byte, err error, file, what string, max int64) ([]byte, error) {
	var tl *boundedfile.TooLargeError
	if errors.As(err, &tl) {
		return nil, errTooLarge(file, what, tl.Size, max)
	}
	return data, err
}
