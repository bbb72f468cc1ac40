package attest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/in-toto/in-toto-golang/in_toto"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci"
	cempty "github.com/sigstore/cosign/v2/pkg/oci/empty"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	ctypes "github.com/sigstore/cosign/v2/pkg/types"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/dsse"
	"github.com/sigstore/sigstore/pkg/signature/kms"
	sigpayload "github.com/sigstore/sigstore/pkg/signature/payload"

	"github.com/mlenv/mlenv/internal/atomicfile"
)

// PasswordFromEnv is cosign's convention: the key password comes from
// COSIGN_PASSWORD (which may be set to the empty string).
func PasswordFromEnv(bool) ([]byte, error) {
	p, ok := os.LookupEnv("COSIGN_PASSWORD")
	if !ok {
		return nil, errors.New("COSIGN_PASSWORD is not set: export the key's password (it may be empty)")
	}
	return []byte(p), nil
}

// GenerateKeyPair writes cosign.key (encrypted with COSIGN_PASSWORD, mode
// 0600) and cosign.pub into dir, in cosign's formats. Existing files are
// kept unless force.
func GenerateKeyPair(dir string, force bool) (privPath, pubPath string, err error) {
	privPath, pubPath = filepath.Join(dir, "cosign.key"), filepath.Join(dir, "cosign.pub")
	if !force {
		for _, p := range []string{privPath, pubPath} {
			if _, err := os.Stat(p); err == nil {
				return "", "", fmt.Errorf("%s exists: refusing to overwrite a key (use --force)", p)
			}
		}
	}
	keys, err := cosign.GenerateKeyPair(PasswordFromEnv)
	if err != nil {
		return "", "", fmt.Errorf("generating the key pair: %w", err)
	}
	if err := atomicfile.Write(privPath, keys.PrivateBytes, 0o600); err != nil {
		return "", "", err
	}
	if err := atomicfile.Write(pubPath, keys.PublicBytes, 0o644); err != nil {
		os.Remove(privPath)
		return "", "", err
	}
	return privPath, pubPath, nil
}

// LoadSigner opens a signing key: a cosign.key file (password from
// COSIGN_PASSWORD), or a KMS URI (awskms://, gcpkms://, azurekms://,
// hashivault://) through sigstore's KMS registry. This build links no KMS
// provider (each pulls a cloud SDK), so a KMS URI gets a clear refusal;
// a blank import of the provider package enables it.
func LoadSigner(ctx context.Context, keyRef string) (signature.SignerVerifier, error) {
	if strings.Contains(keyRef, "://") {
		sv, err := kms.Get(ctx, keyRef, crypto.SHA256)
		if err != nil {
			var nf *kms.ProviderNotFoundError
			if errors.As(err, &nf) {
				return nil, fmt.Errorf("signing key %s: this mlenv build includes no KMS provider for that scheme; use a cosign.key file", keyRef)
			}
			return nil, fmt.Errorf("signing key %s: %w", keyRef, err)
		}
		return sv, nil
	}
	raw, err := os.ReadFile(keyRef)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w (create one with `mlenv generate-key-pair`)", keyRef, err)
	}
	pass, err := PasswordFromEnv(false)
	if err != nil {
		return nil, err
	}
	sv, err := cosign.LoadPrivateKey(raw, pass, nil)
	if err != nil {
		if strings.Contains(err.Error(), "decrypt") {
			return nil, fmt.Errorf("signing key %s: could not decrypt it: wrong password in COSIGN_PASSWORD?", keyRef)
		}
		return nil, fmt.Errorf("signing key %s: %w", keyRef, err)
	}
	return sv, nil
}

// LoadVerifier opens a public key file (cosign.pub, PEM).
func LoadVerifier(keyRef string) (signature.Verifier, error) {
	raw, err := os.ReadFile(keyRef)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", keyRef, err)
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(raw)
	if err != nil {
		return nil, fmt.Errorf("public key %s: not a PEM public key: %w", keyRef, err)
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", keyRef, err)
	}
	return v, nil
}

// Signed is one signed statement.
type Signed struct {
	PredicateType string `json:"predicateType"`
	// Envelope is the DSSE envelope (JSON).
	Envelope json.RawMessage `json:"dsseEnvelope"`
}

