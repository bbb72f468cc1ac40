package cas

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func putBlob(t testing.TB, c *Cache, body []byte) string {
	t.Helper()
	sum, _, err := HashReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Put(bytes.NewReader(body), sum, int64(len(body))); err != nil {
		t.Fatal(err)
	}
	return sum
}

// flipByte changes one byte in place and restores the mtime, the way bit
// rot (or a careful attacker) looks to a check that trusts mtimes.
func flipByte(t *testing.T, p string) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, 0o644)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	f.ReadAt(b, 3)
	b[0] ^= 0x01
	f.WriteAt(b, 3)
	f.Close()
	os.Chmod(p, 0o444)
	if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
}

func TestSealedBlobIsTrustedUntilItsInodeChanges(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("seals need ctime (unix only); elsewhere every hit is re-hashed")
	}
	c := &Cache{Dir: t.TempDir()}
	sum := putBlob(t, c, []byte("some layer bytes"))
	if !c.sealed(sum) {
		t.Fatal("a blob just put is not sealed")
	}
	if err := c.Verify(sum); err != nil {
		t.Fatal(err)
	}
	// One byte flipped, mtime restored: the seal no longer holds (ctime
	// moved), so Verify re-hashes and removes the blob.
	time.Sleep(10 * time.Millisecond)
	flipByte(t, c.Path(sum))
	if c.sealed(sum) {
		t.Fatal("a flipped byte with the mtime restored still matches the seal")
	}
	if err := c.Verify(sum); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("corrupt blob accepted: %v", err)
	}
	if _, err := os.Stat(c.Path(sum)); !os.IsNotExist(err) {
		t.Error("corrupt blob kept")
	}
}

func TestResealAfterHardLink(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	sum := putBlob(t, c, []byte("linked into an output"))
	time.Sleep(10 * time.Millisecond)
	if err := os.Link(c.Path(sum), filepath.Join(t.TempDir(), "out")); err != nil {
		t.Skipf("no hard links here: %v", err)
	}
	if c.sealed(sum) {
		t.Skip("this file system does not change ctime on link; nothing to reseal")
	}
	c.Reseal(sum)
	if !c.sealed(sum) {
		t.Error("Reseal after a link did not renew the seal")
	}
	// Reseal never blesses changed bytes: after a flip the mtime restore
	// is the only thing that matches, and the inode state is re-checked.
	time.Sleep(10 * time.Millisecond)
	flipByte(t, c.Path(sum))
	os.Chtimes(c.Path(sum), time.Unix(1, 0), time.Unix(1, 0))
	c.Reseal(sum)
	if c.sealed(sum) {
		t.Error("Reseal blessed a blob whose mtime changed")
	}
}

// Corruption below the file system keeps the inode as it was: the seal
// cannot see it (documented), FullVerify does.
func TestFullVerifyRehashesSealedBlobs(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	sum := putBlob(t, c, []byte("sealed, then rotted on disk"))
	flipByte(t, c.Path(sum))
	c.writeSeal(sum) // pretend the disk changed under the file system
	if err := c.Verify(sum); err != nil {
		t.Fatalf("the documented limit changed: a sealed blob is trusted (%v)", err)
	}
	full := &Cache{Dir: c.Dir, FullVerify: true}
	if err := full.Verify(sum); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("FullVerify accepted a corrupt blob: %v", err)
	}
}
