package lockfile

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/mlenv/mlenv/internal/cas"
	"github.com/mlenv/mlenv/internal/debpkg"
	"github.com/mlenv/mlenv/internal/localpath"
	"github.com/mlenv/mlenv/internal/netx"
	"github.com/mlenv/mlenv/internal/treehash"
)

// Resolver turns an intent into a lock. It pins; it does not solve
// dependencies: the Python set comes from the user's own lock files.
type Resolver struct {
	// Fetcher downloads URL artifacts whose size or contents the lock
	// needs (debs' control files). Required when the intent has URLs.
	Fetcher *cas.Fetcher
	// HTTP is used for package index queries (default netx.DefaultClient:
	// every phase bounded, so a hung index fails naming its URL).
	HTTP *http.Client
	// RemoteOptions are passed to go-containerregistry for base images.
	RemoteOptions []remote.Option
	// AllowOutside lists folders outside the intent's folder that local
	// inputs (files sources, wheel and deb paths, Python lock files,
	// find-links folders) may come from. By default every local input must
	// lie inside the intent's folder, symlinks resolved, and be a regular
	// file or folder (see internal/localpath).
	AllowOutside []string
	// Warn receives notes that are not errors (skipped packages). It only
	// reports: what is locked is the same with or without it.
	Warn func(string)
	// Epoch, when set, is the lock's epoch and overrides the intent's
	// (mlenv lock sets it from SOURCE_DATE_EPOCH, see ParseSourceDateEpoch).
	// The lock is the build's only input: the build never reads the variable.
	Epoch *int64
	// Explain, when set, receives why each package of a Python lock file
	// is or is not installed on each target.
	Explain func(PyDecision)
}

// ParseSourceDateEpoch reads a SOURCE_DATE_EPOCH value
// (https://reproducible-builds.org/specs/source-date-epoch/): decimal
// seconds since 1970, 0 to MaxEpoch. A malformed value is an error, never
// silently ignored.
func ParseSourceDateEpoch(v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err == nil {
		err = checkEpoch(n)
	}
	if err != nil || strings.TrimSpace(v) != v || strings.HasPrefix(v, "+") {
		return 0, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a whole number of seconds since 1970 between 0 and %d: fix or unset it", v, int64(MaxEpoch))
	}
	return n, nil
}

func (r *Resolver) warn(format string, args ...any) {
	if r.Warn != nil {
		r.Warn(fmt.Sprintf(format, args...))
	}
}

// Resolve pins every input of the intent. The lock comes back in canonical
// order (as Encode writes it and ParseLock returns it).
func (r *Resolver) Resolve(ctx context.Context, in *Intent) (*Lock, error) {
	l := &Lock{LockVersion: LockVersion, Name: in.Name, Platforms: in.Platforms}
	if in.Epoch != nil {
		l.Epoch = *in.Epoch
	}
	if r.Epoch != nil {
		l.Epoch = *r.Epoch
	}
	var err error
	if l.Base, err = resolveBase(ctx, in.Base, r.local(in), in.Platforms, r.RemoteOptions); err != nil {
		return nil, in.loc.errf("base", "%v", err)
	}
	if in.Python != nil {
		if err := r.resolvePython(ctx, in, l); err != nil {
			return nil, err
		}
	}
	for i, d := range in.Debs {
		deb, err := r.resolveDeb(ctx, in, d)
		if err != nil {
			return nil, in.loc.errf(fmt.Sprintf("debs[%d]", i), "%v", err)
		}
		for _, p := range in.Platforms {
			if deb.Architecture == "all" || deb.Architecture == strings.TrimPrefix(p, "linux/") {
				deb.Platforms = append(deb.Platforms, p)
			}
		}
		if len(deb.Platforms) == 0 {
			return nil, in.loc.errf(fmt.Sprintf("debs[%d]", i), "%s is for architecture %s, which none of the platforms %v uses", deb.Package, deb.Architecture, in.Platforms)
		}
		l.Debs = append(l.Debs, deb)
	}
	for i, f := range in.Files {
		src, err := r.local(in).Resolve(f.Src)
		if err != nil {
			return nil, in.loc.errf(fmt.Sprintf("files[%d].src", i), "%v", err)
		}
		sum, size, n, chunks, err := treehash.HashWithChunks(src)
		if err != nil {
			return nil, in.loc.errf(fmt.Sprintf("files[%d].src", i), "%v", err)
		}
		fs := FileSet{Src: f.Src, Dst: f.Dst, SHA256: sum, Size: size, Files: n}
		for _, c := range chunks {
			fs.Chunks = append(fs.Chunks, FileChunk{SHA256: c.SHA256, Size: c.Size, Files: c.Files})
		}
		l.Files = append(l.Files, fs)
	}
	l.Config = ImageConfig{
		Workdir: in.Workdir, User: in.User, Entrypoint: in.Entrypoint, Cmd: in.Cmd,
		Labels: in.Labels, ExposedPorts: in.Ports,
	}
	for k, v := range in.Env {
		l.Config.Env = append(l.Config.Env, k+"="+v)
	}
	l.Compression = DefaultCompression(in.Compression)
	// Two sources giving the same file at different places would race.
	if err := l.validate(locator{file: "(resolved lock)"}); err != nil {
		return nil, err
	}
	l.sortStable()
	return l, nil
}

