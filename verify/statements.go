package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	ctypes "github.com/sigstore/cosign/v2/pkg/types"

	"github.com/mlenv/mlenv/attest"
	"github.com/mlenv/mlenv/fingerprint"
)

// The statement kinds a policy names, and the predicate types behind them.
const (
	KindProvenance = "provenance"
	KindSBOM       = "sbom"
	KindTraining   = "training"
)

// PredicateTypes maps each kind to its in-toto predicate type.
var PredicateTypes = map[string]string{
	KindProvenance: "https://slsa.dev/provenance/v1",
	KindSBOM:       attest.SPDXPredicateType,
	KindTraining:   fingerprint.PredicateType,
}

func kindOf(predicateType string) string {
	for k, pt := range PredicateTypes {
		if pt == predicateType {
			return k
		}
	}
	return ""
}

// Bounds on what a bundle may hand us (the registry's are attest's).
const (
	maxBundleBytes = 64 << 20
	maxEnvelopes   = attest.MaxAttached
)

// Statement is one verified statement.
type Statement struct {
	Kind          string          `json:"kind"`
	PredicateType string          `json:"predicateType"`
	Predicate     json.RawMessage `json:"-"`
	// KeyID and KeySource name the key whose signature verified.
	KeyID     string `json:"keyId"`
	KeySource string `json:"keySource"`
	Origin    string `json:"origin"`
}

// Rejected is an envelope that did not verify, with why.
type Rejected struct {
	PredicateType string `json:"predicateType,omitempty"`
	Origin        string `json:"origin"`
	Reason        string `json:"reason"`
}

// Evidence is what was found about one digest.
type Evidence struct {
	// Statements holds the verified statement of each kind (the last one
	// stored, when there are several).
	Statements map[string]*Statement `json:"statements"`
	Rejected   []Rejected            `json:"rejected,omitempty"`
	// Ignored lists verified predicate types mlenv does not know.
	Ignored []string `json:"ignored,omitempty"`
	Found   int      `json:"found"`
}

// bundleEnvelopes reads an mlenv bundle file (bounded in size).
func bundleEnvelopes(path string) ([]attest.Envelope, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("--bundle: %w", err)
	}
	if fi.Size() > maxBundleBytes {
		return nil, fmt.Errorf("--bundle %s: %d bytes, over the %d-byte limit for a bundle", path, fi.Size(), maxBundleBytes)
	}
	b, err := attest.ReadBundle(path)
	if err != nil {
		return nil, fmt.Errorf("--bundle: %w", err)
	}
	if len(b.Attestations) > maxEnvelopes {
		return nil, fmt.Errorf("--bundle %s: %d attestations, more than the %d verify reads", path, len(b.Attestations), maxEnvelopes)
	}
	return attest.BundleEnvelopes(path, b), nil
}

func names(h *attest.StatementView, digest v1.Hash) bool {
	for _, s := range h.Subject {
		if s.Digest[digest.Algorithm] == digest.Hex {
			return true
		}
	}
	return false
}

// knownStatementTypes are the in-toto statement versions accepted: v1
// (mlenv) and v0.1 (what cosign attest writes).
var knownStatementTypes = map[string]bool{
	"https://in-toto.io/Statement/v1":   true,
	"https://in-toto.io/Statement/v0.1": true,
}

// checkEnvelopes verifies each envelope with cosign's own verification
// (DSSE signature by a trusted key, a subject naming the digest) and
// keeps the verified statements by kind.
func checkEnvelopes(ctx context.Context, envs []attest.Envelope, digest v1.Hash, keys []Key, pinned map[string][]Key) *Evidence {
	ev := &Evidence{Statements: map[string]*Statement{}, Found: len(envs)}
	for _, e := range envs {
		h, err := attest.DecodeEnvelope(e.Raw)
		if err != nil {
			ev.Rejected = append(ev.Rejected, Rejected{Origin: e.Origin, Reason: err.Error()})
			continue
		}
		kind := kindOf(h.PredicateType)
		cands := keys
		if p, ok := pinned[kind]; ok {
			cands = p
		}
		att, err := static.NewAttestation(e.Raw, static.WithLayerMediaType(ctypes.DssePayloadType))
		if err != nil {
			ev.Rejected = append(ev.Rejected, Rejected{PredicateType: h.PredicateType, Origin: e.Origin, Reason: err.Error()})
			continue
		}
		var by *Key
		var lastErr error
		for i := range cands {
			co := &cosign.CheckOpts{SigVerifier: cands[i].Verifier, IgnoreTlog: true, IgnoreSCT: true, ClaimVerifier: cosign.IntotoSubjectClaimVerifier}
			if _, err := cosign.VerifyBlobAttestation(ctx, att, digest, co); err != nil {
				lastErr = err
				continue
			}
			by = &cands[i]
			break
		}
		if by == nil {
			reason := fmt.Sprintf("signature does not verify with %s: %v", keyList(cands, kind, pinned), lastErr)
			if !names(h, digest) {
				reason = fmt.Sprintf("statement is about %s, not this image (%s)", subjectList(h), digest)
			}
			ev.Rejected = append(ev.Rejected, Rejected{PredicateType: h.PredicateType, Origin: e.Origin, Reason: reason})
			continue
		}
		if !knownStatementTypes[h.Type] {
			ev.Rejected = append(ev.Rejected, Rejected{PredicateType: h.PredicateType, Origin: e.Origin, Reason: fmt.Sprintf("statement _type %q is not in-toto Statement v1 or v0.1", h.Type)})
			continue
		}
		if kind == "" {
			ev.Ignored = append(ev.Ignored, h.PredicateType)
			continue
		}
		ev.Statements[kind] = &Statement{Kind: kind, PredicateType: h.PredicateType, Predicate: h.Predicate, KeyID: by.ID, KeySource: by.Source, Origin: e.Origin}
	}
	return ev
}

func keyList(keys []Key, kind string, pinned map[string][]Key) string {
	var s []string
	for _, k := range keys {
		s = append(s, k.Source)
	}
	what := "any trusted key"
	if _, ok := pinned[kind]; ok {
		what = "the keys the policy pins for " + kind
	}
	return what + " (" + strings.Join(s, ", ") + ")"
}

func subjectList(h *attest.StatementView) string {
	var s []string
	for _, sub := range h.Subject {
		for alg, hex := range sub.Digest {
			s = append(s, alg+":"+hex)
		}
	}
	if len(s) == 0 {
		return "no subject"
	}
	return strings.Join(s, ", ")
}

// imageSignature checks the cosign image signature (sha256-<hex>.sig).
// found is false when there is none at all.
func imageSignature(ctx context.Context, t *Target, keys []Key, opts []remote.Option) (found bool, by *Key, err error) {
	var lastErr error
	for i := range keys {
		co := &cosign.CheckOpts{SigVerifier: keys[i].Verifier, IgnoreTlog: true, IgnoreSCT: true,
			ClaimVerifier: cosign.SimpleClaimVerifier, RegistryClientOpts: []ociremote.Option{ociremote.WithRemoteOptions(opts...)}}
		_, _, err := cosign.VerifyImageSignatures(ctx, *t.Ref, co)
		if err == nil {
			return true, &keys[i], nil
		}
		var none *cosign.ErrNoSignaturesFound
		if errors.As(err, &none) {
			return false, nil, nil
		}
		lastErr = err
	}
	return true, nil, lastErr
}
