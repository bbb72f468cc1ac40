//go:build !unix

package boundedfile

const nonBlock = 0