// DefaultLevel is the compression level mlenv uses for an algorithm.
func DefaultLevel(alg string) int {
	if alg == "zstd" {
		return 3
	}
	return 1 // gzip BestSpeed: registries store the bytes; pulls decompress them.
}

func (r *Resolver) resolveDeb(ctx context.Context, in *Intent, d ArtifactIntent) (Deb, error) {
	var deb Deb
	var p string
	open := os.Open
	if d.Path != "" {
		var err error
		pol := r.local(in)
		if p, err = pol.Resolve(d.Path); err != nil {
			return deb, err
		}
		deb.URI = filepath.ToSlash(d.Path)
		// Checked again on the open file: a folder on the way swapped
		// for a link to outside after Resolve is refused, as for wheels.
		open = pol.OpenResolved
	} else {
		if r.Fetcher == nil {
			return deb, fmt.Errorf("%s: downloading is not available here", d.URL)
		}
		sum := strings.TrimPrefix(d.SHA256, "sha256:")
		var err error
		if p, err = r.Fetcher.Ensure(ctx, d.URL, sum, -1); err != nil {
			return deb, err
		}
		deb.URI = d.URL
	}
	f, err := open(p)
	if err != nil {
		return deb, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return deb, err
	}
	if deb.SHA256, _, err = cas.HashReader(f); err != nil {
		return deb, err
	}
	deb.Size = fi.Size()
	if want := strings.TrimPrefix(d.SHA256, "sha256:"); want != "" && want != deb.SHA256 {
		return deb, &cas.MismatchError{What: "sha256", Want: want, Got: deb.SHA256}
	}
	c, _, err := debpkg.ReadControl(f, fi.Size())
	if err != nil {
		return deb, fmt.Errorf("%s: %w", p, err)
	}
	deb.Package, deb.Version, deb.Architecture = c.Package(), c.Version(), c.Architecture()
	return deb, nil
}

