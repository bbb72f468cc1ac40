package image

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/mlenv/mlenv/internal/netx"
	"github.com/mlenv/mlenv/internal/testutil"
)

// hungRegistry is the in-process registry with requests matching hang
// never answered, until the client gives up or the test ends.
func hungRegistry(t *testing.T, hang func(*http.Request) bool) string {
	stop := make(chan struct{})
	host := testutil.Registry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if hang(r) {
				io.Copy(io.Discard, r.Body) // take the upload, answer nothing
				select {
				case <-r.Context().Done():
				case <-stop:
				}
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	t.Cleanup(func() { close(stop) }) // runs before the server's Close
	return host
}

// short makes a hung registry fail fast: 300 ms for response headers, one
// try.
var short = Options{
	Timeouts: netx.Timeouts{ResponseHeader: 300 * time.Millisecond, Idle: 300 * time.Millisecond},
	Remote:   []remote.Option{remote.WithRetryBackoff(remote.Backoff{Steps: 1})},
}

func TestHungPushEndsWithAClearError(t *testing.T) {
	host := hungRegistry(t, func(r *http.Request) bool {
		return strings.Contains(r.URL.Path, "/blobs/uploads/") && (r.Method == http.MethodPatch || r.Method == http.MethodPut)
	})
	start := time.Now()
	err := Write(ctx, mustParse(t, host+"/team/train:v1"), testutil.RandomImage(t, "linux", "amd64"), WriteOptions{Options: short})
	if err == nil {
		t.Fatal("a push to a hung registry succeeded")
	}
	if el := time.Since(start); el > 20*time.Second {
		t.Errorf("took %s", el)
	}
	t.Log(err)
	msg := err.Error()
	if !strings.Contains(msg, "pushing to "+host+"/team/train:v1") || !strings.Contains(msg, "http://"+host+"/v2/team/train/blobs/uploads/") || !strings.Contains(msg, "timed out") {
		t.Errorf("error does not name the URL and the timeout: %v", err)
	}
}

func TestHungPullEndsWithAClearError(t *testing.T) {
	hung := hungRegistry(t, func(r *http.Request) bool { return strings.Contains(r.URL.Path, "/manifests/") })
	start := time.Now()
	_, err := Resolve(ctx, mustParse(t, hung+"/team/train:v1"), short)
	if err == nil {
		t.Fatal("a pull from a hung registry succeeded")
	}
	if el := time.Since(start); el > 20*time.Second {
		t.Errorf("took %s", el)
	}
	t.Log(err)
	msg := err.Error()
	if !strings.Contains(msg, "resolving "+hung+"/team/train:v1") || !strings.Contains(msg, "http://"+hung+"/v2/team/train/manifests/v1") || !strings.Contains(msg, "timed out") {
		t.Errorf("error does not name the URL and the timeout: %v", err)
	}
}
