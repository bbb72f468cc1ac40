// Package lockfile holds mlenv's two input formats and their shared types:
// mlenv.yaml (the intent a person writes) and mlenv.lock (every input pinned
// by URI, sha256 and size), with line-numbered parsing, validation,
// canonical encoding, importers for Python lock formats and the resolvers
// that turn an intent into a lock.
package lockfile

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// Intent is mlenv.yaml: what the image should contain, in the user's terms.
type Intent struct {
	Name        string            `yaml:"name"`
	Epoch       *int64            `yaml:"epoch"`
	Platforms   []string          `yaml:"platforms"`
	Base        string            `yaml:"base"`
	Python      *PythonIntent     `yaml:"python"`
	Debs        []ArtifactIntent  `yaml:"debs"`
	Files       []FilesIntent     `yaml:"files"`
	Env         map[string]string `yaml:"env"`
	Workdir     string            `yaml:"workdir"`
	User        string            `yaml:"user"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Cmd         []string          `yaml:"cmd"`
	Labels      map[string]string `yaml:"labels"`
	Ports       []string          `yaml:"ports"`
	Compression string            `yaml:"compression"`

	// Dir is the folder mlenv.yaml lives in: relative paths start there.
	Dir  string `yaml:"-"`
	File string `yaml:"-"`
	loc  locator
}

// PythonIntent selects the interpreter the wheels target and where they come from.
type PythonIntent struct {
	Version        string           `yaml:"version"`
	Implementation string           `yaml:"implementation"`
	Prefix         string           `yaml:"prefix"`
	SitePackages   string           `yaml:"site-packages"`
	Interpreter    string           `yaml:"interpreter"`
	Libc           string           `yaml:"libc"`
	Wheels         []ArtifactIntent `yaml:"wheels"`
	Pylock         string           `yaml:"pylock"`
	UVLock         string           `yaml:"uv-lock"`
	Requirements   string           `yaml:"requirements"`
	IndexURL       string           `yaml:"index-url"`
	FindLinks      []string         `yaml:"find-links"`
	// Extras and Groups select optional dependencies and dependency
	// groups of a uv.lock workspace or a pylock.toml (none by default;
	// pylock.toml's default-groups when Groups is absent).
	Extras []string `yaml:"extras"`
	Groups []string `yaml:"groups"`
}

// ArtifactIntent names one file by local path or by URL (with its sha256).
type ArtifactIntent struct {
	Path   string `yaml:"path"`
	URL    string `yaml:"url"`
	SHA256 string `yaml:"sha256"`
}

// FilesIntent copies a local file or folder into the image.
type FilesIntent struct {
	Src string `yaml:"src"`
	Dst string `yaml:"dst"`
}

// LoadIntent reads and validates mlenv.yaml (at most MaxIntentSize bytes).
func LoadIntent(file string) (*Intent, error) {
	data, err := readBounded(file, "an intent", MaxIntentSize)
	if err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			return nil, err
		}
		return nil, fmt.Errorf("reading the intent: %w", err)
	}
	return ParseIntent(file, data)
}

// ParseIntent parses and validates an intent; file names the source in errors.
// YAML anchors, aliases and merge keys are refused (see refuseAliases).
func ParseIntent(file string, data []byte) (*Intent, error) {
	if len(data) > MaxIntentSize {
		return nil, errTooLarge(file, "an intent", int64(len(data)), MaxIntentSize)
	}
	var in Intent
	loc, err := decodeStrict(file, data, &in)
	if err != nil {
		return nil, err
	}
	in.loc = loc
	in.File = file
	in.Dir = dirOf(file)
	if err := in.validate(); err != nil {
		return nil, err
	}
	return &in, nil
}

func dirOf(file string) string {
	d := path.Dir(strings.ReplaceAll(file, "\\", "/"))
	if d == "" {
		return "."
	}
	return d
}

func (in *Intent) validate() error {
	l := in.loc
	if in.Epoch != nil {
		if err := checkEpoch(*in.Epoch); err != nil {
			return l.errf("epoch", "%v", err)
		}
	}
	if err := checkName(in.Name); err != nil {
		return l.errf("name", "%v", err)
	}
	if len(in.Platforms) == 0 {
		in.Platforms = []string{"linux/amd64"}
	}
	if err := checkPlatforms(in.Platforms, l.indexed("platforms")); err != nil {
		return err
	}
	if in.Base == "" {
		return l.errf("base", "is required: \"scratch\", a registry reference (tag or @sha256 digest) or oci:DIR")
	}
	if py := in.Python; py != nil {
		if !pyVerRe.MatchString(py.Version) {
			return l.errf("python.version", "%q is not a Python 3 version like \"3.11\"", py.Version)
		}
		if py.Implementation == "" {
			py.Implementation = "cp"
		}
		if py.Implementation != "cp" {
			return l.errf("python.implementation", "only \"cp\" (CPython) is supported, got %q", py.Implementation)
		}
		if py.Prefix == "" {
			py.Prefix = "/usr/local"
		}
		if err := checkPythonPaths([3]string{"python.prefix", "python.site-packages", "python.interpreter"},
			[3]string{py.Prefix, py.SitePackages, py.Interpreter}, l.named); err != nil {
			return err
		}
		if py.Libc == "" {
			py.Libc = "glibc 2.36"
		}
		if !libcRe.MatchString(py.Libc) {
			return l.errf("python.libc", "%q: write \"glibc 2.36\" or \"musl 1.2\"", py.Libc)
		}
		for i, w := range py.Wheels {
			if err := w.validate(l, fmt.Sprintf("python.wheels[%d]", i)); err != nil {
				return err
			}
		}
		if len(py.Wheels) == 0 && py.Pylock == "" && py.UVLock == "" && py.Requirements == "" {
			return l.errf("python", "names no wheels: add wheels, pylock, uv-lock or requirements")
		}
		if py.Requirements != "" && py.IndexURL == "" && len(py.FindLinks) == 0 {
			return l.errf("python.requirements", "needs index-url or find-links to find the wheels behind the hashes")
		}
	}
	for i, d := range in.Debs {
		if err := d.validate(l, fmt.Sprintf("debs[%d]", i)); err != nil {
			return err
		}
	}
	for i, f := range in.Files {
		field := fmt.Sprintf("files[%d]", i)
		if err := checkSrc(f.Src); err != nil {
			return l.errf(field+".src", "%v", err)
		}
		if err := checkImagePath(f.Dst); err != nil {
			return l.errf(field+".dst", "%v", err)
		}
	}
	if err := in.validateConfig(); err != nil {
		return err
	}
	switch in.Compression {
	case "":
		in.Compression = "gzip"
	case "gzip", "zstd":
	default:
		return l.errf("compression", "%q is not supported: use gzip or zstd", in.Compression)
	}
	return nil
}

func (a ArtifactIntent) validate(l locator, field string) error {
	switch {
	case a.Path == "" && a.URL == "":
		return l.errf(field, "needs path or url")
	case a.Path != "" && a.URL != "":
		return l.errf(field, "has both path and url: keep one")
	case a.URL != "" && !strings.HasPrefix(a.URL, "https://") && !strings.HasPrefix(a.URL, "http://"):
		return l.errf(field+".url", "%q is not an http(s) URL", a.URL)
	case a.URL != "" && a.SHA256 == "":
		return l.errf(field+".sha256", "is required for a URL: pin what you download")
	}
	if a.SHA256 != "" && !isSHA256(strings.TrimPrefix(a.SHA256, "sha256:")) {
		return l.errf(field+".sha256", "%q is not a sha256 digest (64 lowercase hex characters)", a.SHA256)
	}
	return nil
}

// target is what a wheel must be compatible with, for one platform.
func (py *PythonIntent) target(platform string) Target {
	return Target{PythonVersion: py.Version, Implementation: py.Implementation, Libc: py.Libc, Platform: platform}
}
