//go:build unix

package localpath

import "syscall"

// nonblock keeps open() of a FIFO from waiting for a writer.
const nonblock = syscall.O_NONBLOCK

// nofollow refuses a symlink as the last path component.
const nofollow = syscall.O_NOFOLLOW
