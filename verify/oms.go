package verify

// Interop with sigstore's model-signing tool (OpenSSF Model Signing,
// "OMS"): a Sigstore bundle (application/vnd.dev.sigstore.bundle.*+json)
// whose DSSE envelope holds an in-toto Statement v1 with predicate type
// https://model_signing/signature/v1.0, listing every file of the model
// with its sha256 in predicate.resources, and one subject whose digest is
// the sha256 of the resources' raw digests concatenated in name order.
//
// Only key-based signatures are verified here. A keyless signature
// (a Fulcio certificate and a Rekor entry in verificationMaterial) needs
// the Sigstore trust root and transparency log to check, which mlenv does
// not contact: it is refused with that reason, never accepted.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sigstore/sigstore/pkg/signature/dsse"

	"github.com/mlenv/mlenv/attest"
	"github.com/mlenv/mlenv/internal/boundedfile"
	"github.com/mlenv/mlenv/internal/filedigest"
)

// OMSPredicateType is the model-signing tool's predicate type.
const OMSPredicateType = "https://model_signing/signature/v1.0"

// OMSDefaultSignature is the file name the tool writes by default.
const OMSDefaultSignature = "model.sig"

// omsDefaultIgnored are excluded at the model's top level by the spec.
var omsDefaultIgnored = []string{".git", ".gitignore", ".gitattributes", ".github"}

type omsBundle struct {
	MediaType            string `json:"mediaType"`
	VerificationMaterial struct {
		PublicKey            *json.RawMessage `json:"publicKey"`
		Certificate          *json.RawMessage `json:"certificate"`
		X509CertificateChain *json.RawMessage `json:"x509CertificateChain"`
		TlogEntries          []any            `json:"tlogEntries"`
	} `json:"verificationMaterial"`
	DSSE *struct {
		Payload     string `json:"payload"`
		PayloadType string `json:"payloadType"`
		Signatures  []struct {
			Sig   string  `json:"sig"`
			KeyID *string `json:"keyid"`
		} `json:"signatures"`
	} `json:"dsseEnvelope"`
}

type omsStatement struct {
	Type          string           `json:"_type"`
	PredicateType string           `json:"predicateType"`
	Subject       []attest.Subject `json:"subject"`
	Predicate     struct {
		Serialization struct {
			Method        string   `json:"method"`
			HashType      string   `json:"hash_type"`
			AllowSymlinks bool     `json:"allow_symlinks"`
			IgnorePaths   []string `json:"ignore_paths"`
		} `json:"serialization"`
		Resources []struct {
			Name      string `json:"name"`
			Algorithm string `json:"algorithm"`
			Digest    string `json:"digest"`
		} `json:"resources"`
	} `json:"predicate"`
}

// VerifyOMS checks a model folder (or file) against a model-signing
// bundle: the DSSE signature by a trusted key, the statement's form, the
// root digest over the resources, and every file of the model.
func (v *Verifier) VerifyOMS(ctx context.Context, model, sigPath string) (*Result, error) {
	// The default model.sig comes from the model folder: regular files
	// only, since a named pipe there would block verify forever. A file
	// the user named (--oms FILE) may be a pipe (--oms <(curl ...)).
	read := boundedfile.Read
	if sigPath == "" {
		sigPath = filepath.Join(model, OMSDefaultSignature)
		read = boundedfile.ReadRegular
	}
	res := &Result{SchemaVersion: ResultSchemaVersion, Image: model, Policy: v.policy.Name, Checks: []Check{}}
	b, err := read(sigPath, maxBundleBytes)
	if err != nil {
		return nil, fmt.Errorf("model signature %s: %w", sigPath, err)
	}
	st, sigCheck, err := v.omsStatement(b)
	if err != nil {
		return nil, fmt.Errorf("model signature %s: %w", sigPath, err)
	}
	res.Checks = append(res.Checks, sigCheck)
	if st == nil {
		res.Decision = Deny
		return res, nil
	}
	res.Checks = append(res.Checks, omsRootDigest(st))
	c, err := omsFiles(ctx, model, sigPath, st)
	if err != nil {
		return nil, err
	}
	res.Checks = append(res.Checks, c)
	res.Decision = Allow
	if len(res.Failures()) > 0 {
		res.Decision = Deny
	}
	return res, nil
}

