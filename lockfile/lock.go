package lockfile

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/mlenv/mlenv/internal/canon"
)

// LockVersion is the version of the mlenv.lock format this code writes.
const LockVersion = 1

// isSHA256 says s is a sha256 digest in lower-case hex (64 characters
// [0-9a-f]); a loop, not a regexp, since large locks check every file.
func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Lock is mlenv.lock: every input of a build pinned by URI, sha256 and size.
// It is written as canonical JSON so that its own sha256 identifies it.
type Lock struct {
	LockVersion int         `json:"lockVersion" yaml:"lockVersion"`
	Name        string      `json:"name,omitempty" yaml:"name,omitempty"`
	Epoch       int64       `json:"epoch" yaml:"epoch"`
	Platforms   []string    `json:"platforms" yaml:"platforms"`
	Base        Base        `json:"base" yaml:"base"`
	Python      *Python     `json:"python,omitempty" yaml:"python,omitempty"`
	Wheels      []Wheel     `json:"wheels,omitempty" yaml:"wheels,omitempty"`
	Debs        []Deb       `json:"debs,omitempty" yaml:"debs,omitempty"`
	Files       []FileSet   `json:"files,omitempty" yaml:"files,omitempty"`
	Config      ImageConfig `json:"config" yaml:"config"`
	Compression Compression `json:"compression" yaml:"compression"`
}

// Base is the image the build starts from.
type Base struct {
	// Ref is "scratch", a registry reference or "oci:DIR".
	Ref string `json:"ref" yaml:"ref"`
	// Digest is the manifest or index digest Ref resolved to.
	Digest string `json:"digest,omitempty" yaml:"digest,omitempty"`
	// Manifests maps each target platform to its manifest digest.
	Manifests map[string]string `json:"manifests,omitempty" yaml:"manifests,omitempty"`
}

// IsScratch reports whether the build starts from an empty image.
func (b Base) IsScratch() bool { return b.Ref == "scratch" }

// Python records where wheels are installed.
type Python struct {
	Version      string `json:"version" yaml:"version"`
	Prefix       string `json:"prefix" yaml:"prefix"`
	SitePackages string `json:"sitePackages" yaml:"sitePackages"`
	Interpreter  string `json:"interpreter" yaml:"interpreter"`
	Libc         string `json:"libc" yaml:"libc"`
}

// Artifact is a pinned file: where it comes from and what it must hash to.
type Artifact struct {
	URI    string `json:"uri" yaml:"uri"`
	SHA256 string `json:"sha256" yaml:"sha256"`
	Size   int64  `json:"size" yaml:"size"`
}

// Wheel is a pinned wheel and the platforms that install it.
type Wheel struct {
	Name      string   `json:"name" yaml:"name"`
	Version   string   `json:"version" yaml:"version"`
	Filename  string   `json:"filename" yaml:"filename"`
	Platforms []string `json:"platforms" yaml:"platforms"`
	Artifact  `yaml:",inline"`
}

// Deb is a pinned Debian package, identity read from its control file.
type Deb struct {
	Package      string   `json:"package" yaml:"package"`
	Version      string   `json:"version" yaml:"version"`
	Architecture string   `json:"architecture" yaml:"architecture"`
	Platforms    []string `json:"platforms" yaml:"platforms"`
	Artifact     `yaml:",inline"`
}

// FileSet is a local file or folder copied to Dst; SHA256 is its tree hash.
type FileSet struct {
	Src    string `json:"src" yaml:"src"`
	Dst    string `json:"dst" yaml:"dst"`
	SHA256 string `json:"sha256" yaml:"sha256"`
	Size   int64  `json:"size" yaml:"size"`
	Files  int    `json:"files" yaml:"files"`
	// Chunks split a large file set into several layers (by folder, see
	// treehash.Bucket): each has its own tree hash so that a change
	// rebuilds one layer. Absent for small sets.
	Chunks []FileChunk `json:"chunks,omitempty" yaml:"chunks,omitempty"`
}

// FileChunk is one layer's share of a file set.
type FileChunk struct {
	SHA256 string `json:"sha256" yaml:"sha256"`
	Size   int64  `json:"size" yaml:"size"`
	Files  int    `json:"files" yaml:"files"`
}

// ImageConfig is what goes into the OCI image config.
type ImageConfig struct {
	Env          []string          `json:"env,omitempty" yaml:"env,omitempty"`
	Workdir      string            `json:"workdir,omitempty" yaml:"workdir,omitempty"`
	User         string            `json:"user,omitempty" yaml:"user,omitempty"`
	Entrypoint   []string          `json:"entrypoint,omitempty" yaml:"entrypoint,omitempty"`
	Cmd          []string          `json:"cmd,omitempty" yaml:"cmd,omitempty"`
	Labels       map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
	ExposedPorts []string          `json:"exposedPorts,omitempty" yaml:"exposedPorts,omitempty"`
}