func (r *Resolver) resolvePython(ctx context.Context, in *Intent, l *Lock) error {
	py := in.Python
	l.Python = &Python{Version: py.Version, Prefix: py.Prefix, SitePackages: py.SitePackages, Interpreter: py.Interpreter, Libc: py.Libc}
	if l.Python.SitePackages == "" {
		l.Python.SitePackages = path.Join(py.Prefix, "lib", "python"+majorMinor(py.Version), "site-packages")
	}
	if l.Python.Interpreter == "" {
		l.Python.Interpreter = path.Join(py.Prefix, "bin", "python"+majorMinor(py.Version))
	}
	var pkgs []pyPackage
	for i, w := range py.Wheels {
		f, err := r.directWheel(ctx, in, w)
		if err != nil {
			return in.loc.errf(fmt.Sprintf("python.wheels[%d]", i), "%v", err)
		}
		wn, _ := ParseWheelFilename(f.Filename)
		pkgs = append(pkgs, pyPackage{Name: wn.Distribution, Version: wn.Version, Files: []pyFile{f}, Source: fmt.Sprintf("python.wheels[%d]", i)})
	}
	readRel := func(field, rel string) ([]byte, string, error) {
		pol := r.local(in)
		real, err := pol.Resolve(rel)
		if err != nil {
			return nil, "", in.loc.errf(field, "%v", err)
		}
		// Checked again on the open file (a folder on the way swapped
		// for a link to outside after Resolve), never blocking on a FIFO.
		f, err := pol.OpenResolved(real)
		if err != nil {
			return nil, "", in.loc.errf(field, "%v", err)
		}
		defer f.Close()
		b, err := readBoundedFrom(f, real, field, MaxImportSize)
		if err != nil {
			return nil, "", in.loc.errf(field, "%v", err)
		}
		return b, path.Dir(filepath.ToSlash(rel)), nil
	}
	var locks []pyLockSource
	if py.Pylock != "" {
		b, rel, err := readRel("python.pylock", py.Pylock)
		if err != nil {
			return err
		}
		pl, err := ParsePylock(filepath.Join(in.Dir, py.Pylock), b, rel)
		if err != nil {
			return err
		}
		locks = append(locks, pl)
	}
	if py.UVLock != "" {
		b, rel, err := readRel("python.uv-lock", py.UVLock)
		if err != nil {
			return err
		}
		ul, err := ParseUVLock(filepath.Join(in.Dir, py.UVLock), b, rel)
		if err != nil {
			return err
		}
		locks = append(locks, ul)
	}
	if py.Requirements != "" {
		b, _, err := readRel("python.requirements", py.Requirements)
		if err != nil {
			return err
		}
		reqs, err := ParseRequirements(filepath.Join(in.Dir, py.Requirements), b)
		if err != nil {
			return err
		}
		client := r.HTTP
		if client == nil {
			client = netx.DefaultClient
		}
		ix := &wheelIndex{local: r.local(in), findLinks: py.FindLinks, indexURL: py.IndexURL, client: client}
		for _, req := range reqs {
			files, err := ix.files(ctx, req.Name)
			if err != nil {
				return err
			}
			var matching []pyFile
			for _, f := range files {
				for _, h := range req.Hashes {
					if f.SHA256 == h {
						matching = append(matching, f)
					}
				}
			}
			if len(matching) == 0 {
				return &FieldError{File: py.Requirements, Line: req.Line, Msg: fmt.Sprintf("%s==%s: no file in find-links or the index has one of the listed hashes", req.Name, req.Version)}
			}
			pkgs = append(pkgs, pyPackage{Name: req.Name, Version: req.Version, Marker: req.Marker, Files: matching, Source: fmt.Sprintf("%s:%d", py.Requirements, req.Line)})
		}
	}
	byFile := map[string]*Wheel{}
	var decisions []PyDecision
	// One find-links index for every target, so that each wheel in those
	// folders is hashed once.
	var findLinks *wheelIndex
	if len(py.FindLinks) > 0 {
		findLinks = &wheelIndex{local: r.local(in), findLinks: py.FindLinks}
	}
	for _, p := range in.Platforms {
		t := py.target(p)
		seen := map[string]string{}
		tpkgs, ds, err := pythonFor(ctx, in, findLinks, t, pkgs, locks)
		if err != nil {
			return err
		}
		chosen := map[string]string{}
		for _, pkg := range tpkgs {
			names := make([]string, len(pkg.Files))
			for i, f := range pkg.Files {
				names[i] = f.Filename
			}
			idx, err := t.BestWheel(pkg.Name, names)
			if err != nil {
				return fmt.Errorf("%s: %w", pkg.Source, err)
			}
			f := pkg.Files[idx]
			norm := NormalizeName(pkg.Name)
			chosen[norm+" "+pkg.Version] = f.Filename
			if prev, dup := seen[norm]; dup && prev != f.Filename {
				return fmt.Errorf("%s: %s is locked twice (%s and %s)", pkg.Source, pkg.Name, prev, f.Filename)
			}
			seen[norm] = f.Filename
			w := byFile[f.Filename]
			if w == nil {
				wn, _ := ParseWheelFilename(f.Filename)
				size := f.Size
				if size < 0 {
					if size, err = r.sizeOf(ctx, in, f); err != nil {
						return fmt.Errorf("%s: %w", pkg.Source, err)
					}
				}
				w = &Wheel{Name: NormalizeName(wn.Distribution), Version: wn.Version, Filename: f.Filename,
					Artifact: Artifact{URI: f.URI, SHA256: f.SHA256, Size: size}}
				byFile[f.Filename] = w
			}
			w.Platforms = append(w.Platforms, p)
		}
		for i := range ds {
			if ds[i].Installed {
				ds[i].Wheel = chosen[NormalizeName(ds[i].Package)+" "+ds[i].Version]
			}
		}
		decisions = append(decisions, ds...)
	}
	if r.Explain != nil {
		for _, d := range decisions {
			r.Explain(d)
		}
	}
	if r.Warn != nil {
		for _, n := range pythonNotes(decisions) {
			r.Warn(n)
		}
	}
	for _, w := range byFile {
		l.Wheels = append(l.Wheels, *w)
	}
	sort.Slice(l.Wheels, func(i, j int) bool { return l.Wheels[i].Filename < l.Wheels[j].Filename })
	return nil
}

