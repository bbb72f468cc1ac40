package diff

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/mlenv/mlenv/attest"
	"github.com/mlenv/mlenv/fingerprint"
	"github.com/mlenv/mlenv/internal/testutil"
)

// A `docker save` tar named by its path (no tar: prefix) is an image.
func TestLoadDetectsDockerSaveTar(t *testing.T) {
	f := filepath.Join(t.TempDir(), "saved.tar")
	ref, _ := name.ParseReference("example.invalid/app:v1")
	if err := tarball.WriteToFile(f, ref, testutil.RandomImage(t, "linux", "amd64")); err != nil {
		t.Fatal(err)
	}
	d, err := Load(context.Background(), f, "linux/amd64")
	if err != nil || d.Kind != KindImage || !strings.HasPrefix(d.Digest, "sha256:") {
		t.Fatalf("%+v %v", d, err)
	}
	if _, err := Load(context.Background(), t.TempDir(), "linux/amd64"); err == nil || !strings.Contains(err.Error(), "not an OCI image layout") {
		t.Errorf("plain folder: %v", err)
	}
}

// statement wraps a predicate the way a bundle holds it (the signature is
// not diff's business).
func statement(t *testing.T, predicateType string, predicate any) attest.Signed {
	t.Helper()
	st, err := json.Marshal(map[string]any{"_type": attest.StatementType, "predicateType": predicateType, "predicate": predicate})
	if err != nil {
		t.Fatal(err)
	}
	env, _ := json.Marshal(map[string]any{"payloadType": attest.PayloadType, "payload": base64.StdEncoding.EncodeToString(st), "signatures": []any{}})
	return attest.Signed{PredicateType: predicateType, Envelope: env}
}

// A bundle's SBOM packages compare with a lock's, its fingerprint with a
// host fingerprint.
func TestBundleAgainstLockAndHost(t *testing.T) {
	lockBytes, err := os.ReadFile("../examples/minimal/mlenv.lock")
	if err != nil {
		t.Fatal(err)
	}
	lock, err := Parse("mlenv.lock", lockBytes)
	if err != nil {
		t.Fatal(err)
	}
	var wheelSHA string
	for _, p := range lock.Packages {
		if p.Name == "hello-mlenv" {
			wheelSHA = p.Hash
		}
	}
	sbom := map[string]any{"spdxVersion": "SPDX-2.3", "packages": []any{
		map[string]any{"name": "image", "primaryPackagePurpose": "CONTAINER"},
		map[string]any{"name": "hello-mlenv", "versionInfo": "0.1.0",
			"checksums":    []any{map[string]string{"algorithm": "SHA256", "checksumValue": strings.Repeat("f", 64)}},
			"externalRefs": []any{map[string]string{"referenceType": "purl", "referenceLocator": "pkg:pypi/hello-mlenv@0.1.0"}}},
		map[string]any{"name": "mlenv-hello-data", "versionInfo": "1.0-1",
			"externalRefs": []any{map[string]string{"referenceType": "purl", "referenceLocator": "pkg:deb/debian/mlenv-hello-data@1.0-1?arch=all"}}},
	}}
	train := gpuHost(8, "NVIDIA H100 80GB HBM3", "Hopper", "9.0", "550.54.15", "12.4")
	train.ID = train.ComputeID() // as mlenv fingerprint writes it; an id that does not match is refused
	b, _ := json.Marshal(attest.Bundle{MediaType: attest.BundleMediaType, Image: "x", Digest: "sha256:" + strings.Repeat("a", 64),
		Attestations: []attest.Signed{
			statement(t, attest.SPDXPredicateType, sbom),
			statement(t, fingerprint.PredicateType, attest.FingerprintPredicate{Role: "train", Fingerprint: train}),
		}})
	bundle, err := Parse("bundle.json", b)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Compare(lock, bundle, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The SBOM says the wheel's sha256 is ffff...: a rebuilt wheel.
	if len(r.Findings) != 1 || r.Findings[0].Key != "python/hello-mlenv" || r.Findings[0].Detail != "same version, other artifact hash" ||
		!strings.Contains(r.Findings[0].A, wheelSHA[:12]) || strings.Join(r.Compared, ",") != "packages" {
		t.Errorf("lock vs bundle: %+v", r)
	}

	node := gpuHost(8, "NVIDIA H100 80GB HBM3", "Hopper", "9.0", "535.104.05", "12.2")
	r, err = Compare(bundle, &Description{Source: "node.json", Kind: KindFingerprint, Host: node}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(r.Compared, ",") != "host" || r.Counts[SectionHost] != 2 ||
		!strings.Contains(r.Findings[0].Consequence, "driver 535 on B supports CUDA up to 12.2") {
		t.Errorf("bundle vs host: %+v", r)
	}
}
