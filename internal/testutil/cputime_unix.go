//go:build unix

package testutil

import (
	"syscall"
	"time"
)

// CPUTime is the process's user + system CPU time: on a shared machine
// wall time says more about the neighbours than about the code, CPU time
// does not.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
