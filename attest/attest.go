package attest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/in-toto/in-toto-golang/in_toto"
	slsa "github.com/in-toto/in-toto-golang/in_toto/slsa_provenance/v1"

	"github.com/mlenv/mlenv/cuda"
	"github.com/mlenv/mlenv/fingerprint"
	"github.com/mlenv/mlenv/image"
	"github.com/mlenv/mlenv/internal/layerwalk"
	"github.com/mlenv/mlenv/lockfile"
)

// Options for one `mlenv attest`.
type Options struct {
	// Image is a registry reference, oci:DIR or tar:FILE.
	Image  string
	KeyRef string
	// LockPath, when set, adds provenance and the locked packages.
	LockPath string
	// Fingerprint is "" (none), "host" (capture now) or a JSON file.
	Fingerprint string
	Role        string
	// BundlePath writes the envelopes to a file; then the registry is
	// written only when Upload is also set.
	BundlePath string
	Upload     bool
	// Force accepts a lock whose digest the image does not carry.
	Force        bool
	MlenvVersion string
	// CompressorID names the compressor the lock's compression settings
	// select (builder.CompressorID), for the provenance; required with
	// LockPath. attest does not import builder: the caller supplies it.
	CompressorID func(lockfile.Compression) string
	// Registry holds the keychain and timeouts for reading the image and
	// attaching the statements.
	Registry image.Options
	Now      func() time.Time
}

// Written says what was produced, for --output json.
type Written struct {
	PredicateType  string `json:"predicateType"`
	EnvelopeDigest string `json:"envelopeDigest"`
	Where          string `json:"where"`
}

// Result of an attest run.
type Result struct {
	Image   string    `json:"image"`
	Digest  string    `json:"digest"`
	Written []Written `json:"written"`
}

// ErrLockMismatch says the lock does not belong to the image.
var ErrLockMismatch = errors.New("the lock does not belong to this image")

