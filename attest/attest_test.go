package attest_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci"
	cempty "github.com/sigstore/cosign/v2/pkg/oci/empty"
	cmutate "github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	cstatic "github.com/sigstore/cosign/v2/pkg/oci/static"
	ctypes "github.com/sigstore/cosign/v2/pkg/types"

	"github.com/mlenv/mlenv/attest"
	"github.com/mlenv/mlenv/builder"
	"github.com/mlenv/mlenv/internal/cas"
	"github.com/mlenv/mlenv/internal/testutil"
	"github.com/mlenv/mlenv/lockfile"
)

var appWheel = testutil.Wheel{Name: "trainer", Version: "2.1.0", Files: map[string]string{"trainer/__init__.py": "x = 1\n"}}

// appDeb's copyright file is machine-readable: the locked deb's license
// comes from it.
var appDeb = testutil.Deb{Package: "trainer-data", Version: "1.0", Arch: "all",
	Files: []testutil.TarEntry{
		{Name: "./usr/share/trainer/data.txt", Body: "d"},
		{Name: "./usr/share/doc/trainer-data/copyright", Body: dep5Header + "Files: *\nCopyright: 2024 Trainer\nLicense: Apache-2.0\n"},
	}}

const dep5Header = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nUpstream-Name: x\n\n"

