//go:build cgo

// The end-to-end tests need fingerprint.FromProbe (cgo: go-nvml's mocks)
// to turn the H200 reference data into the training fingerprint.

package verify_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/in-toto/in-toto-golang/in_toto"
	"github.com/sigstore/cosign/v2/pkg/cosign/attestation"
	"github.com/sigstore/sigstore/pkg/signature/dsse"

	"github.com/mlenv/mlenv/attest"
	"github.com/mlenv/mlenv/builder"
	"github.com/mlenv/mlenv/fingerprint"
	"github.com/mlenv/mlenv/internal/cas"
	"github.com/mlenv/mlenv/internal/testutil"
	"github.com/mlenv/mlenv/lockfile"
	"github.com/mlenv/mlenv/verify"
)

// fixture: a registry on 127.0.0.1 holding an image built by mlenv whose
// files carry real CUDA code (the reference libtiny.so: sm_80 and sm_90
// SASS, compute_90 PTX) and a CUDA 12.8 runtime, a key pair, and the H200
// reference host as the training fingerprint.
type fixture struct {
	host, ref, repo       string
	digest                name.Digest
	lockPath, key, pub    string
	fpPath                string
	h200                  *fingerprint.Fingerprint
	down                  atomic.Bool
	delay                 atomic.Int64 // nanoseconds added to every registry answer
	registryRequests      atomic.Int64
	inFlight, maxInFlight atomic.Int64 // concurrent registry requests, and their peak
	lockDigest, otherPub  string

	pathsMu sync.Mutex
	paths   []string // "METHOD /v2/..." of every registry request, in order
}

// requestsSince lists the registry requests made after the first n.
func (f *fixture) requestsSince(n int) []string {
	f.pathsMu.Lock()
	defer f.pathsMu.Unlock()
	return append([]string(nil), f.paths[n:]...)
}

func (f *fixture) requestCount() int {
	f.pathsMu.Lock()
	defer f.pathsMu.Unlock()
	return len(f.paths)
}

