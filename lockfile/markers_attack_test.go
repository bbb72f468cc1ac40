package lockfile

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// A marker nested a million parentheses deep (2 MB, well under the
// import size cap) crashed the process with a Go stack overflow, which no
// recover can catch. It must be an ordinary parse error, found fast
// (30,000 levels stay under maxMarkerLen, so the depth check is what
// refuses them).
func TestMarkerDeepNestingIsAnError(t *testing.T) {
	for _, depth := range []int{maxMarkerDepth + 1, 30_000} {
		m := strings.Repeat("(", depth) + "python_version == '3.11'" + strings.Repeat(")", depth)
		start := time.Now()
		_, err := ParseMarker(m)
		var me *MarkerError
		if !errors.As(err, &me) || !strings.Contains(err.Error(), "nested") {
			t.Fatalf("depth %d: got %v, want a MarkerError about nesting", depth, err)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("depth %d: took %v", depth, took)
		}
	}
	// Real markers nest two or three levels; the bound is far above that.
	ok := strings.Repeat("(", maxMarkerDepth) + "python_version == '3.11'" + strings.Repeat(")", maxMarkerDepth)
	m, err := ParseMarker(ok)
	if err != nil {
		t.Fatalf("depth %d: %v", maxMarkerDepth, err)
	}
	if v, err := m.Eval(Target{PythonVersion: "3.11", Platform: "linux/amd64"}.MarkerEnv(nil, nil)); err != nil || !v {
		t.Fatalf("depth %d evaluates to %v, %v; want true", maxMarkerDepth, v, err)
	}
}

// A marker is parsed into a tree kept for the whole run; one of megabytes
// (a 64 MiB lock may hold it) is refused rather than expanded.
func TestMarkerLengthIsBounded(t *testing.T) {
	long := strings.Repeat("python_version < '3' or ", maxMarkerLen/24+1) + "python_version < '3'"
	bounded(t, 1<<20, time.Second, func() {
		if _, err := ParseMarker(long); err == nil || !strings.Contains(err.Error(), "KiB") {
			t.Errorf("got %v, want an error naming the bound", err)
		}
	})
}
