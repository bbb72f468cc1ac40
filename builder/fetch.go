package builder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/mlenv/mlenv/internal/cas"
	"github.com/mlenv/mlenv/lockfile"
)

// artifacts are the inputs of a build: downloaded ones in the cache, local
// ones where the lock points (inside the project folder; not copied: they
// are read in place). Each is hashed before its first use in this build
// unless it was verified as it was downloaded just now; a layer cache hit
// does not use it, so costs nothing. A corrupt cached one is removed and
// downloaded again (offline: an error naming it).
type artifacts struct {
	ctx      context.Context
	cache    *cas.Cache
	fetcher  *cas.Fetcher
	mu       sync.Mutex // guards the maps, never held while hashing
	paths    map[string]string
	uris     map[string]string
	sizes    map[string]int64
	local    map[string]bool
	verified map[string]bool
	// One lock per artifact, held while it is verified: layers verifying
	// different artifacts hash side by side; two needing the same one
	// hash it once.
	verifying map[string]*sync.Mutex
}

// path returns the verified file for a sha256.
func (a *artifacts) path(sum string) (string, error) {
	a.mu.Lock()
	_, ok := a.paths[sum]
	one := a.verifying[sum]
	if one == nil {
		one = &sync.Mutex{}
		a.verifying[sum] = one
	}
	a.mu.Unlock()
	if !ok {
		return "", fmt.Errorf("artifact sha256:%s was not fetched", sum)
	}
	one.Lock()
	defer one.Unlock()
	a.mu.Lock()
	p, done, local := a.paths[sum], a.verified[sum], a.local[sum]
	a.mu.Unlock()
	if done {
		return p, nil
	}
	if local {
		if err := cas.VerifyFile(p, sum, a.sizes[sum]); err != nil {
			return "", err
		}
	} else if err := a.cache.Verify(sum); err != nil {
		// Verify removed the corrupt blob: fetch it anew, verified on
		// the way in.
		if a.fetcher.Offline {
			return "", fmt.Errorf("%s: %w; --offline forbids downloading it again", a.uris[sum], err)
		}
		if p, err = a.fetcher.Ensure(a.ctx, a.uris[sum], sum, a.sizes[sum]); err != nil {
			return "", err
		}
	}
	a.mu.Lock()
	a.paths[sum], a.verified[sum] = p, true
	a.mu.Unlock()
	return p, nil
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
		sizes: map[string]int64{}, local: map[string]bool{}, verified: map[string]bool{},
		verifying: map[string]*sync.Mutex{}}
	pol := o.localPolicy()
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
			arts.verified[w.SHA256] = !cached
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
