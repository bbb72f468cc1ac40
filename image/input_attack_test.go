package image

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlenv/mlenv/internal/testutil"
)

// resolveWithin resolves ref, failing the test if that hangs (a FIFO
// opened for reading blocks until a writer comes, forever).
func resolveWithin(t *testing.T, ref string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := Resolve(ctx, mustParse(t, ref), Options{})
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("resolving %s still hangs after 10s", ref)
		return nil
	}
}

func goodLayout(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "layout")
	mustWrite(t, "oci:"+dir, testutil.RandomImage(t, "linux", "amd64"), WriteOptions{})
	return dir
}

// oci: inputs (verify, attest, fingerprint --image): index.json or a
// blob that is a FIFO hung the command (SIGTERM did not end it either);
// one that is a symlink to /dev/zero grew memory until the process
// crashed. A layout holds regular files only.
func TestLayoutInputWithSpecialFilesIsRefused(t *testing.T) {
	replace := map[string]func(t *testing.T, p string){
		"fifo": func(t *testing.T, p string) {
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Skipf("cannot make a FIFO here: %v", err)
			}
		},
		"dev-zero": func(t *testing.T, p string) {
			if err := os.Symlink("/dev/zero", p); err != nil {
				t.Fatal(err)
			}
		},
	}
	for kind, make := range replace {
		for _, which := range []string{"index.json", "manifest blob"} {
			t.Run(kind+"/"+which, func(t *testing.T) {
				dir := goodLayout(t)
				p := filepath.Join(dir, "index.json")
				if which != "index.json" {
					r, err := Resolve(ctx, mustParse(t, "oci:"+dir), Options{})
					if err != nil {
						t.Fatal(err)
					}
					p = filepath.Join(dir, "blobs", "sha256", r.Digest().Hex)
				}
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
				make(t, p)
				var before, after runtimeMem
				before.read()
				err := resolveWithin(t, "oci:"+dir)
				after.read()
				if err == nil || !strings.Contains(err.Error(), "not a regular file") || !strings.Contains(err.Error(), filepath.Base(p)) {
					t.Fatalf("got %v, want an error naming %s as not a regular file", err, filepath.Base(p))
				}
				if grew := after.total - before.total; grew > 64<<20 {
					t.Errorf("allocated %d MiB to refuse it", grew>>20)
				}
			})
		}
	}
}

// tar: inputs: a FIFO hung the command; a 10 KiB tarball whose config is
// a GNU sparse entry of 20 GiB of zeros made the process read it all into
// memory until it crashed. Entries cannot be larger than the file that
// holds them.
func TestTarballInputBombsAndFIFOsAreRefused(t *testing.T) {
	t.Run("fifo", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "in.tar")
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Skipf("cannot make a FIFO here: %v", err)
		}
		if err := resolveWithin(t, "tar:"+p); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("got %v, want an error saying it is not a regular file", err)
		}
	})
	t.Run("sparse config", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "in.tar")
		if err := os.WriteFile(p, sparseConfigTar(t, 20<<30), 0o644); err != nil {
			t.Fatal(err)
		}
		var before, after runtimeMem
		before.read()
		err := resolveWithin(t, "tar:"+p)
		after.read()
		if err == nil || !strings.Contains(err.Error(), "cfg.json") {
			t.Fatalf("got %v, want an error naming cfg.json", err)
		}
		if grew := after.total - before.total; grew > 64<<20 {
			t.Errorf("allocated %d MiB to refuse a 10 KiB file", grew>>20)
		}
	})
}

// sparseConfigTar is a `docker save`-shaped tarball whose config is an
// old-GNU sparse entry of size zeros with no data stored.
func sparseConfigTar(t *testing.T, size int64) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	manifest := `[{"Config":"cfg.json","RepoTags":[],"Layers":[]}]`
	if err := tw.WriteHeader(&tar.Header{Name: "manifest.json", Mode: 0o644, Size: int64(len(manifest)), Format: tar.FormatGNU}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(manifest))
	if err := tw.WriteHeader(&tar.Header{Name: "cfg.json", Mode: 0o644, Typeflag: tar.TypeReg, Format: tar.FormatGNU}); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	hdr := b[1024:1536] // manifest.json: header + one data block
	if !bytes.HasPrefix(hdr, []byte("cfg.json")) {
		t.Fatal("unexpected tar layout")
	}
	hdr[156] = tar.TypeGNUSparse
	copy(hdr[483:495], fmt.Sprintf("%012o", size)) // realsize
	copy(hdr[148:156], "        ")
	sum := 0
	for _, c := range hdr {
		sum += int(c)
	}
	copy(hdr[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

// An oci: output whose existing index.json is a FIFO hung the build at
// its very end (the old index is read to keep its other tags).
func TestLayoutOutputWithFIFOIndexIsRefused(t *testing.T) {
	dir := goodLayout(t)
	p := filepath.Join(dir, "index.json")
	os.Remove(p)
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Skipf("cannot make a FIFO here: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		done <- Write(ctx, mustParse(t, "oci:"+dir+":v2"), testutil.RandomImage(t, "linux", "amd64"), WriteOptions{})
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("got %v, want an error saying index.json is not a regular file", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("writing into a layout whose index.json is a FIFO still hangs after 10s")
	}
}

// A tar: output naming an existing file that is not a tarball (the lock,
// a wheel of the build, mlenv.yaml: `--output tar:mlenv.lock` typed for
// `--lock`) replaced it with the image. Such a file is refused and left
// as it was, also through a symbolic link; an earlier tarball and an
// empty file are still replaced.
func TestTarballOutputOverANonTarFileIsRefused(t *testing.T) {
	img := testutil.RandomImage(t, "linux", "amd64")
	dir := t.TempDir()
	lock := filepath.Join(dir, "mlenv.lock")
	wheel := filepath.Join(dir, "a-1.0-py3-none-any.whl")
	os.WriteFile(lock, []byte("schemaVersion: 1\nname: trainer\n"), 0o644)
	os.WriteFile(wheel, append([]byte("PK\x03\x04"), make([]byte, 1024)...), 0o644)
	link := filepath.Join(dir, "out.tar")
	os.Symlink(lock, link)
	for _, p := range []string{lock, wheel, link} {
		before, _ := os.ReadFile(p)
		err := Write(context.Background(), mustParse(t, "tar:"+p), img, WriteOptions{})
		if err == nil || !strings.Contains(err.Error(), "is not a tar archive") {
			t.Errorf("tar:%s: %v, want a refusal", filepath.Base(p), err)
		}
		if after, _ := os.ReadFile(p); !bytes.Equal(before, after) {
			t.Errorf("tar:%s changed the file", filepath.Base(p))
		}
	}
	es, _ := os.ReadDir(dir)
	if len(es) != 3 {
		t.Errorf("%d entries in the folder, want the 3 it had", len(es))
	}
	// An earlier tarball is replaced.
	old := filepath.Join(dir, "image.tar")
	if err := Write(context.Background(), mustParse(t, "tar:"+old), testutil.RandomImage(t, "linux", "arm64"), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := Write(context.Background(), mustParse(t, "tar:"+old), img, WriteOptions{}); err != nil {
		t.Errorf("replacing an earlier tarball: %v", err)
	}
}
