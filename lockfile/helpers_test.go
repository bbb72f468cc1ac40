package lockfile

import "github.com/mlenv/mlenv/internal/cas"

func newFetcher(cacheDir, base string) *cas.Fetcher {
	return &cas.Fetcher{Cache: &cas.Cache{Dir: cacheDir}, BaseDir: base}
}
