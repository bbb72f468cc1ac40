package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/mlenv/mlenv/internal/testutil"
	"github.com/mlenv/mlenv/verify"
)

// verifyFixture: the offline example built into a registry on 127.0.0.1,
// attested through the CLI with key a; key b is trusted by nobody.
type verifyFixture struct {
	dir, ref, digest, lock string
	pubA, pubB             string
}

func newVerifyFixture(t *testing.T) *verifyFixture {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
	t.Setenv("COSIGN_PASSWORD", "pw")
	f := &verifyFixture{dir: dir}
	f.lock, _ = filepath.Abs("../../examples/minimal/mlenv.lock")
	f.ref = testutil.Registry(t, nil) + "/team/example:v1"
	stdout, stderr, code := run(t, "build", "--lock", f.lock, "--output", f.ref)
	if code != 0 {
		t.Fatalf("build: %s", stderr)
	}
	f.digest = lastLine(stdout)
	for _, k := range []string{"a", "b"} {
		if _, stderr, code := run(t, "generate-key-pair", "--dir", filepath.Join(dir, k)); code != 0 {
			t.Fatalf("generate-key-pair: %s", stderr)
		}
	}
	f.pubA, f.pubB = filepath.Join(dir, "a", "cosign.pub"), filepath.Join(dir, "b", "cosign.pub")
	if _, stderr, code := run(t, "attest", f.ref, "--key", filepath.Join(dir, "a", "cosign.key"), "--lock", f.lock); code != 0 {
		t.Fatalf("attest: %s", stderr)
	}
	return f
}

// verifyJSON runs verify --output json and checks the answer against
// verify/schema.json (the documented schema) before anything else.
func verifyJSON(t *testing.T, args ...string) (verify.Result, int) {
	t.Helper()
	stdout, stderr, code := run(t, append([]string{"verify", "--output", "json"}, args...)...)
	sch, err := jsonschema.NewCompiler().Compile("../../verify/schema.json")
	must(t, err)
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(stdout))
	if err != nil {
		t.Fatalf("verify %v: stdout is not JSON: %v\n%s\n%s", args, err, stdout, stderr)
	}
	if err := sch.Validate(inst); err != nil {
		t.Errorf("verify %v: output does not match verify/schema.json: %v\n%s", args, err, stdout)
	}
	var r verify.Result
	must(t, json.Unmarshal([]byte(stdout), &r))
	return r, code
}

