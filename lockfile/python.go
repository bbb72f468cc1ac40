package lockfile

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// pyPackage is one Python distribution as an importer found it: the wheels
// it may be installed from, before picking one per target platform.
type pyPackage struct {
	Name, Version, Marker string
	Files                 []pyFile
	// Where the package was declared, for error messages.
	Source string
	// SkipIfNoWheel: the importer cannot tell whether the package applies
	// to Linux (uv.lock has no per-package markers); skip it when no wheel
	// fits rather than fail.
	SkipIfNoWheel bool
}

type pyFile struct {
	Filename string
	URI      string // URL, or path relative to the intent's folder
	SHA256   string
	Size     int64 // -1 when the source does not say
}

// tomlError turns a go-toml decode error into a FieldError with a line.
func tomlError(file string, err error) error {
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, _ := de.Position()
		return &FieldError{File: file, Line: row, Msg: de.Error()}
	}
	var se *toml.StrictMissingError
	if errors.As(err, &se) && len(se.Errors) > 0 {
		row, _ := se.Errors[0].Position()
		return &FieldError{File: file, Line: row, Msg: se.Errors[0].Error()}
	}
	return &FieldError{File: file, Msg: err.Error()}
}

// --- pylock.toml (PEP 751) ---

type pylockFile struct {
	LockVersion string          `toml:"lock-version"`
	Packages    []pylockPackage `toml:"packages"`
}

type pylockPackage struct {
	Name    string        `toml:"name"`
	Version string        `toml:"version"`
	Marker  string        `toml:"marker"`
	Wheels  []pylockWheel `toml:"wheels"`
	Sdist   *pylockWheel  `toml:"sdist"`
}

type pylockWheel struct {
	Name   string            `toml:"name"`
	URL    string            `toml:"url"`
	Path   string            `toml:"path"`
	Size   *int64            `toml:"size"`
	Hashes map[string]string `toml:"hashes"`
}

// ParsePylock reads a pylock.toml; relative wheel paths are relative to it.
func ParsePylock(file string, data []byte, relTo string) ([]pyPackage, error) {
	var pl pylockFile
	if err := toml.Unmarshal(data, &pl); err != nil {
		return nil, tomlError(file, err)
	}
	if !strings.HasPrefix(pl.LockVersion, "1.") {
		return nil, &FieldError{File: file, Field: "lock-version", Msg: fmt.Sprintf("%q is not a PEP 751 version 1.x lock", pl.LockVersion)}
	}
	var out []pyPackage
	for i, p := range pl.Packages {
		src := fmt.Sprintf("%s: packages[%d] (%s)", file, i, p.Name)
		pkg := pyPackage{Name: p.Name, Version: p.Version, Marker: p.Marker, Source: src}
		for j, w := range p.Wheels {
			name := w.Name
			uri := w.URL
			if uri == "" && w.Path != "" {
				uri = path.Join(relTo, w.Path)
			}
			if uri == "" {
				return nil, fmt.Errorf("%s: wheels[%d] has neither url nor path", src, j)
			}
			if name == "" {
				name = path.Base(strings.SplitN(uri, "?", 2)[0])
			}
			sum := w.Hashes["sha256"]
			if !sha256Re.MatchString(sum) {
				return nil, fmt.Errorf("%s: wheels[%d] has no sha256 hash: mlenv pins every file", src, j)
			}
			size := int64(-1)
			if w.Size != nil {
				size = *w.Size
			}
			pkg.Files = append(pkg.Files, pyFile{Filename: name, URI: uri, SHA256: sum, Size: size})
		}
		if len(pkg.Files) == 0 && p.Sdist != nil {
			return nil, fmt.Errorf("%s: only an sdist is locked; mlenv installs wheels only (build a wheel and lock it)", src)
		}
		if len(pkg.Files) == 0 {
			return nil, fmt.Errorf("%s: no wheels are locked for this package (vcs and directory sources are not supported)", src)
		}
		out = append(out, pkg)
	}
	return out, nil
}

