package image

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/mlenv/mlenv/internal/testutil"
)

// A run killed with SIGKILL cannot clean up; the next write to the same
// output removes what it left (its temporaries carry its pid), and nothing
// else next to the output.
func TestStaleOutputTemporariesAreSwept(t *testing.T) {
	img := testutil.RandomImage(t, "linux", "amd64")
	dir := t.TempDir()
	const deadPid = "999999999"
	staleTar := filepath.Join(dir, ".image.tar.tmp-"+deadPid+"-123")
	staleLayout := filepath.Join(dir, ".layout.tmp-"+deadPid+"-456")
	staleBlob := filepath.Join(dir, "existing", "blobs", "sha256", ".0123456789ab.tmp-"+deadPid+"-789")
	foreign := filepath.Join(dir, ".other.tmp-"+deadPid+"-1") // not ours for these outputs
	os.WriteFile(staleTar, make([]byte, 100), 0o644)
	os.MkdirAll(staleLayout, 0o755)
	os.WriteFile(foreign, nil, 0o644)

	mustWrite(t, "tar:"+filepath.Join(dir, "image.tar"), img, WriteOptions{})
	mustWrite(t, "oci:"+filepath.Join(dir, "layout"), img, WriteOptions{})
	mustWrite(t, "oci:"+filepath.Join(dir, "existing"), img, WriteOptions{})
	os.WriteFile(staleBlob, make([]byte, 100), 0o644)
	mustWrite(t, "oci:"+filepath.Join(dir, "existing"), img, WriteOptions{}) // an update in place

	for _, p := range []string{staleTar, staleLayout, staleBlob} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("stale temporary %s was not swept", filepath.Base(p))
		}
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Errorf("a temporary of another output was removed: %v", err)
	}
}
