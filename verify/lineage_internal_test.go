package verify

import (
	"encoding/json"
	"fmt"
	"testing"
)

func sbomDoc(torch, numpy, flask, cudart string) json.RawMessage {
	pkg := func(name, ver string) map[string]any {
		return map[string]any{"name": name, "versionInfo": ver, "SPDXID": "SPDXRef-" + name,
			"externalRefs": []any{map[string]any{"referenceType": "purl", "referenceLocator": fmt.Sprintf("pkg:pypi/%s@%s", name, ver)}}}
	}
	root := map[string]any{"name": "img", "primaryPackagePurpose": "CONTAINER",
		"annotations": []any{map[string]any{"comment": `mlenv.cuda.v1: {"summary":{},"cudaRuntime":[{"version":"` + cudart + `","source":"libcudart"}],"cudaCompat":false}`}}}
	b, _ := json.Marshal(map[string]any{"packages": []any{root, pkg("torch", torch), pkg("numpy", numpy), pkg("flask", flask)}})
	return b
}

// Framework and CUDA runtime versions differ between the training and
// serving images: each is named; a web framework's version is not.
func TestComparePackagesNamesNumericsOnly(t *testing.T) {
	same := comparePackages(sbomDoc("2.5.1", "2.1.0", "3.0", "12.8"), sbomDoc("2.5.1", "2.1.0", "3.1", "12.8"), Fail)
	if len(same) != 1 || same[0].Status != Pass {
		t.Fatalf("only flask differs, got %+v", same)
	}
	got := map[string]Check{}
	for _, c := range comparePackages(sbomDoc("2.5.1", "2.1.0", "3.0", "12.8"), sbomDoc("2.6.0", "2.1.0", "3.0", "12.4"), Fail) {
		got[c.Name] = c
	}
	if c := got["reproduce.packages.python/torch"]; c.Status != Fail || c.Expected != "2.5.1" || c.Actual != "2.6.0" {
		t.Errorf("torch: %+v", c)
	}
	if c := got["reproduce.cudaRuntime"]; c.Status != Fail || c.Expected != "12.8" || c.Actual != "12.4" {
		t.Errorf("cuda runtime: %+v", c)
	}
	if len(got) != 2 {
		t.Errorf("checks: %v", got)
	}
}