// --- uv.lock ---

type uvLockFile struct {
	Version  int         `toml:"version"`
	Packages []uvPackage `toml:"package"`
}

type uvPackage struct {
	Name    string         `toml:"name"`
	Version string         `toml:"version"`
	Source  map[string]any `toml:"source"`
	Wheels  []uvWheel      `toml:"wheels"`
	Sdist   *uvWheel       `toml:"sdist"`
}

type uvWheel struct {
	URL  string `toml:"url"`
	Path string `toml:"path"`
	Hash string `toml:"hash"`
	Size *int64 `toml:"size"`
}

// ParseUVLock reads a uv.lock. The project itself (editable or virtual
// source) is skipped: it is the application, not a dependency.
func ParseUVLock(file string, data []byte, relTo string) ([]pyPackage, error) {
	var ul uvLockFile
	if err := toml.Unmarshal(data, &ul); err != nil {
		return nil, tomlError(file, err)
	}
	var out []pyPackage
	for i, p := range ul.Packages {
		if _, ok := p.Source["editable"]; ok {
			continue
		}
		if _, ok := p.Source["virtual"]; ok {
			continue
		}
		src := fmt.Sprintf("%s: package[%d] (%s)", file, i, p.Name)
		pkg := pyPackage{Name: p.Name, Version: p.Version, Source: src, SkipIfNoWheel: true}
		for j, w := range p.Wheels {
			uri := w.URL
			if uri == "" {
				uri = path.Join(relTo, w.Path)
			}
			sum, ok := strings.CutPrefix(w.Hash, "sha256:")
			if !ok || !sha256Re.MatchString(sum) {
				return nil, fmt.Errorf("%s: wheels[%d] has no sha256 hash", src, j)
			}
			size := int64(-1)
			if w.Size != nil {
				size = *w.Size
			}
			pkg.Files = append(pkg.Files, pyFile{Filename: path.Base(strings.SplitN(uri, "?", 2)[0]), URI: uri, SHA256: sum, Size: size})
		}
		if len(pkg.Files) == 0 {
			what := "no wheels"
			if p.Sdist != nil {
				what = "only an sdist"
			}
			return nil, fmt.Errorf("%s: %s locked; mlenv installs wheels only", src, what)
		}
		out = append(out, pkg)
	}
	return out, nil
}

// --- requirements files with --hash ---

type requirement struct {
	Name, Version, Marker string
	Hashes                []string
	Line                  int
}

