//go:build !linux

package image

import (
	"errors"
	"os"
)

// cloneFile is Linux's FICLONE elsewhere: not offered, so the caller copies.
func cloneFile(dst, src *os.File) error { return errors.ErrUnsupported }