// baseImage is a base with packages that only its layers declare: debs
// in dpkg's status file, with Debian copyright files of every kind (two
// machine-readable, using one LicenseRef name with different texts, a
// free-text one, a malformed one and an oversized one), a Python
// distribution and a conda package.
func baseImage(t *testing.T) v1.Image {
	t.Helper()
	status := "Package: libc6\nStatus: install ok installed\nVersion: 2.36-9+deb12u4\nArchitecture: amd64\n\n" +
		"Package: zlib1g\nStatus: install ok installed\nVersion: 1:1.2.13.dfsg-1\nArchitecture: amd64\n\n" +
		"Package: freetext\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\n\n" +
		"Package: malformed\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\n\n" +
		"Package: huge\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\n\n" +
		"Package: removed-pkg\nStatus: deinstall ok config-files\nVersion: 1\nArchitecture: amd64\n"
	layer := testutil.Tar([]testutil.TarEntry{
		{Name: "etc/os-release", Body: "ID=debian\nVERSION_ID=\"12\"\n"},
		{Name: "var/lib/dpkg/status", Body: status},
		{Name: "usr/share/doc/libc6/copyright", Body: dep5Header +
			"Files: *\nCopyright: 1991 FSF\nLicense: LGPL-2.1+\n\nFiles: debian/*\nCopyright: 2020 Debian\nLicense: GPL-2+ or public-domain\n\n" +
			"License: public-domain\n The libc6 parts are in the public domain.\n"},
		{Name: "usr/share/doc/zlib1g/copyright", Body: dep5Header +
			"Files: *\nLicense: Zlib\n\nFiles: contrib/*\nLicense: public-domain\n The zlib contributions are in the public domain.\n"},
		{Name: "usr/share/doc/freetext/copyright", Body: "This package was debianized in 1999.\nIt is licensed under the GPL.\n"},
		{Name: "usr/share/doc/malformed/copyright", Body: dep5Header + "Files: *\nLicense:\n"},
		{Name: "usr/share/doc/huge/copyright", Body: dep5Header + "Files: *\nLicense: MIT\n" + strings.Repeat(" padding\n", 2<<20/9)},
		{Name: "usr/lib/python3/dist-packages/numpy-1.26.4.dist-info/METADATA", Body: "Metadata-Version: 2.1\nName: numpy\nVersion: 1.26.4\nLicense: BSD-3-Clause\n\nlong description\nName: not-a-header\n"},
		{Name: "usr/lib/python3/dist-packages/six-1.16.0.egg-info", Body: "Metadata-Version: 1.1\nName: six\nVersion: 1.16.0\nLicense: MIT License and more words\n"},
		{Name: "opt/conda/conda-meta/zstd-1.5.5-0.json", Body: `{"name": "zstd", "version": "1.5.5", "license": "BSD-3-Clause"}`},
	})
	img, err := mutate.AppendLayers(empty.Image, testutil.TarBytesLayer(t, layer))
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// fixture is a registry with a built, pushed image and a key pair.
type fixture struct {
	host, ref  string
	digest     name.Digest
	lockPath   string
	key, pub   string
	refuseAtt  *atomic.Bool
	onAttWrite func()
}

func setup(t *testing.T) *fixture {
	t.Helper()
	t.Setenv("COSIGN_PASSWORD", "correct horse")
	f := &fixture{refuseAtt: &atomic.Bool{}}
	f.host = testutil.Registry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, ".att") && r.Method == http.MethodPut {
				if f.refuseAtt.Load() {
					http.Error(w, `{"errors":[{"code":"DENIED","message":"write refused by policy"}]}`, http.StatusForbidden)
					return
				}
				if f.onAttWrite != nil {
					f.onAttWrite()
				}
			}
			h.ServeHTTP(w, r)
		})
	})
	baseRef := testutil.Push(t, baseImage(t), f.host+"/base:12")
	dir := t.TempDir()
	files := map[string][]byte{appWheel.Filename(): appWheel.Bytes(), appDeb.Filename(): appDeb.Bytes(), "app/train.py": []byte("print(1)\n")}
	for n, b := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, n)), 0o755)
		os.WriteFile(filepath.Join(dir, n), b, 0o644)
	}
	intent := fmt.Sprintf("name: trainer\nbase: %s\npython:\n  version: \"3.11\"\n  wheels: [{path: %s}]\ndebs: [{path: %s}]\nfiles: [{src: app, dst: /app}]\n",
		baseRef, appWheel.Filename(), appDeb.Filename())
	os.WriteFile(filepath.Join(dir, "mlenv.yaml"), []byte(intent), 0o644)
	in, err := lockfile.LoadIntent(filepath.Join(dir, "mlenv.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cache := &cas.Cache{Dir: t.TempDir()}
	l, err := (&lockfile.Resolver{Fetcher: &cas.Fetcher{Cache: cache, BaseDir: dir}}).Resolve(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := l.Encode()
	f.lockPath = filepath.Join(dir, "mlenv.lock")
	os.WriteFile(f.lockPath, enc, 0o644)
	ld, _ := l.Digest()
	res, err := builder.Build(context.Background(), builder.Options{Lock: l, LockDigest: ld, BaseDir: dir, Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	f.ref = f.host + "/team/trainer:v1"
	if err := builder.Write(context.Background(), res, f.ref); err != nil {
		t.Fatal(err)
	}
	r, _ := name.ParseReference(f.ref)
	f.digest = r.Context().Digest(res.Digest.String())
	if f.key, f.pub, err = attest.GenerateKeyPair(t.TempDir(), false); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) opts() attest.Options {
	return attest.Options{Image: f.ref, KeyRef: f.key, LockPath: f.lockPath, Fingerprint: "host", Role: "train", MlenvVersion: "test", CompressorID: builder.CompressorID}
}

func (f *fixture) checkOpts(t *testing.T) *cosign.CheckOpts {
	t.Helper()
	v, err := attest.LoadVerifier(f.pub)
	if err != nil {
		t.Fatal(err)
	}
	return &cosign.CheckOpts{SigVerifier: v, IgnoreTlog: true, IgnoreSCT: true, ClaimVerifier: cosign.IntotoSubjectClaimVerifier}
}

// statementsOf decodes the in-toto statements of verified attestations.
func statementsOf(t *testing.T, atts []oci.Signature) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, a := range atts {
		env, err := a.Payload()
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Payload string }
		json.Unmarshal(env, &e)
		raw, _ := base64.StdEncoding.DecodeString(e.Payload)
		var st map[string]any
		if err := json.Unmarshal(raw, &st); err != nil {
			t.Fatal(err)
		}
		out[st["predicateType"].(string)] = st
	}
	return out
}

func TestAttestVerifiesWithCosign(t *testing.T) {
	f := setup(t)
	res, err := attest.Run(context.Background(), f.opts())
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != f.digest.DigestStr() || len(res.Written) != 3 {
		t.Fatalf("result %+v", res)
	}
	// cosign's own verification, as `cosign verify-attestation --key
	// cosign.pub --insecure-ignore-tlog` runs it.
	atts, _, err := cosign.VerifyImageAttestations(context.Background(), f.digest, f.checkOpts(t))
	if err != nil {
		t.Fatalf("cosign rejected mlenv's attestations: %v", err)
	}
	sts := statementsOf(t, atts)
	for _, pt := range []string{"https://slsa.dev/provenance/v1", "https://spdx.dev/Document", "https://mlenv.dev/fingerprint/v1"} {
		st, ok := sts[pt]
		if !ok {
			t.Errorf("no verified %s attestation", pt)
			continue
		}
		if st["_type"] != "https://in-toto.io/Statement/v1" {
			t.Errorf("%s: _type %v", pt, st["_type"])
		}
	}
	prov := sts["https://slsa.dev/provenance/v1"]["predicate"].(map[string]any)
	bd := prov["buildDefinition"].(map[string]any)
	if bd["buildType"] != attest.BuildType {
		t.Errorf("buildType %v", bd["buildType"])
	}
	deps := bd["resolvedDependencies"].([]any)
	if len(deps) != 4 { // base, wheel, deb, file set
		t.Errorf("%d resolved dependencies: %v", len(deps), deps)
	}
	ld, _ := mustLockVal(t, f.lockPath).Digest()
	if ext := bd["externalParameters"].(map[string]any)["lock"].(map[string]any); ext["digest"] != ld {
		t.Errorf("externalParameters.lock %v, want digest %s", ext, ld)
	}
	fp := sts["https://mlenv.dev/fingerprint/v1"]["predicate"].(map[string]any)
	// A missing id is nil, not "": ask for a non-empty string.
	if id, _ := fp["fingerprint"].(map[string]any)["id"].(string); fp["role"] != "train" || id == "" {
		t.Errorf("fingerprint predicate: role %v, fingerprint id %q", fp["role"], id)
	}

	// And the plain image signature, verified as `cosign verify` does.
	sv, err := attest.LoadSigner(context.Background(), f.key)
	if err != nil {
		t.Fatal(err)
	}
	if err := attest.SignImage(context.Background(), f.digest, sv); err != nil {
		t.Fatal(err)
	}
	co := f.checkOpts(t)
	co.ClaimVerifier = cosign.SimpleClaimVerifier
	if _, _, err := cosign.VerifyImageSignatures(context.Background(), f.digest, co); err != nil {
		t.Fatalf("cosign rejected mlenv's signature: %v", err)
	}
}

func mustLock(t *testing.T, p string) (*lockfile.Lock, error) {
	l, err := lockfile.LoadLock(p)
	if err != nil {
		t.Fatal(err)
	}
	return l, nil
}

func TestSBOMListsLockedAndBasePackagesAndValidates(t *testing.T) {
	f := setup(t)
	bundle := filepath.Join(t.TempDir(), "att.json")
	o := f.opts()
	o.BundlePath = bundle
	if _, err := attest.Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	b, err := attest.ReadBundle(bundle)
	if err != nil {
		t.Fatal(err)
	}
	var sbom []byte
	for _, a := range b.Attestations {
		if a.PredicateType == attest.SPDXPredicateType {
			var env struct{ Payload string }
			json.Unmarshal(a.Envelope, &env)
			raw, _ := base64.StdEncoding.DecodeString(env.Payload)
			var st struct{ Predicate json.RawMessage }
			json.Unmarshal(raw, &st)
			sbom = st.Predicate
		}
	}
	var doc struct {
		Packages []struct {
			Name, VersionInfo, LicenseDeclared, PrimaryPackagePurpose string
			ExternalRefs                                              []struct{ ReferenceLocator string }
		}
		HasExtractedLicensingInfos []struct{ LicenseID, ExtractedText string }
	}
	if err := json.Unmarshal(sbom, &doc); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range doc.Packages {
		purl := ""
		if len(p.ExternalRefs) > 0 {
			purl = p.ExternalRefs[0].ReferenceLocator
		}
		got[p.Name] = purl + " " + p.LicenseDeclared
	}
	want := map[string]string{
		"trainer":      "pkg:pypi/trainer@2.1.0 MIT",
		"trainer-data": "pkg:deb/debian/trainer-data@1.0?arch=all&distro=debian-12 Apache-2.0",
		"/app":         " NOASSERTION",
		// The version's '+' is percent-encoded, ':' is not (purl spec).
		"libc6":     "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12 (GPL-2.0-or-later OR LicenseRef-public-domain) AND LGPL-2.1-or-later",
		"zlib1g":    "pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64&distro=debian-12 LicenseRef-public-domain-2 AND Zlib",
		"freetext":  "pkg:deb/debian/freetext@1?arch=amd64&distro=debian-12 NOASSERTION",
		"malformed": "pkg:deb/debian/malformed@1?arch=amd64&distro=debian-12 NOASSERTION",
		"huge":      "pkg:deb/debian/huge@1?arch=amd64&distro=debian-12 NOASSERTION",
		"numpy":     "pkg:pypi/numpy@1.26.4 BSD-3-Clause",
		"six":       "pkg:pypi/six@1.16.0 NOASSERTION",
		"zstd":      "pkg:conda/zstd@1.5.5 BSD-3-Clause",
	}
	delete(got, f.host+"/team/trainer")
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("SBOM packages:\n got %v\nwant %v", got, want)
	}
	// Each LicenseRef has one text: zlib1g's different public-domain
	// text got its own id.
	texts := map[string]string{}
	for _, x := range doc.HasExtractedLicensingInfos {
		texts[x.LicenseID] = x.ExtractedText
	}
	if len(texts) != 2 || texts["LicenseRef-public-domain"] != "The libc6 parts are in the public domain." ||
		texts["LicenseRef-public-domain-2"] != "The zlib contributions are in the public domain." {
		t.Errorf("hasExtractedLicensingInfos: %q", texts)
	}
	if doc.Packages[0].PrimaryPackagePurpose != "CONTAINER" || !strings.HasPrefix(doc.Packages[0].ExternalRefs[0].ReferenceLocator, "pkg:oci/trainer@sha256%3A") {
		t.Errorf("root package %+v", doc.Packages[0])
	}
	testutil.ValidateSPDX(t, sbom)
}

func hasAttestations(t *testing.T, d name.Digest) bool {
	t.Helper()
	tag := d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1) + ".att")
	_, err := remote.Head(tag)
	return err == nil
}

