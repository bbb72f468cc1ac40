package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/mlenv/mlenv/internal/cas"
	"github.com/mlenv/mlenv/internal/localpath"
	"github.com/mlenv/mlenv/lockfile"
)

// artifacts are the inputs of a build: downloaded ones in the cache, local
// ones where the lock points (inside the project folder; not copied: they
// are read in place). Each is hashed before its first use in this build
// unless it was verified as it was downloaded just now; a layer cache hit
// does not use it, so costs nothing. A corrupt cached one is removed and
// downloaded again (offline: an error naming it).
type artifacts struct {
	ctx        context.Context
	cache      *cas.Cache
	fetcher    *cas.Fetcher
	mu         sync.Mutex // guards the maps, never held while hashing
	paths      map[string]string
	uris       map[string]string
	sizes      map[string]int64
	local      map[string]bool
	downloaded map[string]bool // fetched (so hashed on the way in) in this run
	files      map[string]*os.File
	pol        localpath.Policy // where local artifacts may be
	// One lock per artifact, held while it is verified: layers verifying
	// different artifacts hash side by side; two needing the same one
	// hash it once.
	verifying map[string]*sync.Mutex
}

// file returns the verified artifact, open; it stays open, shared by
// every layer that reads it (at offsets only), until close. A local
// artifact is hashed through the very descriptor that is then read, and
// that descriptor is checked to lie inside the project after it was
// opened: the project folder is not mlenv's, and a file swapped after the
// check would otherwise be installed unverified. A cached artifact is
// checked by its seal (or re-hashed) and then opened; the cache is
// mlenv's own folder.
//
// size is what the caller's lock entry says; it must be the size the file
// was verified at (two entries naming one sha256 with different sizes
// would otherwise read a verified file through an unverified length).
func (a *artifacts) file(sum string, size int64) (*os.File, error) {
	a.mu.Lock()
	_, ok := a.paths[sum]
	verifiedSize := a.sizes[sum]
	one := a.verifying[sum]
	if one == nil {
		one = &sync.Mutex{}
		a.verifying[sum] = one
	}
	a.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("artifact sha256:%s was not fetched", sum)
	}
	if size != verifiedSize {
		return nil, fmt.Errorf("the lock gives size %d for sha256:%s, which another entry of the lock gives as %d bytes: one sha256 has one size; fix the lock or run `mlenv lock` again", size, sum, verifiedSize)
	}
	one.Lock()
	defer one.Unlock()
	a.mu.Lock()
	p, f, downloaded, local := a.paths[sum], a.files[sum], a.downloaded[sum], a.local[sum]
	a.mu.Unlock()
	if f != nil {
		return f, nil
	}
	var err error
	switch {
	case local:
		if f, err = a.pol.OpenResolved(p); err != nil {
			return nil, err
		}
		// One byte past the locked size, to see a file that grew.
		if err := cas.VerifyReader(io.NewSectionReader(f, 0, size+1), p, sum, size); err != nil {
			f.Close()
			return nil, err
		}
	case downloaded:
		// Hashed on its way into the cache in this run.
	default:
		if err := a.cache.Verify(sum); err != nil {
			// Verify removed the corrupt blob: fetch it anew, verified on
			// the way in.
			if a.fetcher.Offline {
				return nil, fmt.Errorf("%s: %w; --offline forbids downloading it again", a.uris[sum], err)
			}
			if p, err = a.fetcher.Ensure(a.ctx, a.uris[sum], sum, size); err != nil {
				return nil, err
			}
		}
	}
	if f == nil {
		if f, err = os.Open(p); err != nil {
			return nil, err
		}
	}
	a.mu.Lock()
	a.paths[sum], a.files[sum] = p, f
	a.mu.Unlock()
	return f, nil
}

// close closes every artifact file opened.
func (a *artifacts) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for sum, f := range a.files {
		f.Close()
		delete(a.files, sum)
	}
}

// fetchAll brings every locked artifact into the cache, several at once.
func fetchAll(ctx context.Context, o Options, f *cas.Fetcher) (*artifacts, error) {
	type want struct {
		what string
		lockfile.Artifact
	}
	var wants []want
	seen := map[string]bool{}
	for _, w := range o.Lock.Wheels {
		if !seen[w.SHA256] {
			seen[w.SHA256] = true
			wants = append(wants, want{w.Filename, w.Artifact})
		}
	}
	for _, d := range o.Lock.Debs {
		if !seen[d.SHA256] {
			seen[d.SHA256] = true
			wants = append(wants, want{d.Package, d.Artifact})
		}
	}
	var total int64
	for _, w := range wants {
		if cas.IsRemote(w.URI) && !o.Cache.Has(w.SHA256, w.Size) {
			total += w.Size
		}
	}
	bar := o.Progress.Start("fetching", total, true)
	f.Progress = bar.Add
	var mu sync.Mutex
	arts := &artifacts{ctx: ctx, cache: o.Cache, fetcher: f, paths: map[string]string{}, uris: map[string]string{},
		sizes: map[string]int64{}, local: map[string]bool{}, downloaded: map[string]bool{},
		files: map[string]*os.File{}, pol: o.localPolicy(), verifying: map[string]*sync.Mutex{}}
	pol := arts.pol
	var remote []want
	for _, w := range wants {
		arts.sizes[w.SHA256] = w.Size
		arts.uris[w.SHA256] = w.URI
		if cas.IsRemote(w.URI) {
			remote = append(remote, w)
			continue
		}
		// Inside the project, a regular file: never /etc/shadow or
		// /dev/zero, whatever the lock says.
		p, err := pol.Resolve(w.URI)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", w.what, err)
		}
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			return nil, fmt.Errorf("%s: %s is a folder, not a file", w.what, w.URI)
		}
		arts.paths[w.SHA256] = p
		arts.local[w.SHA256] = true
	}
	var missing []string
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, w := range remote {
		g.Go(func() error {
			cached := o.Cache.Has(w.SHA256, w.Size)
			p, err := f.Ensure(gctx, w.URI, w.SHA256, w.Size)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if o.Offline && errors.Is(err, cas.ErrMissing) {
					missing = append(missing, fmt.Sprintf("%s (%s, sha256:%s)", w.what, w.URI, w.SHA256))
					return nil
				}
				return fmt.Errorf("%s: %w", w.what, err)
			}
			arts.paths[w.SHA256] = p
			arts.downloaded[w.SHA256] = !cached
			return nil
		})
	}
	err := g.Wait()
	if total > 0 {
		bar.Done()
	}
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("--offline: %d artifact(s) are not in the cache %s:\n  %s\nrun `mlenv build` once with network access to fill it", len(missing), o.Cache.Dir, strings.Join(missing, "\n  "))
	}
	return arts, nil
}
