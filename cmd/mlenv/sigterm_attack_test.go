package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A command blocked in a system call that no context reaches (opening a
// FIFO with no writer, here the intent) ignored SIGTERM for good: the
// first signal only cancels the context. `timeout` and Kubernetes send
// SIGTERM once, so mlenv must still end, after a grace period.
func TestSIGTERMEndsABlockedCommand(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "mlenv.yaml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("cannot make a FIFO here: %v", err)
	}
	cmd := exec.Command(os.Args[0], "lock", "-f", fifo, "--check")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // let it block on the open
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("exit 0 after SIGTERM; stderr: %s", stderr.String())
		}
		t.Logf("ended %v after SIGTERM: %v; stderr: %s", time.Since(start).Round(time.Millisecond), err, stderr.String())
		if !strings.Contains(stderr.String(), "after the signal") {
			t.Errorf("stderr does not say why it ended: %s", stderr.String())
		}
	case <-time.After(interruptGrace + 10*time.Second):
		cmd.Process.Kill()
		t.Fatalf("still running %v after SIGTERM", interruptGrace+10*time.Second)
	}
}
