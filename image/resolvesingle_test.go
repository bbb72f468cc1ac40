package image

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/mlenv/mlenv/internal/testutil"
)

// TestResolveSingle: the one way attest, its training image and verify
// resolve an image. A single image comes back with the digest its bytes
// hash to; an index is refused; a layout whose manifest blob was edited
// after it was written is refused (its bytes no longer hash to the digest
// index.json names), so no statement is ever made about other bytes.
func TestResolveSingle(t *testing.T) {
	dir := goodLayout(t)
	r, img, err := ResolveSingle(ctx, "oci:"+dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d := digestOf(t, img); d != r.Digest() {
		t.Fatalf("image %s, resolved %s", d, r.Digest())
	}

	amd, arm := testutil.RandomImage(t, "linux", "amd64"), testutil.RandomImage(t, "linux", "arm64")
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
	idxDir := filepath.Join(t.TempDir(), "index")
	mustWrite(t, "oci:"+idxDir, idx, WriteOptions{})
	if _, _, err := ResolveSingle(ctx, "oci:"+idxDir, Options{}); err == nil || !strings.Contains(err.Error(), "multi-platform index") {
		t.Fatalf("index: got %v", err)
	}

	// Edit the manifest blob in place, keeping its name and size.
	manifest := filepath.Join(dir, "blobs", "sha256", r.Digest().Hex)
	b, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(b), `"schemaVersion":2`, `"schemaVersion":3`, 1)
	if edited == string(b) {
		t.Fatalf("test cannot edit the manifest: %s", b)
	}
	os.Chmod(manifest, 0o644)
	if err := os.WriteFile(manifest, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = ResolveSingle(ctx, "oci:"+dir, Options{})
	if err == nil || !strings.Contains(err.Error(), r.Digest().String()) {
		t.Fatalf("edited manifest: got %v, want an error naming the digest it no longer hashes to", err)
	}
	t.Logf("edited manifest: %v", err)
}
