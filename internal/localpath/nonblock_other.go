//go:build !unix

package localpath

const nonblock = 0

// nofollow refuses a symlink as the last path component.
const nofollow = 0
