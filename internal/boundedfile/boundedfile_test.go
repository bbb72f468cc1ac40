package boundedfile

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	os.WriteFile(small, []byte("hello"), 0o644)
	for _, read := range []func(string, int64) ([]byte, error){Read, ReadRegular} {
		if b, err := read(small, 5); err != nil || string(b) != "hello" {
			t.Fatalf("exactly at the limit: %q, %v", b, err)
		}
		_, err := read(small, 4)
		var tl *TooLargeError
		if !errors.As(err, &tl) || tl.Size != 5 || tl.Limit != 4 || tl.Path != small {
			t.Fatalf("over the limit: %v", err)
		}
		if _, err := read(filepath.Join(dir, "missing"), 4); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("missing file: %v", err)
		}
	}
}

// TestDeviceIsBounded: /dev/zero has no size; Read stops after limit+1
// bytes, ReadRegular refuses it.
func TestDeviceIsBounded(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero on this system")
	}
	var tl *TooLargeError
	if _, err := Read("/dev/zero", 1<<20); !errors.As(err, &tl) || tl.Size != 1<<20+1 {
		t.Fatalf("Read(/dev/zero): %v", err)
	}
	var nr *NotRegularError
	if _, err := ReadRegular("/dev/zero", 1<<20); !errors.As(err, &nr) || nr.Kind != "a character device" {
		t.Fatalf("ReadRegular(/dev/zero): %v", err)
	}
}

// TestFIFOWithoutWriter: ReadRegular refuses a named pipe at once instead
// of waiting for a writer that never comes; so does it for a folder.
func TestFIFOWithoutWriter(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "model.sig")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("cannot make a FIFO here: %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := ReadRegular(fifo, 1<<20); done <- err }()
	select {
	case err := <-done:
		var nr *NotRegularError
		if !errors.As(err, &nr) || nr.Kind != "a named pipe (FIFO)" || nr.Path != fifo {
			t.Fatalf("got %v, want a not-a-regular-file error naming the pipe", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ReadRegular blocked on a FIFO without a writer")
	}
	var nr *NotRegularError
	if _, err := ReadRegular(dir, 10); !errors.As(err, &nr) || nr.Kind != "a folder" {
		t.Fatalf("folder: %v", err)
	}
}

// TestPipeIsRead: Read takes what a pipe gives (process substitution).
func TestPipeIsRead(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() { w.Write([]byte("from a pipe")); w.Close() }()
	p := "/dev/fd/" + strconv.Itoa(int(r.Fd()))
	if _, err := os.Stat(p); err != nil {
		t.Skipf("no /dev/fd here: %v", err)
	}
	b, err := Read(p, 100)
	if err != nil || string(b) != "from a pipe" {
		t.Fatalf("got %q, %v", b, err)
	}
}