func TestBadInputsAttachNothing(t *testing.T) {
	f := setup(t)
	ctx := context.Background()

	t.Setenv("COSIGN_PASSWORD", "wrong")
	_, err := attest.Run(ctx, f.opts())
	if err == nil || !strings.Contains(err.Error(), "wrong password") {
		t.Errorf("wrong password: %v", err)
	}
	t.Setenv("COSIGN_PASSWORD", "correct horse")

	o := f.opts()
	o.KeyRef = filepath.Join(t.TempDir(), "nope.key")
	if _, err := attest.Run(ctx, o); err == nil || !strings.Contains(err.Error(), "generate-key-pair") {
		t.Errorf("missing key: %v", err)
	}

	f.refuseAtt.Store(true)
	if _, err := attest.Run(ctx, f.opts()); err == nil || !strings.Contains(err.Error(), "DENIED") {
		t.Errorf("refused write: %v", err)
	}
	f.refuseAtt.Store(false)

	// A lock that is not the image's.
	l := mustLockVal(t, f.lockPath)
	l.Epoch = 42
	enc, _ := l.Encode()
	other := filepath.Join(t.TempDir(), "mlenv.lock")
	os.WriteFile(other, enc, 0o644)
	o = f.opts()
	o.LockPath = other
	if _, err := attest.Run(ctx, o); !errors.Is(err, attest.ErrLockMismatch) {
		t.Errorf("foreign lock: %v", err)
	}
	if hasAttestations(t, f.digest) {
		t.Fatal("a failed attest left attestations behind")
	}
	o.Force = true
	if _, err := attest.Run(ctx, o); err != nil {
		t.Errorf("--force with a foreign lock: %v", err)
	}
}

