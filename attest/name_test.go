package attest_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlenv/mlenv/attest"
	"github.com/mlenv/mlenv/image"
	"github.com/mlenv/mlenv/internal/testutil"
)

// TestLocalImageIsNotNamedAfterItsPath: attesting oci:<tmp>/x must not put
// the build machine's folder into signed statements or the SBOM.
func TestLocalImageIsNotNamedAfterItsPath(t *testing.T) {
	t.Setenv("COSIGN_PASSWORD", "pw")
	dir := filepath.Join(t.TempDir(), "private-folder")
	key, _, err := attest.GenerateKeyPair(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := image.Parse("oci:" + filepath.Join(dir, "x"))
	if err := image.Write(context.Background(), out, testutil.RandomImage(t, "linux", "amd64"), image.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "bundle.json")
	res, err := attest.Run(context.Background(), attest.Options{Image: out.String(), KeyRef: key, BundlePath: bundle})
	if err != nil {
		t.Fatal(err)
	}
	if res.Image != image.DefaultName {
		t.Errorf("result names the image %q, want %q", res.Image, image.DefaultName)
	}
	raw, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	texts := []string{string(raw)}
	b, err := attest.ReadBundle(bundle)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range b.Attestations {
		var env struct{ Payload string }
		if err := json.Unmarshal(s.Envelope, &env); err != nil {
			t.Fatal(err)
		}
		p, err := base64.StdEncoding.DecodeString(env.Payload)
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, string(p))
		var st struct {
			Subject []struct{ Name string }
		}
		json.Unmarshal(p, &st)
		if len(st.Subject) != 1 || st.Subject[0].Name != image.DefaultName {
			t.Errorf("%s: subject %+v", s.PredicateType, st.Subject)
		}
		if s.PredicateType == attest.SPDXPredicateType && !strings.Contains(string(p), `"pkg:oci/image@sha256%3A`) {
			t.Errorf("SBOM purl is not pkg:oci/image@...: %s", p)
		}
	}
	for _, text := range texts {
		if strings.Contains(text, "private-folder") || strings.Contains(text, dir) {
			t.Errorf("the local path leaked into: %.300s", text)
		}
	}
}