// omsStatement verifies the envelope and parses the statement; an error
// means the file is not a model-signing bundle mlenv can check.
func (v *Verifier) omsStatement(raw []byte) (*omsStatement, Check, error) {
	c := Check{Name: "oms.signature", Group: GroupLineage, Expected: "a DSSE signature by a trusted key"}
	var b omsBundle
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, c, fmt.Errorf("not a Sigstore bundle: %w", err)
	}
	if !strings.HasPrefix(b.MediaType, "application/vnd.dev.sigstore.bundle") {
		return nil, c, fmt.Errorf("media type %q is not a Sigstore bundle", b.MediaType)
	}
	vm := b.VerificationMaterial
	if vm.PublicKey == nil && (vm.Certificate != nil || vm.X509CertificateChain != nil) {
		return nil, c, fmt.Errorf("it is signed with a certificate (keyless Sigstore or a certificate chain): verifying that needs the Sigstore trust root (Fulcio) and transparency log (Rekor) or your CA, which mlenv does not use; verify it with `model_signing verify sigstore`, or sign with a key")
	}
	if b.DSSE == nil || len(b.DSSE.Signatures) == 0 {
		return nil, c, fmt.Errorf("no DSSE envelope with a signature")
	}
	if b.DSSE.PayloadType != "application/vnd.in-toto+json" {
		return nil, c, fmt.Errorf("DSSE payload type %q, want application/vnd.in-toto+json", b.DSSE.PayloadType)
	}
	// The standard DSSE envelope form, for sigstore's DSSE verifier.
	type sig struct {
		KeyID string `json:"keyid"`
		Sig   string `json:"sig"`
	}
	env := struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
		Signatures  []sig  `json:"signatures"`
	}{PayloadType: b.DSSE.PayloadType, Payload: b.DSSE.Payload}
	for _, s := range b.DSSE.Signatures {
		env.Signatures = append(env.Signatures, sig{Sig: s.Sig})
	}
	envJSON, _ := json.Marshal(env)
	var by *Key
	for i := range v.keys {
		if dsse.WrapVerifier(v.keys[i].Verifier).VerifySignature(bytes.NewReader(envJSON), nil) == nil {
			by = &v.keys[i]
			break
		}
	}
	if by == nil {
		c.Status, c.Actual, c.Message = Fail, "rejected", "signature does not verify with "+keyList(v.keys, "", nil)
		return nil, c, nil
	}
	payload, err := payloadOf(envJSON)
	if err != nil {
		return nil, c, err
	}
	var st omsStatement
	if err := json.Unmarshal(payload, &st); err != nil {
		return nil, c, fmt.Errorf("payload is not an in-toto statement: %w", err)
	}
	if st.Type != StatementTypeV1 || st.PredicateType != OMSPredicateType {
		return nil, c, fmt.Errorf("statement %s with predicate type %q: mlenv reads %s (the older Digests/v0.1 form is not read)", st.Type, st.PredicateType, OMSPredicateType)
	}
	if m := st.Predicate.Serialization.Method; m != "files" {
		return nil, c, fmt.Errorf("serialization method %q: mlenv verifies the \"files\" method only", m)
	}
	if h := st.Predicate.Serialization.HashType; h != "sha256" {
		return nil, c, fmt.Errorf("hash type %q: mlenv verifies sha256 only", h)
	}
	if st.Predicate.Serialization.AllowSymlinks {
		return nil, c, fmt.Errorf("signed with allow_symlinks: mlenv does not follow links in a model")
	}
	if len(st.Subject) != 1 || len(st.Predicate.Resources) == 0 {
		return nil, c, fmt.Errorf("want one subject and at least one resource, got %d and %d", len(st.Subject), len(st.Predicate.Resources))
	}
	c.Status, c.Actual = Pass, "signed by "+by.Source
	return &st, c, nil
}

// payloadOf decodes a DSSE envelope's payload (already known to parse).
func payloadOf(raw []byte) ([]byte, error) {
	var env struct {
		Payload []byte `json:"payload"`
	}
	err := json.Unmarshal(raw, &env)
	return env.Payload, err
}

// StatementTypeV1 is in-toto Statement v1.
const StatementTypeV1 = "https://in-toto.io/Statement/v1"

// omsRootDigest recomputes the subject digest from the resources.
func omsRootDigest(st *omsStatement) Check {
	c := Check{Name: "oms.rootDigest", Group: GroupLineage, Expected: "sha256:" + st.Subject[0].Digest["sha256"]}
	res := append(st.Predicate.Resources[:0:0], st.Predicate.Resources...)
	sort.Slice(res, func(i, j int) bool { return res[i].Name < res[j].Name })
	h := sha256.New()
	for _, r := range res {
		raw, err := hex.DecodeString(r.Digest)
		if err != nil || r.Algorithm != "sha256" {
			c.Status, c.Actual, c.Message = Fail, "invalid", fmt.Sprintf("resource %s: digest %q (%s) is not hex sha256", r.Name, r.Digest, r.Algorithm)
			return c
		}
		h.Write(raw)
	}
	got := "sha256:" + hex.EncodeToString(h.Sum(nil))
	c.Actual = got
	if got == c.Expected {
		c.Status = Pass
	} else {
		c.Status, c.Message = Fail, "the subject digest does not cover the listed resources"
	}
	return c
}

// omsFiles hashes the model the way the tool does and compares.
func omsFiles(ctx context.Context, model, sigPath string, st *omsStatement) (Check, error) {
	c := Check{Name: "oms.files", Group: GroupLineage, Expected: fmt.Sprintf("the %d files the signature lists, with their sha256", len(st.Predicate.Resources))}
	ignored := map[string]bool{}
	for _, p := range append(append([]string{}, omsDefaultIgnored...), st.Predicate.Serialization.IgnorePaths...) {
		ignored[p] = true
	}
	files, err := filedigest.Sum(ctx, model, filedigest.Options{Exclude: func(rel string) bool {
		return ignored[rel] || filepath.Join(model, filepath.FromSlash(rel)) == filepath.Clean(sigPath)
	}})
	if err != nil {
		return c, fmt.Errorf("reading model %s: %w", model, err)
	}
	subs := make([]attest.Subject, 0, len(st.Predicate.Resources))
	for _, r := range st.Predicate.Resources {
		subs = append(subs, attest.Subject{Name: r.Name, Digest: map[string]string{"sha256": r.Digest}})
	}
	cmp := compareFiles(files, subs)
	if len(cmp) == 0 {
		c.Status, c.Actual = Pass, fmt.Sprintf("%d files, every digest matches", len(files))
	} else {
		c.Status, c.Actual, c.Message = Fail, fmt.Sprintf("%d difference(s)", len(cmp)), strings.Join(cmp, "; ")
	}
	return c, nil
}