func mustLockVal(t *testing.T, p string) *lockfile.Lock {
	l, _ := mustLock(t, p)
	return l
}

func TestTagMovedBetweenResolveAndAttach(t *testing.T) {
	f := setup(t)
	other := testutil.RandomImage(t, "linux", "amd64")
	// Just as the attestations are written, the tag moves to another image.
	var moved atomic.Bool
	f.onAttWrite = func() {
		if moved.CompareAndSwap(false, true) {
			testutil.Push(t, other, f.ref)
		}
	}
	res, err := attest.Run(context.Background(), f.opts())
	if err != nil {
		t.Fatal(err)
	}
	if !moved.Load() {
		t.Fatal("the tag was not moved")
	}
	if res.Digest != f.digest.DigestStr() {
		t.Errorf("statements are about %s, the image resolved was %s", res.Digest, f.digest.DigestStr())
	}
	if _, _, err := cosign.VerifyImageAttestations(context.Background(), f.digest, f.checkOpts(t)); err != nil {
		t.Errorf("original digest: %v", err)
	}
	od, _ := other.Digest()
	if hasAttestations(t, f.digest.Context().Digest(od.String())) {
		t.Error("the image the tag moved to got attestations it was never checked against")
	}
}

// replaceAll makes a tampered signature replace every existing one.
type replaceAll struct{}