// ParseRequirements reads a pip requirements file in hash-checking form:
// every requirement must be pinned with == and carry --hash=sha256:...
func ParseRequirements(file string, data []byte) ([]requirement, error) {
	var reqs []requirement
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	lineNo, start := 0, 0
	var logical strings.Builder
	flush := func() error {
		text := strings.TrimSpace(logical.String())
		logical.Reset()
		if i := strings.Index(text, " #"); i >= 0 {
			text = strings.TrimSpace(text[:i])
		}
		if text == "" || strings.HasPrefix(text, "#") {
			return nil
		}
		if strings.HasPrefix(text, "-") {
			if strings.HasPrefix(text, "--index-url") || strings.HasPrefix(text, "--extra-index-url") || strings.HasPrefix(text, "--find-links") {
				return nil // taken from mlenv.yaml instead
			}
			return &FieldError{File: file, Line: start, Msg: fmt.Sprintf("option %q is not supported in a locked requirements file", strings.Fields(text)[0])}
		}
		spec, marker, _ := strings.Cut(text, ";")
		fields := strings.Fields(spec)
		var hashes []string
		var rest []string
		for _, f := range fields {
			if h, ok := strings.CutPrefix(f, "--hash="); ok {
				sum, ok := strings.CutPrefix(h, "sha256:")
				if !ok || !sha256Re.MatchString(sum) {
					return &FieldError{File: file, Line: start, Msg: fmt.Sprintf("%q: only sha256 hashes are accepted", f)}
				}
				hashes = append(hashes, sum)
				continue
			}
			rest = append(rest, f)
		}
		// The marker part may hold the hashes too ("pkg==1 ; python_version>'3' --hash=...").
		mfields := strings.Fields(marker)
		var mrest []string
		for _, f := range mfields {
			if h, ok := strings.CutPrefix(f, "--hash=sha256:"); ok && sha256Re.MatchString(h) {
				hashes = append(hashes, h)
				continue
			}
			mrest = append(mrest, f)
		}
		req := strings.Join(rest, "")
		name, version, ok := strings.Cut(req, "==")
		if !ok || name == "" || version == "" || strings.ContainsAny(version, "<>=!~*,") {
			return &FieldError{File: file, Line: start, Msg: fmt.Sprintf("%q is not pinned: write name==version with --hash=sha256:... (e.g. from `uv pip compile --generate-hashes`)", req)}
		}
		if i := strings.IndexByte(name, '['); i >= 0 {
			name = name[:i] // extras change dependencies, not this package's files
		}
		if len(hashes) == 0 {
			return &FieldError{File: file, Line: start, Msg: fmt.Sprintf("%s==%s has no --hash=sha256:...: mlenv pins every file", name, version)}
		}
		reqs = append(reqs, requirement{Name: name, Version: version, Marker: strings.Join(mrest, " "), Hashes: hashes, Line: start})
		return nil
	}
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		if logical.Len() == 0 {
			start = lineNo
		}
		if strings.HasSuffix(line, "\\") {
			logical.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		logical.WriteString(line)
		if err := flush(); err != nil {
			return nil, err
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return reqs, sc.Err()
}

// wheelIndex finds the files behind a requirement's hashes: in find-links
// folders and in a PEP 691 (JSON) simple index.
type wheelIndex struct {
	baseDir   string   // the intent's folder
	findLinks []string // local folders, relative to baseDir (as written)
	indexURL  string
	client    *http.Client
}

type simpleFile struct {
	Filename string            `json:"filename"`
	URL      string            `json:"url"`
	Hashes   map[string]string `json:"hashes"`
	Size     *int64            `json:"size"`
}

func (ix *wheelIndex) files(ctx context.Context, name string) ([]pyFile, error) {
	var out []pyFile
	norm := NormalizeName(name)
	for _, dir := range ix.findLinks {
		entries, err := os.ReadDir(filepath.Join(ix.baseDir, dir))
		if err != nil {
			return nil, fmt.Errorf("find-links %s: %w", dir, err)
		}
		for _, e := range entries {
			w, err := ParseWheelFilename(e.Name())
			if err != nil || NormalizeName(w.Distribution) != norm {
				continue
			}
			sum, size, err := hashFile(filepath.Join(ix.baseDir, dir, e.Name()))
			if err != nil {
				return nil, err
			}
			out = append(out, pyFile{Filename: e.Name(), URI: path.Join(filepath.ToSlash(dir), e.Name()), SHA256: sum, Size: size})
		}
	}
	if ix.indexURL == "" {
		return out, nil
	}
	base, err := url.Parse(strings.TrimSuffix(ix.indexURL, "/") + "/" + norm + "/")
	if err != nil {
		return nil, fmt.Errorf("index-url: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/vnd.pypi.simple.v1+json")
	resp, err := ix.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("querying the package index for %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return out, nil // not on this index; find-links may have it
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("package index answered %s for %s", resp.Status, base)
	}
	var page struct {
		Files []simpleFile `json:"files"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&page); err != nil {
		return nil, fmt.Errorf("package index page for %s is not PEP 691 JSON: %w", name, err)
	}
	for _, f := range page.Files {
		u, err := base.Parse(f.URL)
		if err != nil {
			continue
		}
		size := int64(-1)
		if f.Size != nil {
			size = *f.Size
		}
		out = append(out, pyFile{Filename: f.Filename, URI: u.String(), SHA256: f.Hashes["sha256"], Size: size})
	}
	return out, nil
}