// sizeOf learns a file's size when the source did not record it: local
// files are hashed, remote ones downloaded (and so cached) and verified.
func (r *Resolver) sizeOf(ctx context.Context, in *Intent, f pyFile) (int64, error) {
	if !cas.IsRemote(f.URI) {
		sum, size, err := hashLocal(r.local(in), f.URI)
		if err != nil {
			return 0, err
		}
		if sum != f.SHA256 {
			return 0, &cas.MismatchError{What: "sha256", Want: f.SHA256, Got: sum}
		}
		return size, nil
	}
	if r.Fetcher == nil {
		return 0, fmt.Errorf("%s: size unknown and downloading is not available", f.URI)
	}
	p, err := r.Fetcher.Ensure(ctx, f.URI, f.SHA256, -1)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (r *Resolver) directWheel(ctx context.Context, in *Intent, w ArtifactIntent) (pyFile, error) {
	if w.Path != "" {
		name := path.Base(filepath.ToSlash(w.Path))
		if _, err := ParseWheelFilename(name); err != nil {
			return pyFile{}, err
		}
		sum, size, err := hashLocal(r.local(in), w.Path)
		if err != nil {
			return pyFile{}, err
		}
		if want := strings.TrimPrefix(w.SHA256, "sha256:"); want != "" && want != sum {
			return pyFile{}, &cas.MismatchError{What: "sha256", Want: want, Got: sum}
		}
		return pyFile{Filename: name, URI: filepath.ToSlash(w.Path), SHA256: sum, Size: size}, nil
	}
	name := path.Base(strings.SplitN(w.URL, "?", 2)[0])
	if _, err := ParseWheelFilename(name); err != nil {
		return pyFile{}, err
	}
	f := pyFile{Filename: name, URI: w.URL, SHA256: strings.TrimPrefix(w.SHA256, "sha256:"), Size: -1}
	size, err := r.sizeOf(ctx, in, f)
	f.Size = size
	return f, err
}

func majorMinor(v string) string {
	parts := strings.Split(v, ".")
	if len(parts) >= 2 {
		return parts[0] + "." + parts[1]
	}
	return v
}

// local is the rule for the intent's local inputs.
func (r *Resolver) local(in *Intent) localpath.Policy {
	return localpath.Policy{Base: in.Dir, Allow: r.AllowOutside}
}

// hashLocal hashes a local input named relative to the intent's folder,
// after checking that it may be read at all (inside the project, a
// regular file).
func hashLocal(pol localpath.Policy, rel string) (string, int64, error) {
	real, err := pol.Resolve(rel)
	if err != nil {
		return "", 0, err
	}
	return hashFile(pol, real)
}

// hashFile hashes real (a path pol resolved, or found in a folder it
// resolved), opened through pol.OpenResolved.
func hashFile(pol localpath.Policy, real string) (string, int64, error) {
	f, err := pol.OpenResolved(real)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	sum, n, err := cas.HashReader(f)
	if err != nil {
		return "", 0, fmt.Errorf("reading %s: %w", real, err)
	}
	return sum, n, nil
}
