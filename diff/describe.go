package diff

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/mlenv/mlenv/attest"
	"github.com/mlenv/mlenv/fingerprint"
	"github.com/mlenv/mlenv/lockfile"
)

// Input kinds.
const (
	KindLock        = "lock"
	KindImage       = "image"
	KindFingerprint = "fingerprint"
	KindBundle      = "bundle"
	// KindAttestations: the statements attached to a registry image
	// (mlenv diff --attestations).
	KindAttestations = "attestations"
)

// Package ecosystems.
const (
	EcoPython = "python"
	EcoDeb    = "deb"
	EcoOther  = "other"
)

// Hash kinds: a package's hash is only compared with one of the same kind.
const (
	// HashArtifact is the sha256 of the wheel or .deb file (locks, SBOMs,
	// provenance).
	HashArtifact = "artifact"
	// HashInstalled is the sha256 of what the package installed, as its
	// package manager lists it (a wheel's RECORD, a deb's md5sums), read
	// from an image.
	HashInstalled = "installed"
)

// Package is one package of an environment.
type Package struct {
	Ecosystem string
	Name      string
	Version   string
	Hash      string
	HashKind  string
}

// Config is the part of an image config that diff compares.
type Config struct {
	Env        map[string]string
	Entrypoint []string
	Cmd        []string
	Workdir    string
	User       string
	Labels     map[string]string
}

// Layer is one image layer.
type Layer struct {
	Digest    string
	Size      int64
	CreatedBy string
}

// Description is one side of a diff: what an input says about an
// environment. A field left nil/empty is unknown for this kind of input
// and is not compared.
type Description struct {
	Source string
	Kind   string
	Digest string // image digest, when known
	// Base is the base image reference and digest ("" unknown).
	BaseRef, BaseDigest string
	// Packages is nil when the input says nothing about packages.
	Packages []Package
	Config   *Config
	// LockFiles are a lock's file sets: destination -> tree sha256.
	LockFiles map[string]string
	// LockDigest is the sha256 of the lock the environment comes from: a
	// lock's own bytes, an image's dev.mlenv.lock.digest label, or a
	// provenance statement's externalParameters.lock.digest.
	LockDigest string
	Host       *fingerprint.Fingerprint
	// Training is a lineage statement's predicate (diff/runs.go).
	Training *attest.TrainingPredicate

	image v1.Image
}

// Image is the image behind an image description (nil otherwise).
func (d *Description) Image() v1.Image { return d.image }

// maxInputFile bounds a lock, fingerprint or bundle file read into memory.
const maxInputFile = 64 << 20

// Load reads one input and detects its kind: a lockfile, a fingerprint
// JSON, an attestation bundle, or an image (REF, oci:DIR, tar:FILE, an
// OCI layout folder or a `docker save` tar named by path). Images are
// opened, not read: layers are streamed later, and only if needed.
func Load(ctx context.Context, arg, platform string) (*Description, error) {
	if strings.HasPrefix(arg, "oci:") || strings.HasPrefix(arg, "tar:") {
		return loadImage(ctx, arg, arg, platform)
	}
	if d, ok, err := loadModelLineage(arg); ok {
		return d, err
	}
	if isRegistryArg(arg) {
		return loadImage(ctx, arg, arg, platform)
	}
	st, err := os.Stat(arg)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", arg, err)
	}
	if st.IsDir() {
		if _, err := os.Stat(filepath.Join(arg, "oci-layout")); err == nil {
			return loadImage(ctx, arg, "oci:"+arg, platform)
		}
		return nil, fmt.Errorf("%s is a folder but not an OCI image layout (no oci-layout file); name an mlenv.lock, a fingerprint JSON, a bundle or an image", arg)
	}
	f, err := os.Open(arg)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", arg, err)
	}
	defer f.Close()
	head := make([]byte, 512)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, fmt.Errorf("reading %s: %w", arg, err)
	}
	head = head[:n]
	if n >= 262 && bytes.Equal(head[257:262], []byte("ustar")) {
		return loadImage(ctx, arg, "tar:"+arg, platform)
	}
	if st.Size() > maxInputFile {
		return nil, fmt.Errorf("%s: %d bytes is too large for a lock, fingerprint or bundle (limit %d) and is not a tar image", arg, st.Size(), maxInputFile)
	}
	rest, err := io.ReadAll(io.LimitReader(f, maxInputFile))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", arg, err)
	}
	return Parse(arg, append(head, rest...))
}