func h200(t testing.TB) *fingerprint.Fingerprint {
	t.Helper()
	b, err := os.ReadFile("../testdata/reference/h200-host/nvml-probe.json")
	if err != nil {
		t.Fatal(err)
	}
	fp, err := fingerprint.FromProbe(b)
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

func setup(t testing.TB) *fixture {
	t.Helper()
	t.Setenv("COSIGN_PASSWORD", "pw")
	f := &fixture{}
	f.host = testutil.Registry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			f.registryRequests.Add(1)
			n := f.inFlight.Add(1)
			defer f.inFlight.Add(-1)
			for m := f.maxInFlight.Load(); n > m && !f.maxInFlight.CompareAndSwap(m, n); m = f.maxInFlight.Load() {
			}
			f.pathsMu.Lock()
			f.paths = append(f.paths, r.Method+" "+r.URL.Path)
			f.pathsMu.Unlock()
			if f.down.Load() {
				http.Error(w, "down", http.StatusServiceUnavailable)
				return
			}
			if d := time.Duration(f.delay.Load()); d > 0 {
				select {
				case <-time.After(d):
				case <-r.Context().Done():
					return
				}
			}
			h.ServeHTTP(w, r)
		})
	})
	dir := t.TempDir()
	tiny, err := os.ReadFile("../testdata/reference/fatbin/libtiny.so")
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "app", "lib"), 0o755)
	os.WriteFile(filepath.Join(dir, "app", "lib", "libtiny.so"), tiny, 0o644)
	os.WriteFile(filepath.Join(dir, "app", "lib", "libcudart.so.12.8.57"), bytes.Repeat([]byte{0}, 128), 0o644)
	os.WriteFile(filepath.Join(dir, "mlenv.yaml"), []byte("name: trainer\nepoch: 1700000000\nplatforms: [linux/amd64]\nbase: scratch\nfiles: [{src: app, dst: /app}]\n"), 0o644)
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
	f.lockDigest, _ = l.Digest()
	res, err := builder.Build(context.Background(), builder.Options{Lock: l, LockDigest: f.lockDigest, BaseDir: dir, Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	f.repo = f.host + "/team/trainer"
	f.ref = f.repo + ":v1"
	if err := builder.Write(context.Background(), res, f.ref); err != nil {
		t.Fatal(err)
	}
	r, _ := name.ParseReference(f.ref)
	f.digest = r.Context().Digest(res.Digest.String())
	if f.key, f.pub, err = attest.GenerateKeyPair(t.TempDir(), false); err != nil {
		t.Fatal(err)
	}
	if _, f.otherPub, err = attest.GenerateKeyPair(t.TempDir(), false); err != nil {
		t.Fatal(err)
	}
	f.h200 = h200(t)
	b, _ := f.h200.JSON()
	f.fpPath = filepath.Join(dir, "h200.json")
	os.WriteFile(f.fpPath, b, 0o644)
	return f
}

// attest runs mlenv attest (provenance, SBOM, H200 training fingerprint).
func (f *fixture) attest(t testing.TB, bundle string) {
	t.Helper()
	o := attest.Options{Image: f.ref, KeyRef: f.key, LockPath: f.lockPath, Fingerprint: f.fpPath, Role: "train", MlenvVersion: "test", BundlePath: bundle, CompressorID: builder.CompressorID}
	if _, err := attest.Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) verifier(t testing.TB, p *verify.Policy, keys ...string) *verify.Verifier {
	t.Helper()
	if len(keys) == 0 {
		keys = []string{f.pub}
	}
	ks, err := verify.LoadKeys(keys)
	if err != nil {
		t.Fatal(err)
	}
	if p == nil {
		p = verify.DefaultPolicy()
	}
	v, err := verify.NewVerifier(ks, p)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func run(t *testing.T, v *verify.Verifier, req verify.Request) *verify.Result {
	t.Helper()
	res, err := v.Verify(context.Background(), req)
	if err != nil {
		t.Fatalf("verify %s: %v", req.Image, err)
	}
	return res
}

// check finds one check by name.
func check(t *testing.T, res *verify.Result, name string) verify.Check {
	t.Helper()
	for _, c := range res.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %s in %+v", name, res.Checks)
	return verify.Check{}
}

func wantDecision(t *testing.T, res *verify.Result, want verify.Decision) {
	t.Helper()
	if res.Decision != want {
		b, _ := json.MarshalIndent(res.Checks, "", " ")
		t.Fatalf("decision %s, want %s; checks:\n%s", res.Decision, want, b)
	}
}

func wantCheck(t *testing.T, res *verify.Result, name string, st verify.Status, msgPart string) {
	t.Helper()
	c := check(t, res, name)
	if c.Status != st || !strings.Contains(c.Message+" "+c.Actual+" "+c.Expected, msgPart) {
		t.Errorf("%s: %s %q (expected %q, actual %q); want %s mentioning %q", name, c.Status, c.Message, c.Expected, c.Actual, st, msgPart)
	}
}

func TestEndToEndAllowedAndRuntime(t *testing.T) {
	f := setup(t)
	f.attest(t, "")
	ctx := context.Background()
	_ = ctx

	// Allowed: by tag (resolved once) and by digest, default policy.
	v := f.verifier(t, nil)
	for _, img := range []string{f.ref, f.digest.String()} {
		res := run(t, v, verify.Request{Image: img})
		wantDecision(t, res, verify.Allow)
		if res.Digest != f.digest.DigestStr() {
			t.Errorf("digest %s, want %s", res.Digest, f.digest.DigestStr())
		}
		wantCheck(t, res, "statement.provenance", verify.Pass, f.pub)
		wantCheck(t, res, "statement.sbom", verify.Pass, f.pub)
	}

	// --runtime on the training host itself: everything passes, exact too.
	for _, p := range []*verify.Policy{verify.DefaultPolicy(), verify.ExactPolicy()} {
		res := run(t, f.verifier(t, p), verify.Request{Image: f.ref, Host: h200(t)})
		wantDecision(t, res, verify.Allow)
		wantCheck(t, res, "run.gpu.driver", verify.Pass, "580.159.04")
		wantCheck(t, res, "run.gpu.computeCapability", verify.Pass, "sm_90")
		wantCheck(t, res, "reproduce", verify.Pass, "same GPU")
		if w := res.Warnings(); len(w) > 0 {
			t.Errorf("%s: warnings on the training host: %+v", p.Name, w)
		}
	}

	// Key rotation: the old key and the new one; any one suffices.
	res := run(t, f.verifier(t, nil, f.otherPub, f.pub), verify.Request{Image: f.ref})
	wantDecision(t, res, verify.Allow)

	// Denied: wrong key.
	res = run(t, f.verifier(t, nil, f.otherPub), verify.Request{Image: f.ref})
	wantDecision(t, res, verify.Deny)
	wantCheck(t, res, "statement.provenance", verify.Fail, "signature does not verify")

	// Denied: a lock digest other than the one expected.
	p := verify.DefaultPolicy()
	p.LockDigest = "sha256:" + strings.Repeat("ab", 32)
	res = run(t, f.verifier(t, p), verify.Request{Image: f.ref})
	wantDecision(t, res, verify.Deny)
	wantCheck(t, res, "policy.lockDigest", verify.Fail, f.lockDigest)
	p.LockDigest = f.lockDigest
	wantDecision(t, run(t, f.verifier(t, p), verify.Request{Image: f.ref}), verify.Allow)

	// CEL rules over image, provenance, sbom, training and runtime.
	p = verify.DefaultPolicy()
	p.Rules = []verify.Rule{
		{Name: "builder", Expr: `provenance.runDetails.builder.id == "https://mlenv.dev/builder/cli"`},
		{Name: "h200", Expr: `runtime == null || runtime.gpu.devices.all(d, d.name == training.fingerprint.gpu.devices[0].name)`},
		{Name: "has-trainer", Expr: `sbom.packages.exists(p, p.name == "numpy")`, Message: "numpy must be in the image"},
	}
	res = run(t, f.verifier(t, p), verify.Request{Image: f.ref, Host: h200(t)})
	wantDecision(t, res, verify.Deny)
	wantCheck(t, res, "rule.builder", verify.Pass, "true")
	wantCheck(t, res, "rule.h200", verify.Pass, "true")
	wantCheck(t, res, "rule.has-trainer", verify.Fail, "numpy must be in the image")
	p.Rules[2].Action = "warn"
	wantDecision(t, run(t, f.verifier(t, p), verify.Request{Image: f.ref}), verify.Allow)

	// Denied: the runtime driver is too old for the image's CUDA 12.8.
	old := h200(t)
	old.GPU.DriverVersion, old.GPU.CUDADriverVersion = "470.256.02", "11.4"
	res = run(t, v, verify.Request{Image: f.ref, Host: old})
	wantDecision(t, res, verify.Deny)
	wantCheck(t, res, "run.gpu.driver", verify.Fail, "insufficient")

	// Denied: a GPU (T4, 7.5) the image's sm_80/sm_90/compute_90 code misses.
	t4 := h200(t)
	t4.GPU.Devices[0].Name, t4.GPU.Devices[0].ComputeCapability, t4.GPU.Devices[0].Architecture = "Tesla T4", "7.5", "Turing"
	res = run(t, v, verify.Request{Image: f.ref, Host: t4})
	wantDecision(t, res, verify.Deny)
	wantCheck(t, res, "run.gpu.computeCapability", verify.Fail, "no kernel image")

	// A CPU without AVX-512: a warning by default, a denial under exact.
	noAVX := h200(t)
	var kept []string
	for _, ft := range noAVX.CPU.NumericsFeatures {
		if !strings.HasPrefix(ft, "AVX512") {
			kept = append(kept, ft)
		}
	}
	noAVX.CPU.NumericsFeatures = kept
	res = run(t, v, verify.Request{Image: f.ref, Host: noAVX})
	wantDecision(t, res, verify.Allow)
	wantCheck(t, res, "reproduce.cpu.numericsFeatures.AVX512F", verify.WarnStatus, "AVX512F")
	res = run(t, f.verifier(t, verify.ExactPolicy()), verify.Request{Image: f.ref, Host: noAVX})
	wantDecision(t, res, verify.Deny)
	wantCheck(t, res, "reproduce.cpu.numericsFeatures.AVX512F", verify.Fail, "AVX512F")
}

func TestBundleAndLocalImage(t *testing.T) {
	f := setup(t)
	bundle := filepath.Join(t.TempDir(), "b.json")
	f.attest(t, bundle)
	v := f.verifier(t, verify.ExactPolicy())
	res := run(t, v, verify.Request{Image: f.ref, BundlePath: bundle, Host: h200(t)})
	wantDecision(t, res, verify.Allow)
	wantCheck(t, res, "statement.training", verify.Pass, bundle)
	// Nothing in the registry: without --bundle, not attested.
	res = run(t, v, verify.Request{Image: f.ref})
	wantDecision(t, res, verify.Deny)
	wantCheck(t, res, "statement.provenance", verify.Fail, "not attested")
	// A bundle for this image does not hold for another one.
	other := testutil.Push(t, testutil.RandomImage(t, "linux", "amd64"), f.repo+":other")
	res = run(t, v, verify.Request{Image: other, BundlePath: bundle})
	wantDecision(t, res, verify.Deny)
	wantCheck(t, res, "statement.provenance", verify.Fail, "not this image")
}

// cosignAttach attaches statements the way `cosign attest --type ...`
// writes them: cosign's own statement generator (in-toto v0.1), a DSSE
// envelope, the predicateType annotation, the .att manifest.
func cosignAttach(t *testing.T, f *fixture, subject name.Digest, types map[string][]byte) {
	t.Helper()
	sv, err := attest.LoadSigner(context.Background(), f.key)
	if err != nil {
		t.Fatal(err)
	}
	var signed []attest.Signed
	for typ, pred := range types {
		st, err := attestation.GenerateStatement(attestation.GenerateOpts{Predicate: bytes.NewReader(pred), Type: typ,
			Digest: subject.DigestStr()[len("sha256:"):], Repo: subject.Context().String(), Time: time.Now})
		if err != nil {
			t.Fatal(err)
		}
		payload, _ := json.Marshal(st)
		env, err := dsse.WrapSigner(sv, attest.PayloadType).SignMessage(bytes.NewReader(payload))
		if err != nil {
			t.Fatal(err)
		}
		var head in_toto.StatementHeader
		json.Unmarshal(payload, &head)
		signed = append(signed, attest.Signed{PredicateType: head.PredicateType, Envelope: env})
	}
	if err := attest.Attach(context.Background(), f.digest, signed); err != nil {
		t.Fatal(err)
	}
}

// predicates signs nothing: it reads back mlenv's own predicates from a
// bundle so that the cosign-written statements carry the same content.
func predicates(t *testing.T, f *fixture) map[string][]byte {
	t.Helper()
	bundle := filepath.Join(t.TempDir(), "b.json")
	f.attest(t, bundle)
	b, err := attest.ReadBundle(bundle)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, a := range b.Attestations {
		var env struct{ Payload string }
		json.Unmarshal(a.Envelope, &env)
		raw, _ := base64.StdEncoding.DecodeString(env.Payload)
		var st struct{ Predicate json.RawMessage }
		json.Unmarshal(raw, &st)
		out[a.PredicateType] = st.Predicate
	}
	return out
}

func TestCosignWrittenStatementsAndDenials(t *testing.T) {
	f := setup(t)
	preds := predicates(t, f)
	v := f.verifier(t, nil)

	// Unsigned: nothing attached.
	res := run(t, v, verify.Request{Image: f.ref})
	wantDecision(t, res, verify.Deny)
	wantCheck(t, res, "statement.sbom", verify.Fail, "not attested")

	// Missing required SBOM: only provenance attached.
	cosignAttach(t, f, f.digest, map[string][]byte{"slsaprovenance1": preds[verify.PredicateTypes[verify.KindProvenance]]})
	res = run(t, v, verify.Request{Image: f.ref})
	wantDecision(t, res, verify.Deny)
	wantCheck(t, res, "statement.provenance", verify.Pass, f.pub)
	wantCheck(t, res, "statement.sbom", verify.Fail, "no https://spdx.dev/Document statement")

	// What cosign attest writes, with mlenv's predicate types: allowed.
	cosignAttach(t, f, f.digest, map[string][]byte{"slsaprovenance1": preds[verify.PredicateTypes[verify.KindProvenance]], "spdxjson": preds[attest.SPDXPredicateType]})
	res = run(t, v, verify.Request{Image: f.ref, Host: h200(t)})
	wantDecision(t, res, verify.Allow)
	wantCheck(t, res, "run.gpu.computeCapability", verify.Pass, "sm_90")

	// A statement about another digest, attached to this image.
	otherDigest := f.digest.Context().Digest("sha256:" + strings.Repeat("0", 64))
	cosignAttach(t, f, otherDigest, map[string][]byte{"slsaprovenance1": preds[verify.PredicateTypes[verify.KindProvenance]], "spdxjson": preds[attest.SPDXPredicateType]})
	res = run(t, v, verify.Request{Image: f.ref})
	wantDecision(t, res, verify.Deny)
	wantCheck(t, res, "statement.provenance", verify.Fail, "is about sha256:0000")
}

func TestTamperedPayloadIsDenied(t *testing.T) {
	f := setup(t)
	bundle := filepath.Join(t.TempDir(), "b.json")
	f.attest(t, bundle)
	b, _ := attest.ReadBundle(bundle)
	for i, a := range b.Attestations {
		var env map[string]any
		json.Unmarshal(a.Envelope, &env)
		raw, _ := base64.StdEncoding.DecodeString(env["payload"].(string))
		// Change what the statement says, keep its signature.
		raw = bytes.Replace(raw, []byte(`"predicate":{`), []byte(`"predicate":{"x":1,`), 1)
		env["payload"] = base64.StdEncoding.EncodeToString(raw)
		b.Attestations[i].Envelope, _ = json.Marshal(env)
	}
	if err := attest.Attach(context.Background(), f.digest, b.Attestations); err != nil {
		t.Fatal(err)
	}
	res := run(t, f.verifier(t, nil), verify.Request{Image: f.ref})
	wantDecision(t, res, verify.Deny)
	wantCheck(t, res, "statement.provenance", verify.Fail, "signature does not verify")
	wantCheck(t, res, "statement.sbom", verify.Fail, "signature does not verify")
}

func TestCouldNotCheckIsAnError(t *testing.T) {
	f := setup(t)
	f.attest(t, "")
	v := f.verifier(t, nil)
	f.down.Store(true)
	if res, err := v.Verify(context.Background(), verify.Request{Image: f.ref}); err == nil {
		t.Fatalf("registry down gave a verdict %s", res.Decision)
	}
	f.down.Store(false)
	if _, err := v.Verify(context.Background(), verify.Request{Image: "oci:" + t.TempDir()}); err == nil {
		t.Error("an empty folder verified")
	}
	if _, err := v.Verify(context.Background(), verify.Request{Image: f.ref, BundlePath: filepath.Join(t.TempDir(), "none.json")}); err == nil {
		t.Error("a missing bundle verified")
	}
}

// TestWholeProcessTiming times `mlenv verify` as a process against the
// fixture registry, for comparison with the webhook's in-process paths.
// Run by hand: MLENV_BIN=$(pwd)/bin/mlenv go test ./verify -run WholeProcess -v
func TestWholeProcessTiming(t *testing.T) {
	bin := os.Getenv("MLENV_BIN")
	if bin == "" {
		t.Skip("MLENV_BIN is not set: this measurement runs by hand against a built binary")
	}
	f := setup(t)
	f.attest(t, "")
	var ds []time.Duration
	for range 7 {
		s := time.Now()
		out, err := exec.Command(bin, "verify", f.digest.String(), "--key", f.pub).CombinedOutput()
		ds = append(ds, time.Since(s))
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	t.Logf("mlenv verify, whole process: median %s (min %s, max %s)", ds[3], ds[0], ds[6])
}

// TestCosignAttestedTrainingFingerprint: a training fingerprint attached
// with cosign's statement generator for the custom type
// https://mlenv.dev/fingerprint/v1 (the predicate is the bare
// fingerprint, as `cosign attest --type ... --predicate fp.json` writes
// it) is read as the training fingerprint: exact (which requires it)
// allows, and "will it reproduce" compares against it.
func TestCosignAttestedTrainingFingerprint(t *testing.T) {
	f := setup(t)
	preds := predicates(t, f)
	bare, err := os.ReadFile(f.fpPath)
	if err != nil {
		t.Fatal(err)
	}
	cosignAttach(t, f, f.digest, map[string][]byte{"slsaprovenance1": preds[verify.PredicateTypes[verify.KindProvenance]],
		"spdxjson": preds[attest.SPDXPredicateType], fingerprint.PredicateType: bare})
	wantTrainingFromCosign(t, f)
}

// TestCosignCLIAttestedTrainingFingerprint runs the cosign CLI itself.
func TestCosignCLIAttestedTrainingFingerprint(t *testing.T) {
	cosignBin, err := exec.LookPath("cosign")
	if err != nil {
		t.Skip("the cosign CLI is not on PATH: TestCosignAttestedTrainingFingerprint covers the same shape through cosign's library")
	}
	f := setup(t)
	dir := t.TempDir()
	for typ, pred := range predicates(t, f) {
		cosignType := map[string]string{verify.PredicateTypes[verify.KindProvenance]: "slsaprovenance1", attest.SPDXPredicateType: "spdxjson"}[typ]
		if cosignType == "" {
			continue // the fingerprint goes in as cosign users write it: below
		}
		p := filepath.Join(dir, cosignType+".json")
		os.WriteFile(p, pred, 0o644)
		cosignAttest(t, cosignBin, f, cosignType, p)
	}
	cosignAttest(t, cosignBin, f, fingerprint.PredicateType, f.fpPath)
	wantTrainingFromCosign(t, f)
}

func cosignAttest(t *testing.T, bin string, f *fixture, typ, pred string) {
	t.Helper()
	cmd := exec.Command(bin, "attest", "--yes", "--key", f.key, "--type", typ, "--predicate", pred,
		"--tlog-upload=false", "--allow-http-registry", f.digest.String())
	cmd.Env = append(os.Environ(), "COSIGN_PASSWORD=pw")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cosign attest --type %s: %v\n%s", typ, err, out)
	}
}

func wantTrainingFromCosign(t *testing.T, f *fixture) {
	t.Helper()
	p := verify.ExactPolicy()
	// The example policy's rule reads training.fingerprint whoever wrote it.
	p.Rules = []verify.Rule{{Name: "trained-on-h200", Expr: `training != null && training.fingerprint.gpu.devices.all(d, d.name == "NVIDIA H200")`}}
	v := f.verifier(t, p)
	res := run(t, v, verify.Request{Image: f.ref, Host: h200(t)})
	wantDecision(t, res, verify.Allow)
	wantCheck(t, res, "statement.training", verify.Pass, f.pub)
	wantCheck(t, res, "reproduce", verify.Pass, "same GPU")
	wantCheck(t, res, "rule.trained-on-h200", verify.Pass, "true")
	// The fingerprint really is the training host's: a host without
	// AVX-512 differs from it and exact denies.
	noAVX := h200(t)
	var kept []string
	for _, ft := range noAVX.CPU.NumericsFeatures {
		if !strings.HasPrefix(ft, "AVX512") {
			kept = append(kept, ft)
		}
	}
	noAVX.CPU.NumericsFeatures = kept
	res = run(t, v, verify.Request{Image: f.ref, Host: noAVX})
	wantDecision(t, res, verify.Deny)
	wantCheck(t, res, "reproduce.cpu.numericsFeatures.AVX512F", verify.Fail, "AVX512F")
}
