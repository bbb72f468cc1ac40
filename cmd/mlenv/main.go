// Command mlenv builds reproducible ML images, fingerprints hosts, and signs
// and checks what it made. This package holds flags, output and exit codes
// only; the work is done by the packages it calls.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// exitError carries an exit code through cobra (1 = "no", 2 = "could not").
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(code int, err error) error { return &exitError{code: code, err: err} }

// printJSON writes v as indented JSON: every command's --output json.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func main() {
	// MLENV_CPUPROFILE=FILE writes a CPU profile (for `go tool pprof`).
	if p := os.Getenv("MLENV_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			pprof.StartCPUProfile(f)
		}
	}
	code := runMain()
	pprof.StopCPUProfile()
	os.Exit(code)
}

// interruptGrace is how long a command may take to clean up and return
// after SIGINT or SIGTERM before the process exits anyway.
const interruptGrace = 10 * time.Second

// runMain runs the CLI and returns the exit code. SIGINT and SIGTERM cancel
// the command's context instead of killing the process: the command
// returns, its deferred cleanups remove every temporary file, and only
// then does main exit. A second signal kills at once, as usual.
func runMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case <-ctx.Done():
		case <-finished:
			return
		}
		stop() // restore the default: the next signal ends the process
		// A command blocked where no context reaches (opening a FIFO, a
		// hung file system) would never return: `timeout` and Kubernetes
		// signal once, so end anyway after a grace period.
		select {
		case <-finished:
			return
		case <-time.After(interruptGrace):
		}
		fmt.Fprintf(os.Stderr, "mlenv: still busy %v after the signal; exiting without cleaning up (the next run sweeps temporary files of dead processes)\n", interruptGrace)
		os.Exit(130)
	}()
	root := newRoot()
	if err := root.ExecuteContext(ctx); err != nil {
		code := 2
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "mlenv: interrupted; temporary files removed")
			return code
		}
		if err.Error() != "" {
			fmt.Fprintln(os.Stderr, "mlenv:", err)
		}
		return code
	}
	return 0
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "mlenv",
		Short: "Reproducible, provable ML environments",
		Long: `mlenv builds bit-for-bit reproducible OCI images from a lockfile, fingerprints
the GPU/CPU/driver host, and signs what it made as in-toto attestations.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newVersionCmd(), newLockCmd(), newBuildCmd(), newFingerprintCmd(),
		newGenerateKeyPairCmd(), newSignCmd(), newAttestCmd(), newVerifyCmd(), newDiffCmd(), newPushModelCmd(), newPullModelCmd())
	return root
}
