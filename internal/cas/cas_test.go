package cas

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPutCommitsOnlyVerifiedBlobs(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	body := []byte("hello")
	sum, _, err := HashReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	// Wrong digest, wrong size: nothing is left, not even a temp file.
	var me *MismatchError
	if err := c.Put(bytes.NewReader(body), strings.Repeat("0", 64), 5); !errors.As(err, &me) || me.What != "sha256" {
		t.Errorf("wrong digest: %v", err)
	}
	if err := c.Put(bytes.NewReader(body[:3]), sum, 5); !errors.As(err, &me) || me.What != "size" || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("short body: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(c.Dir, "blobs", "sha256", "*"))
	hidden, _ := filepath.Glob(filepath.Join(c.Dir, "blobs", "sha256", ".*"))
	if len(left)+len(hidden) != 0 {
		t.Fatalf("failed puts left %v %v", left, hidden)
	}
	if err := c.Put(bytes.NewReader(body), sum, 5); err != nil {
		t.Fatal(err)
	}
	if !c.Has(sum, 5) || c.Has(sum, 6) || c.Verify(sum) != nil {
		t.Error("committed blob not found or not verified")
	}
	// A corrupted blob is detected and removed.
	os.Chmod(c.Path(sum), 0o644)
	os.WriteFile(c.Path(sum), []byte("HELLO"), 0o644)
	if err := c.Verify(sum); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("corrupt blob: %v", err)
	}
	if c.Has(sum, -1) {
		t.Error("corrupt blob kept")
	}
	if err := c.Verify(sum); !errors.Is(err, ErrMissing) {
		t.Errorf("missing blob: %v", err)
	}
}

func TestParseSHA256(t *testing.T) {
	good := strings.Repeat("ab", 32)
	for _, s := range []string{good, "sha256:" + good} {
		if h, err := ParseSHA256(s); err != nil || h != good {
			t.Errorf("%q: %q %v", s, h, err)
		}
	}
	for _, s := range []string{"", "sha256:", strings.Repeat("AB", 32), good[:63], "md5:" + good} {
		if _, err := ParseSHA256(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestVerifyReader(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, []byte("data"), 0o644)
	verify := func(sum string, size int64) error {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		return VerifyReader(f, p, sum, size)
	}
	sum, _, _ := HashReader(bytes.NewReader([]byte("data")))
	if err := verify(sum, 4); err != nil {
		t.Error(err)
	}
	if err := verify(sum, 5); err == nil {
		t.Error("wrong size accepted")
	}
	if err := verify(strings.Repeat("1", 64), -1); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("wrong digest: %v", err)
	}
}