func TestVerifyCLIAllowedAndDenied(t *testing.T) {
	f := newVerifyFixture(t)

	// Allowed, by tag: exit 0, one PASS line per check with expected and
	// actual, the digest the tag resolved to, ALLOWED last.
	stdout, stderr, code := run(t, "verify", f.ref, "--key", f.pubA)
	if code != 0 {
		t.Fatalf("verify: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, re := range []string{
		`(?m)^digest  ` + regexp.QuoteMeta(f.digest) + `$`,
		`(?m)^PASS  statement\.provenance  expected: https://slsa\.dev/provenance/v1 signed by a trusted key  actual: signed by ` + regexp.QuoteMeta(f.pubA) + `  \(from .*\.att\)$`,
		`(?m)^PASS  statement\.sbom  expected: https://spdx\.dev/Document signed by a trusted key  actual: signed by ` + regexp.QuoteMeta(f.pubA),
	} {
		if !regexp.MustCompile(re).MatchString(stdout) {
			t.Errorf("verify output lacks %s:\n%s", re, stdout)
		}
	}
	if lastLine(stdout) != "ALLOWED" {
		t.Errorf("last line %q, want ALLOWED", lastLine(stdout))
	}
	res, code := verifyJSON(t, f.ref, "--key", f.pubA)
	if code != 0 || res.Decision != verify.Allow || res.Digest != f.digest || len(res.Statements) != 2 {
		t.Errorf("--output json: exit %d, %+v", code, res)
	}

	// Denied: the wrong key, and a policy expecting another lock. Exit 1
	// and every reason printed: each FAIL of the JSON answer is a FAIL line.
	otherLock := "sha256:" + strings.Repeat("ab", 32)
	policy := filepath.Join(f.dir, "policy.yaml")
	must(t, os.WriteFile(policy, []byte("apiVersion: mlenv.dev/v1\nkind: VerifyPolicy\nlockDigest: "+otherLock+"\n"), 0o644))
	args := []string{f.ref, "--key", f.pubB, "--policy", policy}
	res, code = verifyJSON(t, args...)
	if code != 1 || res.Decision != verify.Deny {
		t.Fatalf("denied --output json: exit %d, %+v", code, res)
	}
	stdout, stderr, code = run(t, append([]string{"verify"}, args...)...)
	if code != 1 {
		t.Fatalf("denied: exit %d\n%s\n%s", code, stdout, stderr)
	}
	fails := res.Failures()
	var names []string
	for _, c := range fails {
		names = append(names, c.Name)
		line := "FAIL  " + c.Name + "  expected: " + c.Expected + "  actual: " + c.Actual
		if !strings.Contains(stdout, line) {
			t.Errorf("text output lacks %q:\n%s", line, stdout)
		}
	}
	for _, want := range []string{"statement.provenance", "statement.sbom", "policy.lockDigest", "policy.lockDigest.label"} {
		if !strings.Contains(" "+strings.Join(names, " ")+" ", " "+want+" ") {
			t.Errorf("denial lacks %s: %v", want, names)
		}
	}
	if !strings.Contains(stdout, "signature does not verify with any trusted key ("+f.pubB+")") || !strings.Contains(stdout, "expected: "+otherLock) {
		t.Errorf("the reasons are not spelled out:\n%s", stdout)
	}
	if lastLine(stdout) != "DENIED" || strings.Count(stdout, "\nFAIL  ") != len(fails) {
		t.Errorf("want %d FAIL lines and DENIED last:\n%s", len(fails), stdout)
	}
}

// TestVerifyCLICouldNotCheck: exit 2 (never 0 or 1) with the cause, in
// text and in JSON (decision "error"), and nothing that reads as allowed.
func TestVerifyCLICouldNotCheck(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("COSIGN_PASSWORD", "pw")
	if _, stderr, code := run(t, "generate-key-pair", "--dir", dir); code != 0 {
		t.Fatal(stderr)
	}
	pub := filepath.Join(dir, "cosign.pub")
	notKey := filepath.Join(dir, "not-a-key.pub")
	must(t, os.WriteFile(notKey, []byte("ssh-ed25519 AAAA... me@host\n"), 0o644))
	badPolicy := filepath.Join(dir, "policy.yaml")
	must(t, os.WriteFile(badPolicy, []byte("apiVersion: mlenv.dev/v1\nkind: VerifyPolicy\nrequirre: [sbom]\n"), 0o644))
	reg := testutil.Registry(t, nil)
	image := reg + "/team/none@sha256:" + strings.Repeat("0", 64)
	// A port nothing listens on: connection refused, at once.
	down := "127.0.0.1:1/team/x@sha256:" + strings.Repeat("0", 64)
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"key file is not a key", []string{image, "--key", notKey}, "no PEM PUBLIC KEY block"},
		{"private key as --key", []string{image, "--key", filepath.Join(dir, "cosign.key")}, "expected PUBLIC KEY"},
		{"missing key file", []string{image, "--key", filepath.Join(dir, "none.pub")}, "no such file"},
		{"no key", []string{image}, "no public key"},
		{"malformed policy", []string{image, "--key", pub, "--policy", badPolicy}, "field requirre not found"},
		{"unreachable registry", []string{down, "--key", pub}, "127.0.0.1:1"},
		{"image not in the registry", []string{image, "--key", pub}, "team/none"},
	} {
		res, code := verifyJSON(t, c.args...)
		if code != 2 || res.Decision != verify.Error || !strings.Contains(res.Error, c.want) || len(res.Checks) != 0 {
			t.Errorf("%s, json: exit %d, decision %s, error %q; want 2, error, %q", c.name, code, res.Decision, res.Error, c.want)
		}
		stdout, stderr, code := run(t, append([]string{"verify"}, c.args...)...)
		if code != 2 || !strings.Contains(stdout, "COULD NOT CHECK (denied)") || !strings.Contains(stderr, c.want) || strings.Contains(stdout, "ALLOWED") {
			t.Errorf("%s: exit %d\nstdout %s\nstderr %s\nwant exit 2 naming %q", c.name, code, stdout, stderr, c.want)
		}
	}
	if _, stderr, code := run(t, "verify", image, "--key", pub, "--output", "yaml"); code != 2 || !strings.Contains(stderr, "use text or json") {
		t.Errorf("--output yaml: exit %d, %s", code, stderr)
	}
}

func TestVerifyCLIHelp(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"verify", "--help"}, []string{"Examples:", "mlenv verify registry.example.com/team/train@sha256:", "--bundle", "--runtime", "Exit 0 allowed, 1 denied, 2 could not check", "serve"}},
		{[]string{"verify", "serve", "--help"}, []string{"Examples:", "--tls-cert", "AdmissionReview"}},
	} {
		stdout, stderr, code := run(t, c.args...)
		if code != 0 {
			t.Errorf("%v: exit %d: %s", c.args, code, stderr)
		}
		for _, w := range c.want {
			if !strings.Contains(stdout, w) {
				t.Errorf("%v: help lacks %q:\n%s", c.args, w, stdout)
			}
		}
	}
}
