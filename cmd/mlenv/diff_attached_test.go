package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sigstore/cosign/v2/pkg/cosign/attestation"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/dsse"

	"github.com/mlenv/mlenv/attest"
	"github.com/mlenv/mlenv/fingerprint"
	"github.com/mlenv/mlenv/internal/testutil"
)

func hostFP(driver string, avx512 bool) *fingerprint.Fingerprint {
	feats := []string{"AVX2", "FMA"}
	if avx512 {
		feats = append(feats, "AVX512F")
	}
	fp := &fingerprint.Fingerprint{Version: fingerprint.SchemaVersion,
		GPU: fingerprint.GPU{Available: true, DriverVersion: driver, CUDADriverVersion: "12.8",
			Devices: []fingerprint.Device{{Name: "NVIDIA H200", Architecture: "Hopper", ComputeCapability: "9.0"}}},
		CPU: fingerprint.CPU{Vendor: "GenuineIntel", GOARCH: "amd64", X86Level: 3, NumericsFeatures: feats},
		Env: map[string]string{}}
	fp.ID = fp.ComputeID()
	return fp
}

func sbomDoc(pkgs map[string]string) map[string]any {
	var list []any
	for n, v := range pkgs {
		list = append(list, map[string]any{"SPDXID": "SPDXRef-" + n, "name": n, "versionInfo": v,
			"externalRefs": []any{map[string]any{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": "pkg:pypi/" + n + "@" + v}}})
	}
	return map[string]any{"spdxVersion": "SPDX-2.3", "packages": list}
}

// attachStatements signs and attaches statements to ref's digest;
// fingerprintByCosign writes the fingerprint the way `cosign attest
// --type https://mlenv.dev/fingerprint/v1` does (bare, in-toto v0.1).
func attachStatements(t *testing.T, sv signature.SignerVerifier, ref string, lockDigest string, pkgs map[string]string, fp *fingerprint.Fingerprint, fingerprintByCosign bool) {
	t.Helper()
	r, err := name.ParseReference(ref)
	must(t, err)
	d := r.(name.Digest)
	var signed []attest.Signed
	sign := func(predicateType string, pred any) {
		st, err := attest.Statement(d.Context().String(), d.DigestStr(), predicateType, pred)
		must(t, err)
		s, err := attest.Sign(sv, st)
		must(t, err)
		signed = append(signed, s)
	}
	sign("https://slsa.dev/provenance/v1", map[string]any{"buildDefinition": map[string]any{"externalParameters": map[string]any{"lock": map[string]string{"digest": lockDigest}}}})
	sign(attest.SPDXPredicateType, sbomDoc(pkgs))
	if !fingerprintByCosign {
		sign(fingerprint.PredicateType, attest.FingerprintPredicate{Role: "train", Fingerprint: fp})
	} else {
		b, err := fp.JSON()
		must(t, err)
		st, err := attestation.GenerateStatement(attestation.GenerateOpts{Predicate: bytes.NewReader(b), Type: fingerprint.PredicateType,
			Digest: strings.TrimPrefix(d.DigestStr(), "sha256:"), Repo: d.Context().String(), Time: time.Now})
		must(t, err)
		payload, _ := json.Marshal(st)
		env, err := dsse.WrapSigner(sv, attest.PayloadType).SignMessage(bytes.NewReader(payload))
		must(t, err)
		signed = append(signed, attest.Signed{PredicateType: fingerprint.PredicateType, Envelope: env})
	}
	must(t, attest.Attach(context.Background(), d, signed))
}

// TestDiffAttachedStatements: `mlenv diff --attestations` compares what
// is attached to two registry images: lock digest, SBOM packages and the
// training fingerprint (also one that `cosign attest` attached).
func TestDiffAttachedStatements(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("COSIGN_PASSWORD", "pw")
	keyPath, _, err := attest.GenerateKeyPair(dir, false)
	must(t, err)
	sv, err := attest.LoadSigner(context.Background(), keyPath)
	must(t, err)
	reg := testutil.Registry(t, nil)
	push := func(tag string) string {
		img := testutil.RandomImage(t, "linux", "amd64")
		testutil.Push(t, img, reg+"/team/train:"+tag)
		dg, err := img.Digest()
		must(t, err)
		return reg + "/team/train@" + dg.String()
	}
	a, b, bare := push("a"), push("b"), push("bare")
	lockA, lockB := "sha256:"+strings.Repeat("a", 64), "sha256:"+strings.Repeat("b", 64)
	attachStatements(t, sv, a, lockA, map[string]string{"numpy": "1.26.4", "torch": "2.4.0"}, hostFP("580.159.04", true), false)
	attachStatements(t, sv, b, lockB, map[string]string{"numpy": "2.0.0", "torch": "2.4.0"}, hostFP("535.261.03", false), true)

	r, code := diffJSON(t, "--attestations", a, b)
	if code != 1 || r.A.Kind != "attestations" || r.B.Kind != "attestations" {
		t.Fatalf("exit %d, %+v", code, r)
	}
	got := " " + strings.Join(keysOf(r, ""), " ") + " "
	for _, want := range []string{"packages:python/numpy", "config:lock.digest", "host:gpu.driverVersion", "host:cpu.numericsFeatures.AVX512F"} {
		if !strings.Contains(got, " "+want+" ") {
			t.Errorf("findings lack %s: %s", want, got)
		}
	}
	if strings.Contains(got, "torch") {
		t.Errorf("an unchanged package reported: %s", got)
	}

	// The same image against itself: exit 0, the summary only.
	stdout, stderr, code := run(t, "diff", "--attestations", a, a)
	if code != 0 || strings.Count(strings.TrimSpace(stdout), "\n") != 0 {
		t.Errorf("same: exit %d\n%s%s", code, stdout, stderr)
	}

	// An image's training fingerprint against a host fingerprint file:
	// the hosts are compared.
	fpFile := filepath.Join(dir, "host.json")
	fb, _ := hostFP("580.159.04", true).JSON()
	must(t, os.WriteFile(fpFile, fb, 0o644))
	r, code = diffJSON(t, "--attestations", a, fpFile)
	if code != 0 || len(r.Compared) != 1 || r.Compared[0] != "host" {
		t.Errorf("image vs its own training host: exit %d, %+v", code, r)
	}
	r, code = diffJSON(t, "--attestations", b, fpFile)
	if code != 1 || r.Counts["host"] == 0 {
		t.Errorf("image vs another host: exit %d, %+v", code, r)
	}

	// Nothing attached: exit 2, said plainly.
	stdout, stderr, code = run(t, "diff", "--attestations", bare, a)
	if code != 2 || !strings.Contains(stderr, "no attestations attached") || stdout != "" {
		t.Errorf("unattested: exit %d, stderr %q, stdout %q", code, stderr, stdout)
	}
	// A tampered envelope (not DSSE) is an error naming the attestation.
	must(t, attest.Attach(context.Background(), mustDigestRef(t, bare), []attest.Signed{{PredicateType: attest.SPDXPredicateType, Envelope: []byte(`{"payloadType":"text/plain","payload":""}`)}}))
	_, stderr, code = run(t, "diff", "--attestations", bare, a)
	if code != 2 || !strings.Contains(stderr, "attestation 1: payload type") {
		t.Errorf("bad envelope: exit %d, %q", code, stderr)
	}
}

func mustDigestRef(t *testing.T, ref string) name.Digest {
	t.Helper()
	d, err := name.NewDigest(ref)
	must(t, err)
	return d
}