// EnvelopeDigest is "sha256:<hex>" of the envelope bytes: what ends up as
// a layer in the registry.
func (s Signed) EnvelopeDigest() string {
	sum := sha256.Sum256(s.Envelope)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Sign wraps a statement in a DSSE envelope signed with sv.
func Sign(sv signature.SignerVerifier, st *in_toto.Statement) (Signed, error) {
	payload, err := Encode(st)
	if err != nil {
		return Signed{}, err
	}
	env, err := dsse.WrapSigner(sv, PayloadType).SignMessage(bytes.NewReader(payload))
	if err != nil {
		return Signed{}, fmt.Errorf("signing %s statement: %w", st.PredicateType, err)
	}
	return Signed{PredicateType: st.PredicateType, Envelope: env}, nil
}

// Attach stores the attestations beside the image, as cosign does: one
// layer per envelope in the manifest tagged sha256-<hex>.att, replacing an
// earlier attestation of the same predicate type. All are written in one
// push: either all land or none.
func Attach(ctx context.Context, digest name.Digest, atts []Signed, opts ...remote.Option) error {
	ropts := ociremote.WithRemoteOptions(append([]remote.Option{remote.WithContext(ctx)}, opts...)...)
	se, err := ociremote.SignedEntity(digest, ropts)
	if err != nil {
		return fmt.Errorf("reading %s: %w", digest, err)
	}
	for _, a := range atts {
		sig, err := static.NewAttestation(a.Envelope,
			static.WithLayerMediaType(ctypes.DssePayloadType),
			static.WithAnnotations(map[string]string{"predicateType": a.PredicateType}))
		if err != nil {
			return err
		}
		se, err = mutate.AttachAttestationToEntity(se, sig, mutate.WithReplaceOp(replaceByType{a.PredicateType}))
		if err != nil {
			return err
		}
	}
	if err := ociremote.WriteAttestations(digest.Repository, se, ropts); err != nil {
		return fmt.Errorf("writing attestations for %s: %w", digest, err)
	}
	return nil
}

// SignImage attaches a cosign-style image signature: the simple-signing
// payload naming the digest, signed, in the manifest tagged
// sha256-<hex>.sig.
func SignImage(ctx context.Context, digest name.Digest, sv signature.SignerVerifier, opts ...remote.Option) error {
	payload, err := (&sigpayload.Cosign{Image: digest}).MarshalJSON()
	if err != nil {
		return err
	}
	raw, err := sv.SignMessage(bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("signing: %w", err)
	}
	sig, err := static.NewSignature(payload, base64.StdEncoding.EncodeToString(raw))
	if err != nil {
		return err
	}
	ropts := ociremote.WithRemoteOptions(append([]remote.Option{remote.WithContext(ctx)}, opts...)...)
	se, err := ociremote.SignedEntity(digest, ropts)
	if err != nil {
		return fmt.Errorf("reading %s: %w", digest, err)
	}
	if se, err = mutate.AttachSignatureToEntity(se, sig); err != nil {
		return err
	}
	if err := ociremote.WriteSignatures(digest.Repository, se, ropts); err != nil {
		return fmt.Errorf("writing the signature for %s: %w", digest, err)
	}
	return nil
}

// BundleMediaType identifies mlenv's bundle file.
const BundleMediaType = "application/vnd.dev.mlenv.bundle.v1+json"

// Bundle is the air-gapped form: the signed envelopes for one digest.
type Bundle struct {
	MediaType    string   `json:"mediaType"`
	Image        string   `json:"image"`
	Digest       string   `json:"digest"`
	Attestations []Signed `json:"attestations"`
}

// WriteBundle writes the envelopes to a file atomically.
func WriteBundle(path, image, digest string, atts []Signed) error {
	b, err := json.MarshalIndent(Bundle{MediaType: BundleMediaType, Image: image, Digest: digest, Attestations: atts}, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'), 0o644)
}

// ReadBundle reads a bundle file.
func ReadBundle(path string) (*Bundle, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var bu Bundle
	if err := json.Unmarshal(b, &bu); err != nil {
		return nil, fmt.Errorf("%s: not an mlenv bundle: %w", path, err)
	}
	if bu.MediaType != BundleMediaType {
		return nil, fmt.Errorf("%s: media type %q, want %s", path, bu.MediaType, BundleMediaType)
	}
	return &bu, nil
}

// replaceByType drops earlier attestations of one predicate type and
// appends the new one: cosign's own ReplaceOp does the same but prints a
// line for every attestation it keeps.
type replaceByType struct{ predicateType string }

func (r replaceByType) Replace(existing oci.Signatures, att oci.Signature) (oci.Signatures, error) {
	all, err := existing.Get()
	if err != nil {
		return nil, err
	}
	var kept []oci.Signature
	for _, s := range all {
		if predicateTypeOf(s) != r.predicateType {
			kept = append(kept, s)
		}
	}
	return mutate.AppendSignatures(cempty.Signatures(), false, append(kept, att)...)
}

// predicateTypeOf reads an attestation's predicate type from its layer
// annotation, or else from the statement inside its DSSE envelope.
func predicateTypeOf(s oci.Signature) string {
	if ann, err := s.Annotations(); err == nil && ann["predicateType"] != "" {
		return ann["predicateType"]
	}
	raw, err := s.Payload()
	if err != nil {
		return ""
	}
	var env struct {
		Payload string `json:"payload"`
	}
	if json.Unmarshal(raw, &env) != nil {
		return ""
	}
	st, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		return ""
	}
	var head struct {
		PredicateType string `json:"predicateType"`
	}
	json.Unmarshal(st, &head)
	return head.PredicateType
}
