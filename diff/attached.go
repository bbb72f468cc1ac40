package diff

// Statements as a diff input: an attestation bundle, or the statements
// attached to a registry image (`mlenv diff --attestations`). Both are
// read through attest's one statement reader; signatures are verify's
// job, not diff's.

import (
	"context"
	"fmt"

	"github.com/mlenv/mlenv/attest"
	"github.com/mlenv/mlenv/fingerprint"
	"github.com/mlenv/mlenv/image"
)

// LoadStatements is Load, except that a registry image stands for the
// statements attached to it (LoadAttached).
func LoadStatements(ctx context.Context, arg, platform string) (*Description, error) {
	if isRegistryArg(arg) {
		return LoadAttached(ctx, arg, platform)
	}
	return Load(ctx, arg, platform)
}

// LoadAttached reads the statements attached to a registry image (the
// cosign layout, whoever wrote them): the SBOM's packages, the
// provenance's lock digest and a host fingerprint. IMAGE is resolved once;
// from an index, platform's image is the one whose statements are read.
func LoadAttached(ctx context.Context, arg, platform string) (*Description, error) {
	ref, err := image.Parse(arg)
	if err != nil {
		return nil, err
	}
	opts := image.Options{}
	res, err := image.Resolve(ctx, ref, opts)
	if err != nil {
		return nil, fmt.Errorf("opening image %s: %w", arg, err)
	}
	top, ok := res.DigestRef()
	if !ok {
		return nil, fmt.Errorf("%s is not in a registry, so no statements are attached to it: diff its bundle file (mlenv attest --bundle) instead", arg)
	}
	img, err := res.Image(platform)
	if err != nil {
		return nil, fmt.Errorf("opening image %s: %w", arg, err)
	}
	dg, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", arg, err)
	}
	target := top.Context().Digest(dg.String())
	envs, err := attest.ReadAttached(target, opts.RemoteOptions(ctx)...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", arg, err)
	}
	if len(envs) == 0 {
		return nil, fmt.Errorf("%s (%s): no attestations attached (attach them with mlenv attest, or diff the image itself without --attestations)", arg, dg)
	}
	return fromStatements(arg, KindAttestations, dg.String(), envs)
}

// fromStatements reads SBOM packages, the provenance's lock digest and a
// host fingerprint from envelopes. When several statements of one type
// are there, the last one counts (as in verify).
func fromStatements(source, kind, digest string, envs []attest.Envelope) (*Description, error) {
	d := &Description{Source: source, Kind: kind, Digest: digest}
	for i, e := range envs {
		st, err := attest.DecodeEnvelope(e.Raw)
		if err != nil {
			return nil, fmt.Errorf("%s: attestation %d: %w", source, i+1, err)
		}
		switch st.PredicateType {
		case attest.SPDXPredicateType:
			pkgs, err := sbomPackages(st.Predicate)
			if err != nil {
				return nil, fmt.Errorf("%s: attestation %d (SBOM): %w", source, i+1, err)
			}
			d.Packages = pkgs
		case attest.TrainingPredicateType:
			if err := loadTraining(d, st.Predicate); err != nil {
				return nil, fmt.Errorf("%s: attestation %d: %w", source, i+1, err)
			}
		case fingerprint.PredicateType:
			p, err := attest.ReadFingerprintPredicate(st.Predicate)
			if err != nil {
				return nil, fmt.Errorf("%s: attestation %d: %w", source, i+1, err)
			}
			d.Host = p.Fingerprint
		case provenancePredicateType:
			p, err := attest.ReadProvenance(st.Predicate)
			if err != nil {
				return nil, fmt.Errorf("%s: attestation %d: %w", source, i+1, err)
			}
			d.LockDigest = p.LockDigest()
		}
	}
	return d, nil
}

// provenancePredicateType is SLSA provenance v1's.
const provenancePredicateType = "https://slsa.dev/provenance/v1"
