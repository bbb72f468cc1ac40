package testutil

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// ValidateSPDX checks a document against the published SPDX 2.3 JSON
// schema, which stays outside the repository (../shared/schemas beside the
// checkout); the test is skipped, saying so, where it is absent.
func ValidateSPDX(t testing.TB, doc []byte) {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	schema := filepath.Join(filepath.Dir(here), "..", "..", "..", "shared", "schemas", "spdx-2.3.schema.json")
	if _, err := os.Stat(schema); err != nil {
		t.Skipf("SPDX 2.3 schema not found at %s: schema validation skipped", schema)
	}
	sch, err := jsonschema.NewCompiler().Compile(schema)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(inst); err != nil {
		t.Errorf("SBOM is not valid SPDX 2.3: %v", err)
	}
}
