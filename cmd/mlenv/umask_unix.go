//go:build unix

package main

import (
	"os"
	"strconv"
	"syscall"
)

// applyReproUmask sets the umask the second build of --check-reproducible
// runs under (in that child process only: umask is process-wide).
func applyReproUmask() {
	if v := os.Getenv("MLENV_REPRO_UMASK"); v != "" {
		if m, err := strconv.ParseUint(v, 8, 32); err == nil {
			syscall.Umask(int(m))
		}
	}
}