// Run signs and stores the statements. Every check and every signature
// happens before anything is written, and the registry gets all
// attestations in one push: a failure leaves nothing attached.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	started := o.Now()
	if o.Role == "" {
		o.Role = "train"
	}
	if !contains(Roles, o.Role) {
		return nil, fmt.Errorf("--role %q: use one of %s", o.Role, strings.Join(Roles, ", "))
	}
	sv, err := LoadSigner(ctx, o.KeyRef)
	if err != nil {
		return nil, err
	}
	if o.LockPath != "" && o.CompressorID == nil {
		return nil, errors.New("attest: Options.CompressorID is required with a lock")
	}
	img, digestRef, imageName, err := resolve(ctx, o)
	if err != nil {
		return nil, err
	}
	if digestRef == nil && (o.BundlePath == "" || o.Upload) {
		return nil, fmt.Errorf("%s is not in a registry, so nothing can be attached to it: write the attestations to a file with --bundle FILE (without --upload)", o.Image)
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	var lock *lockfile.Lock
	var lockDigest string
	if o.LockPath != "" {
		if lock, err = lockfile.LoadLock(o.LockPath); err != nil {
			return nil, err
		}
		if lockDigest, err = lock.Digest(); err != nil {
			return nil, err
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, err
		}
		if got := cf.Config.Labels[image.LabelLockDigest]; got != lockDigest && !o.Force {
			if got == "" {
				got = "none"
			}
			return nil, fmt.Errorf("%w: %s has digest %s, the image records %s (label %s); pass --force to attest anyway",
				ErrLockMismatch, o.LockPath, lockDigest, got, image.LabelLockDigest)
		}
	}
	// One pass over the layers for both the package inventory and the
	// GPU code: metadata goes to the first, ELF files to the second.
	invV, gpuV := NewInventoryVisitor(), cuda.NewImageScanner()
	if err := layerwalk.Walk(img, invV, gpuV); err != nil {
		return nil, fmt.Errorf("reading the image's packages and GPU code: %w", err)
	}
	inv, gpu := invV.Inventory(), gpuV.Report()
	tool := "mlenv-" + o.MlenvVersion
	var statements []*in_toto.Statement
	if lock != nil {
		pred := Provenance(ProvenanceInput{
			Lock: lock, LockPath: o.LockPath, LockDigest: lockDigest, MlenvVersion: o.MlenvVersion,
			Compressor: o.CompressorID(lock.Compression), BuilderID: "https://mlenv.dev/builder/cli",
			InvocationID: randomID(), Started: started, Finished: o.Now(),
		})
		st, err := Statement(imageName, digest.String(), slsa.PredicateSLSAProvenance, pred)
		if err != nil {
			return nil, err
		}
		statements = append(statements, st)
	}
	doc, err := BuildSBOM(SBOMInput{ImageName: imageName, Digest: digest.String(), Lock: lock, Inventory: inv, CUDA: gpu, Tool: tool, Now: o.Now()})
	if err != nil {
		return nil, err
	}
	st, err := Statement(imageName, digest.String(), SPDXPredicateType, doc)
	if err != nil {
		return nil, err
	}
	statements = append(statements, st)
	if o.Fingerprint != "" {
		fp, err := loadFingerprint(o.Fingerprint)
		if err != nil {
			return nil, err
		}
		st, err := Statement(imageName, digest.String(), fingerprint.PredicateType, FingerprintPredicate{Role: o.Role, Fingerprint: fp})
		if err != nil {
			return nil, err
		}
		statements = append(statements, st)
	}
	var signed []Signed
	for _, st := range statements {
		s, err := Sign(sv, st)
		if err != nil {
			return nil, err
		}
		signed = append(signed, s)
	}
	res := &Result{Image: imageName, Digest: digest.String()}
	if upload := digestRef != nil && (o.BundlePath == "" || o.Upload); upload {
		if err := Attach(ctx, *digestRef, signed, o.Registry.RemoteOptions(ctx)...); err != nil {
			return nil, err
		}
		for _, s := range signed {
			res.Written = append(res.Written, Written{s.PredicateType, s.EnvelopeDigest(), digestRef.Context().Tag(strings.Replace(digest.String(), ":", "-", 1) + ".att").String()})
		}
	}
	if o.BundlePath != "" {
		if err := WriteBundle(o.BundlePath, imageName, digest.String(), signed); err != nil {
			return nil, fmt.Errorf("writing bundle %s: %w", o.BundlePath, err)
		}
		for _, s := range signed {
			res.Written = append(res.Written, Written{s.PredicateType, s.EnvelopeDigest(), o.BundlePath})
		}
	}
	return res, nil
}

// resolve turns IMAGE into an image, its name (never a local path: see
// image.Resolved.Name) and, for registry images, the digest reference
// every statement is about: a tag is resolved once, here, and never
// looked at again.
func resolve(ctx context.Context, o Options) (v1.Image, *name.Digest, string, error) {
	r, img, err := image.ResolveSingle(ctx, o.Image, o.Registry)
	if err != nil {
		return nil, nil, "", err
	}
	if dref, ok := r.DigestRef(); ok {
		return img, &dref, r.Name(), nil
	}
	return img, nil, r.Name(), nil
}

func loadFingerprint(src string) (*fingerprint.Fingerprint, error) {
	if src == "host" {
		return fingerprint.Capture(fingerprint.Options{}), nil
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return nil, fmt.Errorf("--fingerprint: %w", err)
	}
	var fp fingerprint.Fingerprint
	if err := json.Unmarshal(b, &fp); err != nil {
		return nil, fmt.Errorf("--fingerprint %s: not a fingerprint JSON: %w", src, err)
	}
	if fp.Version != fingerprint.SchemaVersion || fp.ID == "" {
		return nil, fmt.Errorf("--fingerprint %s: version %d without an id; capture it with `mlenv fingerprint --output json`", src, fp.Version)
	}
	if fp.ComputeID() != fp.ID {
		return nil, fmt.Errorf("--fingerprint %s: its id does not match its content (edited after capture?)", src)
	}
	return &fp, nil
}

func randomID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
