package attest_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/cosign/v2/pkg/cosign/attestation"

	"github.com/mlenv/mlenv/attest"
	"github.com/mlenv/mlenv/fingerprint"
)

// trainingHost is a small, valid fingerprint (its id matches its content).
func trainingHost() *fingerprint.Fingerprint {
	fp := &fingerprint.Fingerprint{Version: fingerprint.SchemaVersion,
		GPU: fingerprint.GPU{Available: true, DriverVersion: "580.159.04", CUDADriverVersion: "13.0",
			Devices: []fingerprint.Device{{Name: "NVIDIA H200", Architecture: "Hopper", ComputeCapability: "9.0", MemoryTotalBytes: 150754820096}}},
		CPU: fingerprint.CPU{Vendor: "GenuineIntel", GOARCH: "amd64", X86Level: 4, NumericsFeatures: []string{"AVX2", "AVX512F", "FMA"}},
		Env: map[string]string{"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}}
	fp.ID = fp.ComputeID()
	return fp
}

// TestReadFingerprintPredicateBothShapes: mlenv attest's {role,
// fingerprint} and the bare fingerprint `cosign attest --type
// https://mlenv.dev/fingerprint/v1 --predicate fp.json` writes, made here
// by cosign's own statement generator, read to the same fingerprint.
func TestReadFingerprintPredicateBothShapes(t *testing.T) {
	fp := trainingHost()
	fpJSON, err := fp.JSON()
	if err != nil {
		t.Fatal(err)
	}
	st, err := attestation.GenerateStatement(attestation.GenerateOpts{Predicate: bytes.NewReader(fpJSON),
		Type: fingerprint.PredicateType, Digest: strings.Repeat("ab", 32), Repo: "127.0.0.1/team/train", Time: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	cosignPayload, _ := json.Marshal(st)
	var cosignStatement attest.StatementView
	if err := json.Unmarshal(cosignPayload, &cosignStatement); err != nil {
		t.Fatal(err)
	}
	if cosignStatement.PredicateType != fingerprint.PredicateType || cosignStatement.Type != "https://in-toto.io/Statement/v0.1" {
		t.Fatalf("cosign wrote %s %s", cosignStatement.Type, cosignStatement.PredicateType)
	}
	mlenvPred, _ := json.Marshal(attest.FingerprintPredicate{Role: "train", Fingerprint: fp})
	for _, c := range []struct {
		name, role string
		pred       json.RawMessage
	}{{"mlenv", "train", mlenvPred}, {"cosign", "", cosignStatement.Predicate}} {
		got, err := attest.ReadFingerprintPredicate(c.pred)
		if err != nil {
			t.Fatalf("%s shape: %v", c.name, err)
		}
		if got.Role != c.role || got.Fingerprint.ID != fp.ID || got.Fingerprint.GPU.Devices[0].MemoryTotalBytes != 150754820096 {
			t.Errorf("%s shape read as role %q id %s", c.name, got.Role, got.Fingerprint.ID)
		}
	}
}

func TestReadFingerprintPredicateRefuses(t *testing.T) {
	fp := trainingHost()
	edited := *fp
	edited.GPU.DriverVersion = "999.0" // content changed, id kept
	editedJSON, _ := json.Marshal(&edited)
	wrapped, _ := json.Marshal(attest.FingerprintPredicate{Role: "train", Fingerprint: &edited})
	old := *fp
	old.Version = fingerprint.SchemaVersion + 1
	oldJSON, _ := json.Marshal(&old)
	for _, c := range []struct {
		name, pred, want string
	}{
		{"edited bare", string(editedJSON), "does not match its content"},
		{"edited wrapped", string(wrapped), "does not match its content"},
		{"other version", string(oldJSON), "no version-"},
		{"not an object", `[1,2]`, "not a JSON object"},
		{"cosign custom", `{"Data":"{}","Timestamp":"2025-01-01T00:00:00Z"}`, "no version-"},
		{"fingerprint not an object", `{"fingerprint":"x"}`, "does not parse"},
	} {
		if _, err := attest.ReadFingerprintPredicate(json.RawMessage(c.pred)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
	}
}

func TestDecodeEnvelopeErrors(t *testing.T) {
	for _, c := range []struct{ env, want string }{
		{`nope`, "not a DSSE envelope"},
		{`{"payloadType":"text/plain","payload":"e30="}`, "payload type"},
		{`{"payloadType":"application/vnd.in-toto+json","payload":"%%%"}`, "not base64"},
		{`{"payloadType":"application/vnd.in-toto+json","payload":"WzFd"}`, "not an in-toto statement"},
	} {
		if _, err := attest.DecodeEnvelope([]byte(c.env)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.env, err, c.want)
		}
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add([]byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}`))
	f.Add([]byte(`{"payloadType":"text/plain"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if h, err := attest.DecodeEnvelope(b); err == nil && h == nil {
			t.Error("nil statement without an error")
		}
	})
}

func FuzzReadFingerprintPredicate(f *testing.F) {
	b, _ := trainingHost().JSON()
	f.Add(b)
	w, _ := json.Marshal(attest.FingerprintPredicate{Role: "train", Fingerprint: trainingHost()})
	f.Add(w)
	f.Add([]byte(`{"fingerprint":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := attest.ReadFingerprintPredicate(b)
		if err == nil && (p.Fingerprint == nil || p.Fingerprint.ID != p.Fingerprint.ComputeID()) {
			t.Error("accepted a fingerprint whose id does not match")
		}
	})
}
