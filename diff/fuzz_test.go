package diff

import (
	"os"
	"strings"
	"testing"
)

// FuzzParse: any bytes given as a lock, fingerprint or bundle file give a
// description or an error naming the file, never a panic.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("../examples/minimal/mlenv.lock"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"version":1,"gpu":{"available":false,"devices":[]},"cpu":{"vendor":"x"},"os":{},"env":{}}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.mlenv.bundle.v1+json","attestations":[{"predicateType":"https://spdx.dev/Document","dsseEnvelope":{"payload":"e30="}}]}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.mlenv.bundle.v1+json","attestations":[{"dsseEnvelope":{"payload":"!!"}}]}`))
	f.Add([]byte("not json"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse("input.json", data)
		if err == nil && d == nil {
			t.Fatal("no description and no error")
		}
		if err == nil {
			// Whatever parsed must compare with itself as the same.
			r, err := Compare(d, d, Options{})
			if err != nil {
				if strings.HasPrefix(err.Error(), "nothing to compare") {
					return // e.g. a bundle without SBOM or fingerprint
				}
				t.Fatal(err)
			}
			if !r.Same {
				t.Fatalf("input differs from itself: %+v", r.Findings)
			}
		}
	})
}
