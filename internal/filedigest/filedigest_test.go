package filedigest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, root, name, content string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(name))
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSumListsEveryFileWithItsDigest(t *testing.T) {
	root := t.TempDir()
	write(t, root, "b.bin", "bee")
	write(t, root, "a/z.json", "{}")
	write(t, root, ".git/HEAD", "ref")
	files, err := Sum(context.Background(), root, Options{Exclude: func(rel string) bool { return rel == ".git" }, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
		b, _ := os.ReadFile(f.Abs)
		sum := sha256.Sum256(b)
		if f.SHA256 != hex.EncodeToString(sum[:]) || f.Size != int64(len(b)) {
			t.Errorf("%s: digest %s size %d", f.Name, f.SHA256, f.Size)
		}
	}
	if strings.Join(names, ",") != "a/z.json,b.bin" {
		t.Fatalf("names %v", names)
	}
	one, err := Sum(context.Background(), filepath.Join(root, "b.bin"), Options{})
	if err != nil || len(one) != 1 || one[0].Name != "b.bin" {
		t.Fatalf("single file: %+v %v", one, err)
	}
}

// TreeDigest is what the sha256sum pipeline documented on it prints.
func TestTreeDigestMatchesSha256sum(t *testing.T) {
	if _, err := exec.LookPath("sha256sum"); err != nil {
		t.Skip("sha256sum is not installed: it is the reference the digest is checked against")
	}
	root := t.TempDir()
	write(t, root, "w/model.safetensors", "weights")
	write(t, root, "config.json", `{"lr":1}`)
	files, err := Sum(context.Background(), root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", `find . -type f | sed 's|^\./||' | LC_ALL=C sort | xargs sha256sum | sha256sum`)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Fields(string(out))[0]; TreeDigest(files) != want {
		t.Fatalf("TreeDigest %s, sha256sum pipeline %s", TreeDigest(files), want)
	}
}

func TestSymlinkRefused(t *testing.T) {
	root := t.TempDir()
	write(t, root, "real", "x")
	os.Symlink("real", filepath.Join(root, "link"))
	if _, err := List(root, Options{}); !errors.Is(err, ErrNotRegular) {
		t.Fatalf("symlink: %v", err)
	}
}

func TestTooManyFiles(t *testing.T) {
	root := t.TempDir()
	for _, n := range []string{"a", "b", "c"} {
		write(t, root, n, n)
	}
	if _, err := List(root, Options{MaxFiles: 2}); err == nil || !strings.Contains(err.Error(), "more than 2 files") {
		t.Fatalf("got %v", err)
	}
}

func TestCleanName(t *testing.T) {
	for _, bad := range []string{"", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a\\b", "a\x00b"} {
		if _, err := CleanName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := CleanName("shards/model-00001.safetensors"); err != nil {
		t.Error(err)
	}
}

func FuzzCleanName(f *testing.F) {
	f.Add("a/b")
	f.Add("../x")
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := CleanName(s); err == nil {
			if filepath.IsAbs(n) || strings.Contains("/"+n+"/", "/../") {
				t.Fatalf("%q accepted", s)
			}
		}
	})
}