// isRegistryArg: no such file, not written like a path, and a valid
// registry reference.
func isRegistryArg(arg string) bool {
	if strings.HasPrefix(arg, "oci:") || strings.HasPrefix(arg, "tar:") || looksLikePath(arg) {
		return false
	}
	if _, err := os.Stat(arg); !errors.Is(err, os.ErrNotExist) {
		return false
	}
	_, err := name.ParseReference(arg)
	return err == nil
}

// looksLikePath: an argument that names a file, never a registry
// reference, so that a typo in a path says "no such file".
func looksLikePath(arg string) bool {
	return strings.HasPrefix(arg, "/") || strings.HasPrefix(arg, ".") || strings.HasSuffix(arg, ".json") ||
		strings.HasSuffix(arg, ".lock") || strings.HasSuffix(arg, ".tar")
}

func loadImage(ctx context.Context, source, ref, platform string) (*Description, error) {
	img, err := openImage(ctx, ref, platform)
	if err != nil {
		return nil, fmt.Errorf("opening image %s: %w", source, err)
	}
	d := &Description{Source: source, Kind: KindImage, image: img}
	dg, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", source, err)
	}
	d.Digest = dg.String()
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("image %s: reading the manifest: %w", source, err)
	}
	d.BaseRef = m.Annotations["org.opencontainers.image.base.name"]
	d.BaseDigest = m.Annotations["org.opencontainers.image.base.digest"]
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image %s: reading the config: %w", source, err)
	}
	c := cf.Config
	d.Config = &Config{Env: envMap(c.Env), Entrypoint: c.Entrypoint, Cmd: c.Cmd, Workdir: c.WorkingDir, User: c.User, Labels: c.Labels}
	d.LockDigest = c.Labels[labelLockDigest]
	return d, nil
}

// Layers lists an image's layers with the history line that made each.
func (d *Description) Layers() ([]Layer, error) {
	if d.image == nil {
		return nil, nil
	}
	m, err := d.image.Manifest()
	if err != nil {
		return nil, fmt.Errorf("image %s: reading the manifest: %w", d.Source, err)
	}
	cf, err := d.image.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image %s: reading the config: %w", d.Source, err)
	}
	var hist []string
	for _, h := range cf.History {
		if !h.EmptyLayer {
			hist = append(hist, firstNonEmpty(h.CreatedBy, h.Comment))
		}
	}
	out := make([]Layer, len(m.Layers))
	for i, l := range m.Layers {
		out[i] = Layer{Digest: l.Digest.String(), Size: l.Size}
		if len(hist) == len(m.Layers) {
			out[i].CreatedBy = hist[i]
		}
	}
	return out, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func envMap(env []string) map[string]string {
	m := map[string]string{}
	for _, e := range env {
		k, v, _ := strings.Cut(e, "=")
		m[k] = v
	}
	return m
}

// Parse reads a lock, fingerprint or bundle from its bytes; source names
// it in errors.
func Parse(source string, data []byte) (*Description, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("%s: unknown format: not JSON (%v); expected an mlenv.lock, a fingerprint (`mlenv fingerprint --output json`), an attestation bundle or an image", source, err)
	}
	switch {
	case probe["lockVersion"] != nil:
		l, err := lockfile.ParseLock(source, data)
		if err != nil {
			return nil, err
		}
		return fromLock(source, l, data), nil
	case probe["mediaType"] != nil && probe["attestations"] != nil:
		var b attest.Bundle
		if err := json.Unmarshal(data, &b); err != nil || b.MediaType != attest.BundleMediaType {
			return nil, fmt.Errorf("%s: not an mlenv bundle (media type must be %s)", source, attest.BundleMediaType)
		}
		return fromStatements(source, KindBundle, b.Digest, attest.BundleEnvelopes(source, &b))
	case probe["gpu"] != nil && probe["cpu"] != nil:
		var fp fingerprint.Fingerprint
		if err := json.Unmarshal(data, &fp); err != nil {
			return nil, fmt.Errorf("%s: reading the fingerprint: %w", source, err)
		}
		if fp.Version != fingerprint.SchemaVersion {
			return nil, fmt.Errorf("%s: fingerprint version %d, this mlenv reads version %d", source, fp.Version, fingerprint.SchemaVersion)
		}
		return &Description{Source: source, Kind: KindFingerprint, Host: &fp}, nil
	}
	return nil, fmt.Errorf("%s: unknown format: JSON, but neither an mlenv.lock (lockVersion), a fingerprint (gpu, cpu) nor a bundle (mediaType, attestations)", source)
}

