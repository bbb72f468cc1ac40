package cas

import (
	"encoding/json"
	"os"
	"path/filepath"
)

// A seal records the file-system state of a blob right after its bytes were
// hashed and found to match its digest: device, inode, size, mtime and
// ctime. A later cache hit whose state still equals the seal is known to be
// unchanged through the file system since that hash: every write changes
// the inode's ctime, and unlike mtime no program can set ctime back (the
// "mtime restored" edit that looks like bit rot is caught). Corruption
// below the file system (a failing disk) is not: Cache.FullVerify re-hashes
// every hit, for those who want that cost (`mlenv build --verify-cache full`).
//
// Why not always re-hash: a warm rebuild of a 1 GiB image reuses every
// layer; re-hashing them costs several times the rebuild itself.
type seal struct {
	Dev     uint64 `json:"dev"`
	Ino     uint64 `json:"ino"`
	Size    int64  `json:"size"`
	MtimeNs int64  `json:"mtimeNs"`
	CtimeNs int64  `json:"ctimeNs"`
}

func (c *Cache) sealPath(hexsum string) string {
	return filepath.Join(c.Dir, "seals", "sha256", hexsum)
}

// sealed reports whether the blob is unchanged since it was last verified.
func (c *Cache) sealed(hexsum string) bool {
	if c.FullVerify {
		return false
	}
	now, ok := statSeal(c.Path(hexsum))
	if !ok {
		return false
	}
	s, ok := c.readSeal(hexsum)
	return ok && s == now
}

// readSeal reads the blob's recorded seal, if there is a sound one.
func (c *Cache) readSeal(hexsum string) (seal, bool) {
	b, err := os.ReadFile(c.sealPath(hexsum))
	if err != nil || len(b) > 4096 {
		return seal{}, false
	}
	var s seal
	if json.Unmarshal(b, &s) != nil {
		return seal{}, false
	}
	return s, true
}

// writeSeal records the blob's state; call it only right after its bytes
// were hashed and matched. Failing to write a seal only costs a re-hash
// next time, so errors are ignored.
func (c *Cache) writeSeal(hexsum string) {
	s, ok := statSeal(c.Path(hexsum))
	if !ok {
		return
	}
	b, _ := json.Marshal(s)
	p := c.sealPath(hexsum)
	if os.MkdirAll(filepath.Dir(p), 0o755) != nil {
		return
	}
	tmp, err := CreateTemp(filepath.Dir(p))
	if err != nil {
		return
	}
	_, werr := tmp.Write(b)
	cerr := tmp.Close()
	if werr != nil || cerr != nil || os.Rename(tmp.Name(), p) != nil {
		os.Remove(tmp.Name())
	}
}

// Reseal follows a change of the blob's inode that did not touch its bytes
// (a hard link into an output changes the link count, hence the ctime): it
// renews the seal only if the blob was sealed before and its device, inode,
// size and mtime are those of the seal. A seal that still holds (the
// output was a tarball or a registry, or the blob was copied, not linked)
// is left as it is.
func (c *Cache) Reseal(hexsum string) {
	old, ok := c.readSeal(hexsum)
	if !ok {
		return
	}
	now, ok := statSeal(c.Path(hexsum))
	if !ok || now == old || now.Dev != old.Dev || now.Ino != old.Ino || now.Size != old.Size || now.MtimeNs != old.MtimeNs {
		return
	}
	c.writeSeal(hexsum)
}

// ResealFile is Reseal for a blob given by its path in a cache
// (DIR/blobs/sha256/<hex>); other paths are ignored.
func ResealFile(blobPath string) {
	algo := filepath.Dir(blobPath)
	blobs := filepath.Dir(algo)
	if filepath.Base(algo) != "sha256" || filepath.Base(blobs) != "blobs" || !hexDigest.MatchString(filepath.Base(blobPath)) {
		return
	}
	(&Cache{Dir: filepath.Dir(blobs)}).Reseal(filepath.Base(blobPath))
}