func (replaceAll) Replace(_ oci.Signatures, s oci.Signature) (oci.Signatures, error) {
	return cmutate.AppendSignatures(cempty.Signatures(), false, s)
}

func flipBase64(s string) string {
	b := []byte(s)
	i := len(b) / 2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func TestTamperedPayloadAndSignatureAreRejected(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	if _, err := attest.Run(ctx, f.opts()); err != nil {
		t.Fatal(err)
	}
	atts, _, err := cosign.VerifyImageAttestations(ctx, f.digest, f.checkOpts(t))
	if err != nil {
		t.Fatal(err)
	}
	// Flip one byte of one stored payload, keep its signature.
	env, _ := atts[0].Payload()
	var e map[string]any
	json.Unmarshal(env, &e)
	e["payload"] = flipBase64(e["payload"].(string))
	bad, _ := json.Marshal(e)
	sig, _ := cstatic.NewAttestation(bad, cstatic.WithLayerMediaType(ctypes.DssePayloadType))
	se, _ := ociremote.SignedEntity(f.digest)
	se, _ = cmutate.AttachAttestationToEntity(se, sig, cmutate.WithReplaceOp(replaceAll{}))
	if err := ociremote.WriteAttestations(f.digest.Repository, se); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cosign.VerifyImageAttestations(ctx, f.digest, f.checkOpts(t)); err == nil {
		t.Error("a tampered attestation payload verified")
	}

	// Sign the image, then flip one byte of the stored signature.
	sv, _ := attest.LoadSigner(ctx, f.key)
	if err := attest.SignImage(ctx, f.digest, sv); err != nil {
		t.Fatal(err)
	}
	co := f.checkOpts(t)
	co.ClaimVerifier = cosign.SimpleClaimVerifier
	sigs, _, err := cosign.VerifyImageSignatures(ctx, f.digest, co)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := sigs[0].Payload()
	b64, _ := sigs[0].Base64Signature()
	tampered, _ := cstatic.NewSignature(payload, flipBase64(b64))
	se, _ = ociremote.SignedEntity(f.digest)
	se, _ = cmutate.AttachSignatureToEntity(se, tampered, cmutate.WithReplaceOp(replaceAll{}))
	if err := ociremote.WriteSignatures(f.digest.Repository, se); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cosign.VerifyImageSignatures(ctx, f.digest, co); err == nil {
		t.Error("a tampered signature verified")
	}
}

func TestBundleVerifiesOfflineAndRejectsTampering(t *testing.T) {
	f := setup(t)
	bundle := filepath.Join(t.TempDir(), "b.json")
	o := f.opts()
	o.BundlePath = bundle
	if _, err := attest.Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if hasAttestations(t, f.digest) {
		t.Error("--bundle without --upload wrote to the registry")
	}
	b, err := attest.ReadBundle(bundle)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := v1.NewHash(b.Digest)
	for _, a := range b.Attestations {
		att, _ := cstatic.NewAttestation(a.Envelope, cstatic.WithLayerMediaType(ctypes.DssePayloadType))
		if _, err := cosign.VerifyBlobAttestation(context.Background(), att, h, f.checkOpts(t)); err != nil {
			t.Errorf("%s: %v", a.PredicateType, err)
		}
		var e map[string]any
		json.Unmarshal(a.Envelope, &e)
		e["payload"] = flipBase64(e["payload"].(string))
		bad, _ := json.Marshal(e)
		att, _ = cstatic.NewAttestation(bad, cstatic.WithLayerMediaType(ctypes.DssePayloadType))
		if _, err := cosign.VerifyBlobAttestation(context.Background(), att, h, f.checkOpts(t)); err == nil {
			t.Errorf("%s: tampered envelope verified", a.PredicateType)
		}
		// And for another digest the statement does not hold.
		otherH, _ := v1.NewHash("sha256:" + strings.Repeat("0", 64))
		att, _ = cstatic.NewAttestation(a.Envelope, cstatic.WithLayerMediaType(ctypes.DssePayloadType))
		if _, err := cosign.VerifyBlobAttestation(context.Background(), att, otherH, f.checkOpts(t)); err == nil {
			t.Errorf("%s: verified for a digest it does not name", a.PredicateType)
		}
	}
}

// TestCosignCLIAcceptsAttestations runs the cosign CLI itself where it is
// installed (it is not in CI): verify-attestation for each predicate type
// and verify for the signature.
func TestCosignCLIAcceptsAttestations(t *testing.T) {
	cosignBin, err := exec.LookPath("cosign")
	if err != nil {
		t.Skip("cosign CLI not on PATH")
	}
	f := setup(t)
	if _, err := attest.Run(context.Background(), f.opts()); err != nil {
		t.Fatal(err)
	}
	sv, _ := attest.LoadSigner(context.Background(), f.key)
	if err := attest.SignImage(context.Background(), f.digest, sv); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"verify-attestation", "--type", "slsaprovenance1"},
		{"verify-attestation", "--type", "spdxjson"},
		{"verify-attestation", "--type", "https://mlenv.dev/fingerprint/v1"},
		{"verify"},
	} {
		cmd := exec.Command(cosignBin, append(args, "--key", f.pub, "--insecure-ignore-tlog", "--allow-http-registry", f.ref)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("cosign %v: %v\n%s", args, err, out)
		}
	}
}

