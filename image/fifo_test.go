//go:build unix

package image

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/mlenv/mlenv/internal/testutil"
)

// TestTarballIntoFIFO: a FIFO output is written in place (a reader gets the
// tarball) and is still a FIFO afterwards, not a regular file.
func TestTarballIntoFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "pipe")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("cannot make a FIFO here: %v", err)
	}
	got := make(chan []byte, 1)
	go func() {
		f, err := os.Open(fifo)
		if err != nil {
			got <- nil
			return
		}
		defer f.Close()
		b, _ := io.ReadAll(f)
		got <- b
	}()
	img := testutil.RandomImage(t, "linux", "amd64")
	mustWrite(t, "tar:"+fifo, img, WriteOptions{})
	b := <-got
	read, err := tarball.Image(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }, nil)
	if err != nil {
		t.Fatalf("what came through the FIFO is no tarball: %v", err)
	}
	if d, _ := read.ConfigName(); d != mustConfigName(t, img) {
		t.Errorf("config %s through the FIFO", d)
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("the FIFO was replaced: %v %v", fi.Mode(), err)
	}
}
