package cas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/mlenv/mlenv/internal/netx"
)

// Fetcher brings locked artifacts into the cache: from local paths (relative
// to BaseDir) or over HTTP(S), with retries and exponential backoff for
// transient failures (network errors, 5xx, 429).
type Fetcher struct {
	Cache   *Cache
	BaseDir string
	Client  *http.Client
	// Offline forbids network access: artifacts must already be cached.
	Offline bool
	// Attempts is the number of tries for a transient failure (default 4).
	Attempts int
	// Backoff is the first retry delay, doubled each time (default 500ms).
	Backoff time.Duration
	// Progress, when set, is told about bytes written.
	Progress func(n int64)
}

// IsRemote reports whether uri is fetched over the network.
func IsRemote(uri string) bool {
	return strings.HasPrefix(uri, "http://") || strings.HasPrefix(uri, "https://")
}

// LocalPath resolves a non-remote uri against the base folder.
func (f *Fetcher) LocalPath(uri string) string {
	p := strings.TrimPrefix(uri, "file://")
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(f.BaseDir, filepath.FromSlash(p))
}

// Ensure makes sure the blob sha256:hexsum of the given size, downloaded
// from the URL uri, is in the cache and returns its path. (Local files are
// read in place: see LocalPath.)
func (f *Fetcher) Ensure(ctx context.Context, uri, hexsum string, size int64) (string, error) {
	if f.Cache.Has(hexsum, size) {
		return f.Cache.Path(hexsum), nil
	}
	if !IsRemote(uri) {
		return "", fmt.Errorf("%s is not an http(s) URL", uri)
	}
	if f.Offline {
		return "", fmt.Errorf("%s (sha256:%s): %w, and --offline forbids downloading it", uri, hexsum, ErrMissing)
	}
	attempts := f.Attempts
	if attempts <= 0 {
		attempts = 4
	}
	delay := f.Backoff
	if delay <= 0 {
		delay = 500 * time.Millisecond
	}
	var lastErr error
	for i := 0; i < attempts; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(delay):
			}
			delay *= 2
		}
		err := f.download(ctx, uri, hexsum, size)
		if err == nil {
			return f.Cache.Path(hexsum), nil
		}
		lastErr = err
		if !retryable(err) {
			break
		}
	}
	return "", fmt.Errorf("downloading %s: %w", uri, lastErr)
}

type statusError struct {
	code int
	url  string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("server answered %d %s", e.code, http.StatusText(e.code))
}

func retryable(err error) bool {
	var se *statusError
	if errors.As(err, &se) {
		return se.code >= 500 || se.code == http.StatusTooManyRequests || se.code == http.StatusRequestTimeout
	}
	var me *MismatchError
	if errors.As(err, &me) {
		// A short body is usually a dropped connection: worth another try.
		// A longer one is a wrong URL or a hostile server.
		return me.What == "size" && me.Got != "more"
	}
	// A server that hung once (no headers, a stalled body) is not retried:
	// each try would cost the full timeout.
	var te interface{ Timeout() bool }
	if errors.As(err, &te) && te.Timeout() {
		return false
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

func (f *Fetcher) download(ctx context.Context, uri, hexsum string, size int64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return err
	}
	client := f.Client
	if client == nil {
		client = netx.DefaultClient // connect, TLS, headers and body stalls bounded
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &statusError{code: resp.StatusCode, url: uri}
	}
	var body io.Reader = resp.Body
	if f.Progress != nil {
		body = io.TeeReader(body, progressWriter(f.Progress))
	}
	return f.Cache.Put(body, hexsum, size)
}

type progressWriter func(int64)

func (p progressWriter) Write(b []byte) (int, error) { p(int64(len(b))); return len(b), nil }
