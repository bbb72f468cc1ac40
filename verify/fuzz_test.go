package verify

import (
	"strings"
	"testing"
)

func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte("apiVersion: mlenv.dev/v1\nkind: VerifyPolicy\nrequire: [provenance]\nmaxAge: 30d\nrules: [{name: a, expr: 'image.digest != \"\"'}]\n"))
	f.Add([]byte("apiVersion: mlenv.dev/v1\nkind: VerifyPolicy\nruntime: {willRun: maybe}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePolicy(b)
		if err == nil && (p.APIVersion != PolicyAPIVersion || p.validate() != nil) {
			t.Errorf("accepted an invalid policy: %+v", p)
		}
	})
}

func FuzzGPUCodeFromSBOM(f *testing.F) {
	f.Add([]byte(`{"packages":[{"annotations":[{"comment":"mlenv.cuda.v1: {\"summary\":{\"sass\":[\"sm_90\"],\"ptx\":[]},\"cudaRuntime\":[{\"version\":\"12.8\"}]}"}]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := gpuCodeFromSBOM(b)
		if err != nil && g != nil {
			t.Error("both a result and an error")
		}
	})
}

func TestPolicyErrorsSayWhat(t *testing.T) {
	for _, c := range []struct{ doc, want string }{
		{"apiVersion: mlenv.dev/v1\nkind: VerifyPolicy\nrequire: [provenence]\n", `"provenence" is not one of`},
		{"apiVersion: mlenv.dev/v1\nkind: VerifyPolicy\nrequirre: [sbom]\n", "field requirre not found"},
		{"apiVersion: v2\nkind: VerifyPolicy\n", "want apiVersion mlenv.dev/v1"},
		{"apiVersion: mlenv.dev/v1\nkind: VerifyPolicy\nmaxAge: soon\n", "line 3"},
		{"apiVersion: mlenv.dev/v1\nkind: VerifyPolicy\nrules: [{name: r, expr: 'image.digest +'}]\n", `rule "r"`},
		{"apiVersion: mlenv.dev/v1\nkind: VerifyPolicy\nrules: [{name: r, expr: '1 + 2'}]\n", "must give a bool"},
		{"apiVersion: mlenv.dev/v1\nkind: VerifyPolicy\nlockDigest: abc\n", "sha256:"},
	} {
		if _, err := ParsePolicy([]byte(c.doc)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error with %q", c.doc, err, c.want)
		}
	}
	p, err := ParsePolicy([]byte("apiVersion: mlenv.dev/v1\nkind: VerifyPolicy\nmaxAge: 30d\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Require) != 2 || p.Runtime.WillRun != Enforce || p.Runtime.WillReproduce != Warn || p.MaxAge.String() != "720h0m0s" {
		t.Errorf("defaults not kept: %+v", p)
	}
}

func TestExamplePolicyLoads(t *testing.T) {
	p, err := LoadPolicy("../examples/kubernetes/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Require) != 3 || p.Runtime.WillReproduce != Warn || len(p.Rules) != 1 {
		t.Errorf("example policy read as %+v", p)
	}
}