// Compression fixes the layer compressor; it is part of what makes a build
// reproducible and is recorded in provenance.
type Compression struct {
	Algorithm string `json:"algorithm" yaml:"algorithm"`
	Level     int    `json:"level" yaml:"level"`
	// Layout chooses how gzip wheel layers are made: "" (locks written
	// before it existed) compresses every byte with pgzip;
	// LayoutSplice copies the wheels' own deflate streams into the
	// layer. Omitted when empty, so older locks keep their digests.
	Layout string `json:"layout,omitempty" yaml:"layout,omitempty"`
}

// LayoutSplice is the layer layout that splices wheel members' deflate
// streams into gzip layers (see builder/splice.go); new gzip locks get it.
const LayoutSplice = "splice-v1"

// KeepLayout carries the layer layout of the lock being replaced (prev,
// nil for none) over to l when both use the same compressor: relocking
// to bump a wheel must not change how every other wheel layer is
// compressed (and so its digest). A new lock, or a new algorithm or
// level, gets the default.
func (l *Lock) KeepLayout(prev *Lock) {
	if prev == nil || prev.Compression.Algorithm != l.Compression.Algorithm || prev.Compression.Level != l.Compression.Level {
		return
	}
	l.Compression.Layout = prev.Compression.Layout
}

// DefaultCompression is what a new lock records for an algorithm.
func DefaultCompression(alg string) Compression {
	c := Compression{Algorithm: alg, Level: DefaultLevel(alg)}
	if alg == "gzip" {
		c.Layout = LayoutSplice
	}
	return c
}

// Encode returns the canonical bytes of the lock (sorted, indented, stable).
// It sorts a copy: the receiver is left as it was.
func (l *Lock) Encode() ([]byte, error) {
	c := *l
	c.Wheels = slices.Clone(l.Wheels)
	c.Debs = slices.Clone(l.Debs)
	c.Config.Env = slices.Clone(l.Config.Env)
	c.Config.ExposedPorts = slices.Clone(l.Config.ExposedPorts)
	c.sortStable()
	return canon.Indent(&c)
}

