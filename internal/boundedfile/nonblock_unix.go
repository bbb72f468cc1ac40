//go:build unix

package boundedfile

import "syscall"

// nonBlock opens a named pipe without waiting for a writer; it does not
// change how a regular file reads.
const nonBlock = syscall.O_NONBLOCK

// noFollow refuses a symlink as the last path component.
const noFollow = syscall.O_NOFOLLOW
