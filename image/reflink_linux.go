//go:build linux

package image

import (
	"os"

	"golang.org/x/sys/unix"
)

// cloneFile makes dst share src's extents (FICLONE: btrfs, XFS, bcachefs,
// overlayfs over those). It fails on file systems without reflinks and
// across file systems; the caller then copies.
func cloneFile(dst, src *os.File) error {
	return unix.IoctlFileClone(int(dst.Fd()), int(src.Fd()))
}
