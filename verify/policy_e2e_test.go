//go:build cgo

// Policy features end to end, each allowed and denied: maxAge,
// requireImageSignature, per-statement key pinning, and the webhook's
// namespace exclusion by name and tag resolution under allowTags.

package verify_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlenv/mlenv/attest"
	"github.com/mlenv/mlenv/internal/testutil"
	"github.com/mlenv/mlenv/verify"
	"github.com/mlenv/mlenv/verify/admission"
)

func TestPolicyMaxAge(t *testing.T) {
	f := setup(t)
	f.attest(t, "") // provenance finishedOn: now
	p := verify.DefaultPolicy()
	p.MaxAge = verify.Duration(30 * 24 * time.Hour)
	v := f.verifier(t, p)
	res := run(t, v, verify.Request{Image: f.ref})
	wantDecision(t, res, verify.Allow)
	wantCheck(t, res, "policy.maxAge", verify.Pass, "at most 720h0m0s old")

	// 31 days later the same statements are too old.
	v.Now = func() time.Time { return time.Now().Add(31 * 24 * time.Hour) }
	res = run(t, v, verify.Request{Image: f.ref})
	wantDecision(t, res, verify.Deny)
	wantCheck(t, res, "policy.maxAge", verify.Fail, "744h")
}

func TestPolicyRequireImageSignature(t *testing.T) {
	f := setup(t)
	f.attest(t, "")
	p := verify.DefaultPolicy()
	p.RequireImageSignature = true

	// Attested but not signed.
	res := run(t, f.verifier(t, p), verify.Request{Image: f.ref})
	wantDecision(t, res, verify.Deny)
	wantCheck(t, res, "signature", verify.Fail, "no image signature stored")
	// Without the requirement the same image is allowed.
	wantDecision(t, run(t, f.verifier(t, nil), verify.Request{Image: f.ref}), verify.Allow)

	sv, err := attest.LoadSigner(context.Background(), f.key)
	if err != nil {
		t.Fatal(err)
	}
	if err := attest.SignImage(context.Background(), f.digest, sv); err != nil {
		t.Fatal(err)
	}
	res = run(t, f.verifier(t, p), verify.Request{Image: f.ref})
	wantDecision(t, res, verify.Allow)
	wantCheck(t, res, "signature", verify.Pass, f.pub)

	// Signed, but by a key this verifier does not trust (it trusts the
	// statements' key only through pinning, below).
	res = run(t, f.verifier(t, p, f.otherPub), verify.Request{Image: f.ref})
	wantDecision(t, res, verify.Deny)
	wantCheck(t, res, "signature", verify.Fail, "rejected")

	// A bundle cannot carry an image signature: the requirement fails.
	bundle := filepath.Join(t.TempDir(), "b.json")
	f.attest(t, bundle)
	res = run(t, f.verifier(t, p), verify.Request{Image: f.ref, BundlePath: bundle})
	wantDecision(t, res, verify.Deny)
	wantCheck(t, res, "signature", verify.Fail, "lives in a registry only")
}

