package verify

import (
	"testing"
)

// FuzzOMSBundle: any bytes as a model-signing bundle give an error or a
// rejected check, never a panic and never a verified statement (no key
// signed them).
func FuzzOMSBundle(f *testing.F) {
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{"hint":"x"}},"dsseEnvelope":{"payload":"e30=","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"AA=="}]}}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"certificate":{}}}`))
	f.Add([]byte(`[]`))
	v := &Verifier{policy: DefaultPolicy()}
	f.Fuzz(func(t *testing.T, b []byte) {
		st, _, err := v.omsStatement(b)
		if err == nil && st != nil {
			t.Fatal("a statement verified with no trusted key")
		}
	})
}