// labelLockDigest is the label mlenv build stamps with the sha256 of the
// lock's bytes (builder.LabelLockDigest): a lock carries it implicitly, so
// that a lock and the image built from it agree, and an image built from
// another lock says so.
const labelLockDigest = "dev.mlenv.lock.digest"

func fromLock(source string, l *lockfile.Lock, data []byte) *Description {
	d := &Description{Source: source, Kind: KindLock, Packages: []Package{}, LockFiles: map[string]string{}}
	if !l.Base.IsScratch() {
		d.BaseRef, d.BaseDigest = l.Base.Ref, l.Base.Digest
	}
	for _, w := range l.Wheels {
		d.Packages = append(d.Packages, Package{Ecosystem: EcoPython, Name: lockfile.NormalizeName(w.Name), Version: w.Version, Hash: w.SHA256, HashKind: HashArtifact})
	}
	for _, p := range l.Debs {
		d.Packages = append(d.Packages, Package{Ecosystem: EcoDeb, Name: p.Package, Version: p.Version, Hash: p.SHA256, HashKind: HashArtifact})
	}
	for _, f := range l.Files {
		d.LockFiles[f.Dst] = f.SHA256
	}
	c := l.Config
	labels := map[string]string{}
	for k, v := range c.Labels {
		labels[k] = v
	}
	sum := sha256.Sum256(data)
	labels[labelLockDigest] = "sha256:" + hex.EncodeToString(sum[:])
	d.LockDigest = labels[labelLockDigest]
	d.Config = &Config{Env: envMap(c.Env), Entrypoint: c.Entrypoint, Cmd: c.Cmd, Workdir: c.Workdir, User: c.User, Labels: labels}
	return d
}

// sbomPackages reads packages from an SPDX 2.3 document by their package
// URLs (pkg:pypi, pkg:deb, anything else is "other"); the image itself and
// mlenv's file sets (no purl) are left out.
func sbomPackages(doc json.RawMessage) ([]Package, error) {
	var d struct {
		Packages []struct {
			Name         string `json:"name"`
			VersionInfo  string `json:"versionInfo"`
			Checksums    []struct{ Algorithm, ChecksumValue string }
			ExternalRefs []struct {
				ReferenceType    string `json:"referenceType"`
				ReferenceLocator string `json:"referenceLocator"`
			} `json:"externalRefs"`
			PrimaryPackagePurpose string `json:"primaryPackagePurpose"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("not an SPDX document: %w", err)
	}
	out := []Package{}
	for _, p := range d.Packages {
		if p.PrimaryPackagePurpose == "CONTAINER" {
			continue
		}
		purl := ""
		for _, r := range p.ExternalRefs {
			if r.ReferenceType == "purl" {
				purl = r.ReferenceLocator
			}
		}
		if purl == "" {
			continue
		}
		eco := EcoOther
		switch {
		case strings.HasPrefix(purl, "pkg:pypi/"):
			eco = EcoPython
		case strings.HasPrefix(purl, "pkg:deb/"):
			eco = EcoDeb
		}
		pkg := Package{Ecosystem: eco, Name: p.Name, Version: p.VersionInfo}
		if eco == EcoPython {
			pkg.Name = lockfile.NormalizeName(p.Name)
		}
		for _, c := range p.Checksums {
			if c.Algorithm == "SHA256" {
				pkg.Hash, pkg.HashKind = c.ChecksumValue, HashArtifact
			}
		}
		out = append(out, pkg)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ecosystem+out[i].Name < out[j].Ecosystem+out[j].Name })
	return out, nil
}
