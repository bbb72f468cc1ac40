package cas

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mlenv/mlenv/internal/netx"
)

// leftovers lists everything in the cache's blob folder.
func leftovers(t *testing.T, c *Cache) []string {
	t.Helper()
	all, _ := filepath.Glob(filepath.Join(c.Dir, "blobs", "sha256", "*"))
	hidden, _ := filepath.Glob(filepath.Join(c.Dir, "blobs", "sha256", ".*"))
	return append(all, hidden...)
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// shortTimeouts make a hung server fail in well under a second.
var shortTimeouts = netx.Client(netx.Timeouts{Connect: time.Second, ResponseHeader: 300 * time.Millisecond, Idle: 300 * time.Millisecond})

func TestEndlessBodyStopsAtLockedSizePlusOne(t *testing.T) {
	body := []byte(strings.Repeat("x", 652))
	var sent int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for sent < 1<<30 { // 1 GiB, "never" ends for this test
			n, err := w.Write(chunk)
			sent += int64(n)
			if err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	c := &Cache{Dir: t.TempDir()}
	f := &Fetcher{Cache: c, Client: shortTimeouts, Attempts: 3, Backoff: time.Millisecond}
	start := time.Now()
	_, err := f.Ensure(context.Background(), srv.URL+"/a.whl", sum(body), int64(len(body)))
	if err == nil || !strings.Contains(err.Error(), srv.URL+"/a.whl") || !strings.Contains(err.Error(), "longer") {
		t.Fatalf("endless body: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s", d)
	}
	if left := leftovers(t, c); len(left) != 0 {
		t.Errorf("left %v", left)
	}
}

func TestHangingServerTimesOutNamingURLAndPhase(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	for _, tc := range []struct {
		name, want string
		handler    http.HandlerFunc
	}{
		{"before headers", "timed out", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}},
		{"mid-body", "idle timeout", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "1000")
			w.Write(make([]byte, 100))
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			c := &Cache{Dir: t.TempDir()}
			f := &Fetcher{Cache: c, Client: shortTimeouts, Attempts: 4, Backoff: time.Millisecond}
			start := time.Now()
			_, err := f.Ensure(context.Background(), srv.URL+"/x.deb", strings.Repeat("a", 64), 1000)
			if err == nil || !strings.Contains(err.Error(), srv.URL+"/x.deb") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming the URL and %q", err, tc.want)
			}
			// Not retried: one timeout, not four.
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %s", d)
			}
			if left := leftovers(t, c); len(left) != 0 {
				t.Errorf("left %v", left)
			}
		})
	}
}

func TestCommittedBlobsAreReadOnly(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	b := []byte("blob")
	if err := c.Put(bytes.NewReader(b), sum(b), 4); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(c.Path(sum(b)))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o444 {
		t.Errorf("mode %v, want 0444", fi.Mode().Perm())
	}
}

func TestSweepStaleRemovesDeadOwnersOnly(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	dir := filepath.Join(c.Dir, "blobs", "sha256")
	os.MkdirAll(dir, 0o755)
	// A pid far above any pid_max in use: no such process.
	dead := filepath.Join(dir, ".tmp-999999999-123")
	mine := filepath.Join(dir, tempPrefix+itoa(os.Getpid())+"-456")
	old := filepath.Join(dir, tempPrefix+itoa(os.Getpid())+"-789")
	other := filepath.Join(dir, "notatemp")
	for _, p := range []string{dead, mine, old, other} {
		os.WriteFile(p, []byte("x"), 0o644)
	}
	past := time.Now().Add(-48 * time.Hour)
	os.Chtimes(old, past, past)
	if n := c.SweepStale(); n != 2 {
		t.Errorf("swept %d, want 2", n)
	}
	for p, want := range map[string]bool{dead: false, mine: true, old: false, other: true} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("%s present=%v, want %v", filepath.Base(p), err == nil, want)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