// Digest is "sha256:<hex>" of the canonical encoding: the lock's identity,
// stamped into the image config.
func (l *Lock) Digest() (string, error) {
	b, err := l.Encode()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

func (l *Lock) sortStable() {
	sort.Slice(l.Wheels, func(i, j int) bool {
		a, b := l.Wheels[i], l.Wheels[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Filename < b.Filename
	})
	sort.Slice(l.Debs, func(i, j int) bool {
		a, b := l.Debs[i], l.Debs[j]
		if a.Package != b.Package {
			return a.Package < b.Package
		}
		return a.Architecture < b.Architecture
	})
	sort.Strings(l.Config.Env)
	sort.Strings(l.Config.ExposedPorts)
}

// WheelsFor returns the wheels installed on platform, in lock order.
func (l *Lock) WheelsFor(platform string) []Wheel {
	var out []Wheel
	for _, w := range l.Wheels {
		if contains(w.Platforms, platform) {
			out = append(out, w)
		}
	}
	return out
}

// DebsFor returns the debs installed on platform, in lock order.
func (l *Lock) DebsFor(platform string) []Deb {
	var out []Deb
	for _, d := range l.Debs {
		if contains(d.Platforms, platform) {
			out = append(out, d)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// LoadLock reads and validates mlenv.lock (at most MaxLockSize bytes).
func LoadLock(file string) (*Lock, error) {
	l, _, err := ReadLock(file)
	return l, err
}

// ReadLock is LoadLock that also returns the bytes it read: the file is
// read once (it may be a pipe), and the caller can compare them with the
// canonical encoding.
func ReadLock(file string) (*Lock, []byte, error) {
	data, err := readBounded(file, "a lock", MaxLockSize)
	if err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("reading the lock: %w (run `mlenv lock` to create it)", err)
	}
	l, err := ParseLock(file, data)
	return l, data, err
}

// ParseLock parses and validates a lock; file names the source in errors.
// The lock is strict JSON: not YAML (no aliases to expand), no unknown
// fields, nothing after the object. The returned lock is in canonical
// order, so that two files with the same digest build the same image.
func ParseLock(file string, data []byte) (*Lock, error) {
	if len(data) > MaxLockSize {
		return nil, errTooLarge(file, "a lock", int64(len(data)), MaxLockSize)
	}
	var l Lock
	loc, err := decodeJSONStrict(file, data, &l)
	if err != nil {
		return nil, err
	}
	if err := l.validate(loc); err != nil {
		return nil, err
	}
	l.sortStable()
	return &l, nil
}

func (l *Lock) validate(loc locator) error {
	if l.LockVersion != LockVersion {
		return loc.errf("lockVersion", "is %d; this mlenv reads version %d", l.LockVersion, LockVersion)
	}
	if err := checkEpoch(l.Epoch); err != nil {
		return loc.errf("epoch", "%v", err)
	}
	if err := checkName(l.Name); err != nil {
		return loc.errf("name", "%v", err)
	}
	if len(l.Platforms) == 0 {
		return loc.errf("platforms", "is empty")
	}
	if err := checkPlatforms(l.Platforms, loc.indexed("platforms")); err != nil {
		return err
	}
	if l.Base.Ref == "" {
		return loc.errf("base.ref", "is required")
	}
	if !l.Base.IsScratch() {
		for _, p := range l.Platforms {
			if !digestRe.MatchString(l.Base.Manifests[p]) {
				return loc.errf("base.manifests", "has no sha256 manifest digest for %s: run `mlenv lock` again", p)
			}
		}
	}
	if py := l.Python; py != nil {
		if !pyVerRe.MatchString(py.Version) {
			return loc.errf("python.version", "%q is not a Python 3 version like \"3.11\"", py.Version)
		}
		if err := checkPythonPaths([3]string{"python.prefix", "python.sitePackages", "python.interpreter"},
			[3]string{py.Prefix, py.SitePackages, py.Interpreter}, loc.named); err != nil {
			return err
		}
		if py.SitePackages == "" || py.Interpreter == "" {
			return loc.errf("python", "needs sitePackages and interpreter: run `mlenv lock` again")
		}
		if !libcRe.MatchString(py.Libc) {
			return loc.errf("python.libc", "%q: write \"glibc 2.36\" or \"musl 1.2\"", py.Libc)
		}
	}
	// Each wheel and deb names the platforms it is installed on: one the
	// lock does not build for is a hand edit gone wrong.
	checkOwnPlatforms := func(field string, ps []string) error {
		for j, p := range ps {
			if !contains(l.Platforms, p) {
				return loc.errf(fmt.Sprintf("%s.platforms[%d]", field, j), "%q is not one of the lock's platforms %v", p, l.Platforms)
			}
		}
		return nil
	}
	// One sha256 is one file, so it has one size: a lock that gives two
	// would have the build read a verified file through an unverified
	// length (a file of two zips, read as its first).
	sizeOf := map[string]int64{}
	checkArt := func(field string, a Artifact) error {
		if a.URI == "" {
			return loc.errf(field+".uri", "is required")
		}
		if !isSHA256(a.SHA256) {
			return loc.errf(field+".sha256", "%q is not a sha256 hex digest", a.SHA256)
		}
		if a.Size < 0 {
			return loc.errf(field+".size", "is negative")
		}
		if s, ok := sizeOf[a.SHA256]; ok && s != a.Size {
			return loc.errf(field+".size", "is %d, but another entry gives sha256 %s as %d bytes: one sha256 has one size; run `mlenv lock` again", a.Size, a.SHA256, s)
		}
		sizeOf[a.SHA256] = a.Size
		return nil
	}
	seenFile := map[string]bool{}
	for i, w := range l.Wheels {
		f := fmt.Sprintf("wheels[%d]", i)
		if err := checkArt(f, w.Artifact); err != nil {
			return err
		}
		if _, err := ParseWheelFilename(w.Filename); err != nil {
			return loc.errf(f+".filename", "%v", err)
		}
		if err := checkOwnPlatforms(f, w.Platforms); err != nil {
			return err
		}
		if seenFile[w.Filename] {
			return loc.errf(f+".filename", "%s is listed twice", w.Filename)
		}
		seenFile[w.Filename] = true
	}
	if len(l.Wheels) > 0 && l.Python == nil {
		return loc.errf("python", "is required when wheels are locked")
	}
	seenDeb := map[string]bool{}
	for i, d := range l.Debs {
		f := fmt.Sprintf("debs[%d]", i)
		if err := checkArt(f, d.Artifact); err != nil {
			return err
		}
		if err := checkOwnPlatforms(f, d.Platforms); err != nil {
			return err
		}
		key := d.Package + ":" + d.Architecture
		if seenDeb[key] {
			return loc.errf(f+".package", "%s is listed twice", key)
		}
		seenDeb[key] = true
	}
	for i, fs := range l.Files {
		f := fmt.Sprintf("files[%d]", i)
		if !isSHA256(fs.SHA256) {
			return loc.errf(f+".sha256", "%q is not a sha256 hex digest", fs.SHA256)
		}
		if err := checkSrc(fs.Src); err != nil {
			return loc.errf(f+".src", "%v", err)
		}
		if err := checkImagePath(fs.Dst); err != nil {
			return loc.errf(f+".dst", "%v", err)
		}
		for j, c := range fs.Chunks {
			if !isSHA256(c.SHA256) {
				return loc.errf(fmt.Sprintf("%s.chunks[%d].sha256", f, j), "%q is not a sha256 hex digest", c.SHA256)
			}
		}
	}
	if err := l.Config.validate(loc); err != nil {
		return err
	}
	switch l.Compression.Algorithm {
	case "gzip", "zstd":
	default:
		return loc.errf("compression.algorithm", "%q is not gzip or zstd", l.Compression.Algorithm)
	}
	switch l.Compression.Layout {
	case "":
	case LayoutSplice:
		if l.Compression.Algorithm != "gzip" {
			return loc.errf("compression.layout", "%q needs gzip (it copies deflate streams), not %s", LayoutSplice, l.Compression.Algorithm)
		}
	default:
		return loc.errf("compression.layout", "%q is not a known layout: use %q or leave it out", l.Compression.Layout, LayoutSplice)
	}
	return nil
}
