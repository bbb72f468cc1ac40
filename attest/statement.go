// Package attest makes mlenv's signed statements about an image: SLSA
// provenance, an SPDX SBOM and the host fingerprint, each an in-toto
// Statement v1 in a DSSE envelope, stored beside the image the way cosign
// stores attestations (or written to a bundle file).
package attest

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/in-toto/in-toto-golang/in_toto"
	"github.com/in-toto/in-toto-golang/in_toto/slsa_provenance/common"
	slsa "github.com/in-toto/in-toto-golang/in_toto/slsa_provenance/v1"

	"github.com/mlenv/mlenv/fingerprint"
	"github.com/mlenv/mlenv/internal/cas"
	"github.com/mlenv/mlenv/lockfile"
)

// The in-toto-golang Statement and SLSA v1 structs are marked deprecated in
// favour of github.com/in-toto/attestation's protobuf types. mlenv keeps
// the plain structs on purpose: they encode with encoding/json, the
// protobuf ones need protojson, and the JSON on the wire is the same.

// StatementType is in-toto Statement v1.
const StatementType = "https://in-toto.io/Statement/v1"

// PayloadType is the DSSE payload type cosign requires for attestations.
const PayloadType = "application/vnd.in-toto+json"

// BuildType is the versioned URI of mlenv's build process, documented in
// the README: how externalParameters and internalParameters read.
const BuildType = "https://mlenv.dev/build/v1"

// Statement builds an in-toto Statement v1 about one image digest.
func Statement(imageName, digest, predicateType string, predicate any) (*in_toto.Statement, error) {
	hex, err := cas.ParseSHA256(digest)
	if err != nil {
		return nil, fmt.Errorf("statement subject: %w", err)
	}
	return &in_toto.Statement{
		StatementHeader: in_toto.StatementHeader{
			Type:          StatementType,
			PredicateType: predicateType,
			Subject:       []in_toto.Subject{{Name: imageName, Digest: common.DigestSet{"sha256": hex}}},
		},
		Predicate: predicate,
	}, nil
}

// ProvenanceInput is what the provenance records.
type ProvenanceInput struct {
	Lock         *lockfile.Lock
	LockPath     string
	LockDigest   string
	MlenvVersion string
	Compressor   string
	BuilderID    string
	InvocationID string
	Started      time.Time
	Finished     time.Time
}

// Provenance is the SLSA Provenance v1 predicate for an mlenv build.
func Provenance(in ProvenanceInput) slsa.ProvenancePredicate {
	l := in.Lock
	var deps []slsa.ResourceDescriptor
	if !l.Base.IsScratch() {
		for _, p := range l.Platforms {
			deps = append(deps, slsa.ResourceDescriptor{
				Name: "base " + p, URI: l.Base.Ref,
				Digest: common.DigestSet{"sha256": trimSHA(l.Base.Manifests[p])},
			})
		}
	}
	for _, w := range l.Wheels {
		deps = append(deps, slsa.ResourceDescriptor{Name: w.Filename, URI: w.URI, Digest: common.DigestSet{"sha256": w.SHA256}})
	}
	for _, d := range l.Debs {
		deps = append(deps, slsa.ResourceDescriptor{Name: d.Package + "_" + d.Version + "_" + d.Architecture, URI: d.URI, Digest: common.DigestSet{"sha256": d.SHA256}})
	}
	for _, f := range l.Files {
		// The tree hash is mlenv's own algorithm, named as such.
		deps = append(deps, slsa.ResourceDescriptor{Name: f.Dst, URI: "file:" + f.Src, Digest: common.DigestSet{"mlenvTreeSha256": f.SHA256}})
	}
	started, finished := in.Started.UTC(), in.Finished.UTC()
	return slsa.ProvenancePredicate{
		BuildDefinition: slsa.ProvenanceBuildDefinition{
			BuildType: BuildType,
			ExternalParameters: map[string]any{
				"lock":      map[string]string{"path": in.LockPath, "digest": in.LockDigest},
				"platforms": l.Platforms,
			},
			InternalParameters: map[string]any{
				"mlenvVersion": in.MlenvVersion,
				"compression":  map[string]any{"algorithm": l.Compression.Algorithm, "level": l.Compression.Level, "layout": l.Compression.Layout, "compressor": in.Compressor},
				"epoch":        l.Epoch,
			},
			ResolvedDependencies: deps,
		},
		RunDetails: slsa.ProvenanceRunDetails{
			Builder: slsa.Builder{ID: in.BuilderID, Version: map[string]string{"mlenv": in.MlenvVersion}},
			BuildMetadata: slsa.BuildMetadata{
				InvocationID: in.InvocationID, StartedOn: &started, FinishedOn: &finished,
			},
		},
	}
}

func trimSHA(s string) string {
	h, err := cas.ParseSHA256(s)
	if err != nil {
		return s
	}
	return h
}

// FingerprintPredicate wraps a host fingerprint with the role the host
// played for this image.
type FingerprintPredicate struct {
	Role        string                   `json:"role"`
	Fingerprint *fingerprint.Fingerprint `json:"fingerprint"`
}

// Roles a host can play for an image.
var Roles = []string{"build", "train", "serve"}

// Encode marshals a statement for signing.
func Encode(st *in_toto.Statement) ([]byte, error) {
	return json.Marshal(st)
}
