package attest

// This file is the one reader of stored statements: verify (which then
// checks signatures with cosign's functions) and diff (which compares
// contents) both read envelopes, statements and fingerprint predicates
// through it, whoever wrote them: mlenv or the cosign CLI.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"

	"github.com/mlenv/mlenv/fingerprint"
)

// MaxAttached bounds how many attestations are read for one digest (a
// registry could list any number).
const MaxAttached = 256

// Envelope is one stored DSSE envelope and where it came from (the .att
// tag, or a bundle file).
type Envelope struct {
	Raw    []byte
	Origin string
}

// ReadAttached reads the attestations stored beside digest the way
// cosign stores them (the sha256-<hex>.att manifest), whoever wrote them.
// No attestations is not an error: the answer is empty. Signatures are
// not checked here.
func ReadAttached(digest name.Digest, opts ...remote.Option) ([]Envelope, error) {
	ropt := ociremote.WithRemoteOptions(opts...)
	tag, err := ociremote.AttestationTag(digest, ropt)
	if err != nil {
		return nil, err
	}
	sigs, err := ociremote.Signatures(tag, ropt)
	if err != nil {
		return nil, fmt.Errorf("reading attestations %s: %w", tag, err)
	}
	list, err := sigs.Get()
	if err != nil {
		return nil, fmt.Errorf("reading attestations %s: %w", tag, err)
	}
	if len(list) > MaxAttached {
		return nil, fmt.Errorf("%s holds %d attestations, more than the %d mlenv reads", tag, len(list), MaxAttached)
	}
	out := make([]Envelope, 0, len(list))
	for i, s := range list {
		p, err := s.Payload()
		if err != nil {
			return nil, fmt.Errorf("reading attestation %d of %s: %w", i+1, tag, err)
		}
		out = append(out, Envelope{Raw: p, Origin: tag.String()})
	}
	return out, nil
}

// BundleEnvelopes lists a bundle's envelopes, each named by path.
func BundleEnvelopes(path string, b *Bundle) []Envelope {
	out := make([]Envelope, 0, len(b.Attestations))
	for _, a := range b.Attestations {
		out = append(out, Envelope{Raw: a.Envelope, Origin: path})
	}
	return out
}

// StatementView is the in-toto statement inside an envelope, unverified:
// in-toto Statement v1 (mlenv) or v0.1 (cosign attest).
type StatementView struct {
	Type          string          `json:"_type"`
	PredicateType string          `json:"predicateType"`
	Subject       []Subject       `json:"subject"`
	Predicate     json.RawMessage `json:"predicate"`
}

// Subject is one subject of a StatementView: a name and its digests.
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// DecodeEnvelope reads the statement of a DSSE envelope without checking
// its signature.
func DecodeEnvelope(raw []byte) (*StatementView, error) {
	var env struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, fmt.Errorf("not a DSSE envelope: %w", err)
	}
	if env.PayloadType != PayloadType {
		return nil, fmt.Errorf("payload type %q, want %s", env.PayloadType, PayloadType)
	}
	p, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		return nil, fmt.Errorf("payload is not base64: %w", err)
	}
	var st StatementView
	if err := json.Unmarshal(p, &st); err != nil {
		return nil, fmt.Errorf("payload is not an in-toto statement: %w", err)
	}
	return &st, nil
}

// ProvenanceView is what readers of mlenv's SLSA provenance v1 use from
// it (Provenance writes more).
type ProvenanceView struct {
	BuildDefinition struct {
		ExternalParameters struct {
			Lock struct {
				Digest string `json:"digest"`
			} `json:"lock"`
		} `json:"externalParameters"`
	} `json:"buildDefinition"`
	RunDetails struct {
		Builder struct {
			ID string `json:"id"`
		} `json:"builder"`
		Metadata struct {
			FinishedOn *time.Time `json:"finishedOn"`
		} `json:"metadata"`
	} `json:"runDetails"`
}

// LockDigest is the digest of the mlenv.lock the image was built from.
func (p *ProvenanceView) LockDigest() string {
	return p.BuildDefinition.ExternalParameters.Lock.Digest
}

// ReadProvenance reads a SLSA provenance v1 predicate.
func ReadProvenance(pred json.RawMessage) (*ProvenanceView, error) {
	var p ProvenanceView
	if err := json.Unmarshal(pred, &p); err != nil {
		return nil, fmt.Errorf("the provenance predicate is not SLSA v1: %w", err)
	}
	return &p, nil
}

// ReadFingerprintPredicate reads a predicate of type
// fingerprint.PredicateType in either of its two shapes: mlenv attest's
// {"role": ..., "fingerprint": {...}}, or the bare fingerprint that
// `cosign attest --type https://mlenv.dev/fingerprint/v1 --predicate
// fp.json` writes (cosign puts a custom type's JSON in the statement as it
// is; the role is then unknown: ""). It checks the version and that the
// fingerprint's id matches its content: the signature covers the bytes,
// this covers the id.
func ReadFingerprintPredicate(pred json.RawMessage) (*FingerprintPredicate, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(pred, &probe); err != nil {
		return nil, fmt.Errorf("the fingerprint predicate is not a JSON object: %w", err)
	}
	var p FingerprintPredicate
	if probe["fingerprint"] != nil {
		if err := json.Unmarshal(pred, &p); err != nil {
			return nil, fmt.Errorf("the fingerprint predicate does not parse: %w", err)
		}
	} else {
		// cosign's shape: the predicate is the fingerprint.
		p.Fingerprint = &fingerprint.Fingerprint{}
		if err := json.Unmarshal(pred, p.Fingerprint); err != nil {
			return nil, fmt.Errorf("the fingerprint predicate does not parse: %w", err)
		}
	}
	if p.Fingerprint == nil || p.Fingerprint.Version != fingerprint.SchemaVersion {
		return nil, fmt.Errorf("the fingerprint predicate holds no version-%d fingerprint (neither {role, fingerprint} nor a bare `mlenv fingerprint --output json`)", fingerprint.SchemaVersion)
	}
	if got := p.Fingerprint.ComputeID(); got != p.Fingerprint.ID {
		return nil, fmt.Errorf("the fingerprint's id %s does not match its content (%s)", p.Fingerprint.ID, got)
	}
	return &p, nil
}