func TestInventoryHonoursWhiteouts(t *testing.T) {
	img, err := mutate.AppendLayers(baseImage(t),
		testutil.TarLayer(t, []testutil.TarEntry{
			{Name: "usr/lib/python3/dist-packages/.wh.numpy-1.26.4.dist-info", Body: ""},
			{Name: "opt/conda/.wh..wh..opq", Body: ""},
			{Name: "usr/share/doc/zlib1g/.wh.copyright", Body: ""},
		}))
	if err != nil {
		t.Fatal(err)
	}
	inv, err := attest.ReadInventory(img)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range inv.Packages {
		names = append(names, p.Name+"="+p.License)
	}
	want := "libc6=(GPL-2.0-or-later OR LicenseRef-public-domain) AND LGPL-2.1-or-later,zlib1g=,freetext=,malformed=,huge=,six=MIT License and more words"
	if got := strings.Join(names, ","); got != want {
		t.Errorf("packages after whiteouts:\n got %s\nwant %s\n(numpy, the conda package and zlib1g's copyright file were deleted by the top layer)", got, want)
	}
}

// A root-level opaque marker (a layer that replaces the whole file
// system) hides every package below it; the inventory used to keep them.
func TestInventoryRootOpaqueWhiteout(t *testing.T) {
	img, err := mutate.AppendLayers(baseImage(t),
		testutil.TarLayer(t, []testutil.TarEntry{{Name: ".wh..wh..opq", Body: ""}}))
	if err != nil {
		t.Fatal(err)
	}
	inv, err := attest.ReadInventory(img)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Packages) != 0 {
		var names []string
		for _, p := range inv.Packages {
			names = append(names, p.Name)
		}
		t.Fatalf("packages under a root opaque whiteout: %v", names)
	}
}

func TestLocalImageNeedsABundle(t *testing.T) {
	t.Setenv("COSIGN_PASSWORD", "pw")
	dir := t.TempDir()
	key, _, err := attest.GenerateKeyPair(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	lp := filepath.Join(dir, "layout")
	l, _ := layout.Write(lp, empty.Index)
	l.AppendImage(testutil.RandomImage(t, "linux", "amd64"))
	for _, o := range []attest.Options{
		{Image: "oci:" + lp, KeyRef: key},
		{Image: "oci:" + lp, KeyRef: key, BundlePath: filepath.Join(dir, "b.json"), Upload: true},
	} {
		if _, err := attest.Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "not in a registry") {
			t.Errorf("%+v: %v", o, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "b.json")); err == nil {
		t.Error("a bundle was written although the command failed")
	}
	o := attest.Options{Image: "oci:" + lp, KeyRef: key, BundlePath: filepath.Join(dir, "b.json")}
	if _, err := attest.Run(context.Background(), o); err != nil {
		t.Errorf("bundle for a local image: %v", err)
	}
}

// Without os-release the deb purls carry no distro qualifier (a guess
// would be wrong for Ubuntu or a newer Debian).
func TestDebPurlWithoutOSRelease(t *testing.T) {
	doc, err := attest.BuildSBOM(attest.SBOMInput{
		Digest: "sha256:" + strings.Repeat("a", 64), Tool: "mlenv-test",
		Inventory: &attest.Inventory{Packages: []attest.FoundPackage{{Type: "deb", Name: "libfoo", Version: "1:2.3+dfsg-1", Arch: "amd64"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := doc.Packages[1].PackageExternalReferences[0].Locator
	if want := "pkg:deb/debian/libfoo@1:2.3%2Bdfsg-1?arch=amd64"; got != want {
		t.Errorf("purl %s, want %s", got, want)
	}
}