// TestPolicyKeyPinning: keys.provenance names the only key that may sign
// provenance, relative to the policy file; other kinds take any --key.
func TestPolicyKeyPinning(t *testing.T) {
	f := setup(t)
	f.attest(t, "") // every statement signed with f.key
	dir := t.TempDir()
	copyFile(t, f.pub, filepath.Join(dir, "ci.pub"))
	copyFile(t, f.otherPub, filepath.Join(dir, "other.pub"))
	pinned := func(name, doc string) *verify.Policy {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := verify.LoadPolicy(path)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	head := "apiVersion: mlenv.dev/v1\nkind: VerifyPolicy\n"

	// Pinned to the key that signed: allowed, and the pin is named.
	p := pinned("ok.yaml", head+"keys:\n  provenance: [ci.pub]\n")
	res := run(t, f.verifier(t, p, f.pub, f.otherPub), verify.Request{Image: f.ref})
	wantDecision(t, res, verify.Allow)
	wantCheck(t, res, "statement.provenance", verify.Pass, filepath.Join(dir, "ci.pub"))

	// Pinned to another key: the provenance is refused even though the
	// signing key is among the --key keys; the SBOM (not pinned) passes.
	p = pinned("other.yaml", head+"keys:\n  provenance: [other.pub]\n")
	res = run(t, f.verifier(t, p, f.pub, f.otherPub), verify.Request{Image: f.ref})
	wantDecision(t, res, verify.Deny)
	wantCheck(t, res, "statement.provenance", verify.Fail, "the keys the policy pins for provenance")
	wantCheck(t, res, "statement.sbom", verify.Pass, f.pub)

	// A pin to a key file that is not there is a load error, never an
	// open door.
	os.WriteFile(filepath.Join(dir, "gone.yaml"), []byte(head+"keys:\n  sbom: [gone.pub]\n"), 0o644)
	p, err := verify.LoadPolicy(filepath.Join(dir, "gone.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ks, _ := verify.LoadKeys([]string{f.pub})
	if _, err := verify.NewVerifier(ks, p); err == nil || !strings.Contains(err.Error(), "policy keys.sbom") {
		t.Errorf("a pin to a missing key file: %v, want an error naming keys.sbom", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestWebhookExcludedNamespace: a namespace the policy excludes by name
// is admitted without a registry call; the same Pod elsewhere is denied.
func TestWebhookExcludedNamespace(t *testing.T) {
	f := setup(t)
	p := verify.DefaultPolicy()
	p.Admission.ExcludeNamespaces = []string{"kube-system"}
	w := startWebhook(t, admission.Options{Verifier: f.verifier(t, p)})
	unattested := f.repo + "@" + mustDigest(t, testutil.Push(t, testutil.RandomImage(t, "linux", "amd64"), f.repo+":unattested"))

	before := f.registryRequests.Load()
	_, rev := w.post(t, review("uid-ks", "Pod", "", "kube-system", podObject(unattested)))
	if rev == nil || !rev.Response.Allowed {
		t.Fatalf("excluded namespace: %+v", rev)
	}
	if n := f.registryRequests.Load() - before; n != 0 {
		t.Errorf("an excluded namespace cost %d registry requests", n)
	}
	_, rev = w.post(t, review("uid-ml", "Pod", "", "ml", podObject(unattested)))
	if rev == nil || rev.Response.Allowed || !strings.Contains(rev.Response.Result.Message, "not attested") {
		t.Fatalf("namespace ml: %+v", rev)
	}
}

// TestWebhookAllowTags: under admission.allowTags a tag is resolved once
// to a digest and the verdict is about (and cached by) that digest: when
// the tag moves to an unattested image, the next review denies it.
func TestWebhookAllowTags(t *testing.T) {
	f := setup(t)
	f.attest(t, "")
	p := verify.DefaultPolicy()
	p.Admission.AllowTags = true
	w := startWebhook(t, admission.Options{Verifier: f.verifier(t, p)})

	_, rev := w.post(t, review("uid-1", "Pod", "", "ml", podObject(f.ref)))
	if rev == nil || !rev.Response.Allowed {
		t.Fatalf("tag of an attested image: %+v", rev)
	}
	// Warm: the tag is resolved (one manifest request, by tag) and the
	// verdict comes from the cache by digest: no statement is read again.
	before := f.requestCount()
	_, rev = w.post(t, review("uid-2", "Pod", "", "ml", podObject(f.ref)))
	if rev == nil || !rev.Response.Allowed {
		t.Fatalf("tag, warm: %+v", rev)
	}
	var manifests []string
	for _, r := range f.requestsSince(before) {
		if strings.Contains(r, "/manifests/") {
			manifests = append(manifests, r)
		}
	}
	if len(manifests) != 1 || !strings.HasSuffix(manifests[0], "/manifests/v1") {
		t.Errorf("a warm review by tag made the manifest requests %q, want one for the tag v1", manifests)
	}

	// The tag moves: the cached allow for the old digest does not carry over.
	testutil.Push(t, testutil.RandomImage(t, "linux", "amd64"), f.ref)
	_, rev = w.post(t, review("uid-3", "Pod", "", "ml", podObject(f.ref)))
	if rev == nil || rev.Response.Allowed || !strings.Contains(rev.Response.Result.Message, "not attested") {
		t.Fatalf("moved tag: %+v", rev)
	}

	// Without allowTags the same tag is denied before any registry call.
	w2 := startWebhook(t, admission.Options{Verifier: f.verifier(t, nil)})
	before = f.requestCount()
	_, rev = w2.post(t, review("uid-4", "Pod", "", "ml", podObject(f.ref)))
	if rev == nil || rev.Response.Allowed || !strings.Contains(rev.Response.Result.Message, "not by digest") {
		t.Fatalf("tag without allowTags: %+v", rev)
	}
	if r := f.requestsSince(before); len(r) != 0 {
		t.Errorf("a refused tag cost the registry requests %q", r)
	}
}
