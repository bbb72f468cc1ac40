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
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/mlenv/mlenv/internal/localpath"
)

// pyPackage is one Python distribution as an importer found it: the wheels
// it may be installed from, before picking one per target platform.
type pyPackage struct {
	Name, Version, Marker string
	Files                 []pyFile
	// Where the package was declared, for error messages.
	Source string
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
				if !ok || !isSHA256(sum) {
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
			if h, ok := strings.CutPrefix(f, "--hash=sha256:"); ok && isSHA256(h) {
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
	local     localpath.Policy // the intent's folder and what may be read
	findLinks []string         // local folders, relative to the intent's folder (as written)
	indexURL  string
	client    *http.Client
	// found holds the find-links wheels of each normalised name, hashed
	// the first time the name is asked for: the same index serves every
	// target of a lock.
	found map[string][]pyFile
}

type simpleFile struct {
	Filename string            `json:"filename"`
	URL      string            `json:"url"`
	Hashes   map[string]string `json:"hashes"`
	Size     *int64            `json:"size"`
}

// findLinksFiles lists the wheels of a normalised name in the find-links
// folders, with their sha256 and size. The list is clipped, so that a
// caller appending to it never writes into the cached one.
func (ix *wheelIndex) findLinksFiles(norm string) ([]pyFile, error) {
	if out, ok := ix.found[norm]; ok {
		return out, nil
	}
	var out []pyFile
	for _, dir := range ix.findLinks {
		real, err := ix.local.Resolve(dir)
		if err != nil {
			return nil, fmt.Errorf("find-links: %w", err)
		}
		entries, err := os.ReadDir(real)
		if err != nil {
			return nil, fmt.Errorf("find-links %s: %w", dir, err)
		}
		for _, e := range entries {
			w, err := ParseWheelFilename(e.Name())
			if err != nil || NormalizeName(w.Distribution) != norm {
				continue
			}
			if !e.Type().IsRegular() {
				continue // a link or device named like a wheel is not a wheel
			}
			sum, size, err := hashFile(ix.local, filepath.Join(real, e.Name()))
			if err != nil {
				return nil, err
			}
			out = append(out, pyFile{Filename: e.Name(), URI: path.Join(filepath.ToSlash(dir), e.Name()), SHA256: sum, Size: size})
		}
	}
	if ix.found == nil {
		ix.found = map[string][]pyFile{}
	}
	out = slices.Clip(out)
	ix.found[norm] = out
	return out, nil
}

func (ix *wheelIndex) files(ctx context.Context, name string) ([]pyFile, error) {
	norm := NormalizeName(name)
	out, err := ix.findLinksFiles(norm)
	if err != nil {
		return nil, err
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

// --- choosing what a target installs ---

// pyLockSource is a lock file that decides per target what to install.
type pyLockSource interface {
	selectFor(ctx context.Context, s *pySelect) ([]pyPackage, []PyDecision, error)
}

// pySelect is one target and the intent's choices for it.
type pySelect struct {
	target    Target
	env       MarkerEnv
	extras    []string // normalised python.extras
	groups    []string // normalised python.groups
	groupsSet bool     // python.groups was given (pylock.toml's default-groups otherwise)
	local     *wheelIndex
}

// newPySelect: findLinks is the index of python.find-links, shared by
// every target (nil when there are none).
func newPySelect(py *PythonIntent, t Target, findLinks *wheelIndex) *pySelect {
	s := &pySelect{target: t, groupsSet: py.Groups != nil, local: findLinks}
	for _, e := range py.Extras {
		s.extras = append(s.extras, NormalizeName(e))
	}
	for _, g := range py.Groups {
		s.groups = append(s.groups, NormalizeName(g))
	}
	s.env = t.MarkerEnv(s.extras, s.groups)
	return s
}

// fromFindLinks finds wheels the user built for a package the lock has no
// wheel for, by name and version (their hashes are the user's own, so
// the lock's sdist hash cannot apply; mlenv.lock pins the wheel's).
func (s *pySelect) fromFindLinks(ctx context.Context, name, version, src string) (pyPackage, bool, error) {
	if s.local == nil {
		return pyPackage{}, false, nil
	}
	files, err := s.local.files(ctx, name)
	if err != nil {
		return pyPackage{}, false, err
	}
	want, verr := ParseVersion(version)
	var match []pyFile
	for _, f := range files {
		w, err := ParseWheelFilename(f.Filename)
		if err != nil {
			continue
		}
		got, gerr := ParseVersion(w.Version)
		if (verr == nil && gerr == nil && got.Compare(want) == 0) || w.Version == version || version == "" {
			match = append(match, f)
		}
	}
	if len(match) == 0 {
		return pyPackage{}, false, nil
	}
	return pyPackage{Name: name, Version: version, Files: match, Source: src + " (find-links)"}, true, nil
}

func findLinksAdvice(name, version string) string {
	return fmt.Sprintf("Build the wheel yourself (`pip wheel --no-deps --wheel-dir wheels %s==%s`) and add the folder to python.find-links in mlenv.yaml: a wheel there with the same name and version is used and pinned by its own sha256", name, version)
}

// pythonFor lists what one target installs: the direct wheels and
// requirements whose marker holds, and what each lock file selects.
func pythonFor(ctx context.Context, in *Intent, findLinks *wheelIndex, t Target, direct []pyPackage, locks []pyLockSource) ([]pyPackage, []PyDecision, error) {
	s := newPySelect(in.Python, t, findLinks)
	var out []pyPackage
	for _, pkg := range direct {
		if pkg.Marker != "" {
			ok, err := t.EvalMarker(pkg.Marker)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", pkg.Source, err)
			}
			if !ok {
				continue
			}
		}
		out = append(out, pkg)
	}
	var decisions []PyDecision
	for _, l := range locks {
		pkgs, ds, err := l.selectFor(ctx, s)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, pkgs...)
		decisions = append(decisions, ds...)
	}
	return out, decisions, nil
}

// pythonNotes says, once per package, what no target installs: the
// project's own code (skipped) and packages that every target leaves out.
func pythonNotes(ds []PyDecision) []string {
	type key struct{ src, name, version string }
	installed := map[key]bool{}
	first := map[key]PyDecision{}
	var order []key
	for _, d := range ds {
		k := key{d.Source, d.Package, d.Version}
		if _, ok := first[k]; !ok {
			first[k] = d
			order = append(order, k)
		}
		installed[k] = installed[k] || d.Installed
	}
	var notes []string
	for _, k := range order {
		if installed[k] {
			continue
		}
		d := first[k]
		if d.Skipped {
			notes = append(notes, fmt.Sprintf("skipping %s %s from %s: %s", d.Package, d.Version, d.Source, d.Reason))
			continue
		}
		notes = append(notes, fmt.Sprintf("%s %s is in %s but no target installs it (%s on %s, Python %s; `mlenv lock --explain` shows every target)", d.Package, d.Version, d.Source, d.Reason, d.Platform, d.Python))
	}
	return notes
}
