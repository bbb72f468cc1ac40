//go:build !unix

package boundedfile

const nonBlock = 0

const noFollow = 0
