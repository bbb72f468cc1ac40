package treehash

import (
	"os"
	"path/filepath"
	"testing"
)

func tree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "a", "b"), 0o700)
	os.WriteFile(filepath.Join(dir, "a", "b", "run.sh"), []byte("#!/bin/sh\n"), 0o700)
	os.WriteFile(filepath.Join(dir, "a", "data.txt"), []byte("x"), 0o600)
	os.Symlink("data.txt", filepath.Join(dir, "a", "link"))
	return dir
}

func TestHashIgnoresUmaskAndPermissionsBeyondExec(t *testing.T) {
	d1 := tree(t)
	d2 := tree(t)
	// Other permission bits than "executable" do not matter...
	os.Chmod(filepath.Join(d2, "a", "data.txt"), 0o664)
	os.Chmod(filepath.Join(d2, "a", "b", "run.sh"), 0o755)
	os.Chmod(filepath.Join(d2, "a"), 0o777)
	h1, size, files, err := Hash(d1)
	if err != nil {
		t.Fatal(err)
	}
	h2, _, _, _ := Hash(d2)
	if h1 != h2 || size != 11 || files != 2 {
		t.Errorf("%s vs %s, %d bytes, %d files", h1, h2, size, files)
	}
	// ...the executable bit, content and link targets do.
	os.Chmod(filepath.Join(d2, "a", "data.txt"), 0o755)
	if h, _, _, _ := Hash(d2); h == h1 {
		t.Error("exec bit ignored")
	}
	d3 := tree(t)
	os.Remove(filepath.Join(d3, "a", "link"))
	os.Symlink("elsewhere", filepath.Join(d3, "a", "link"))
	if h, _, _, _ := Hash(d3); h == h1 {
		t.Error("symlink target ignored")
	}
	entries, _ := Walk(d1)
	for _, e := range entries {
		want := map[byte]int64{'d': 0o755, 'f': 0o644, 'l': 0o777}[e.Kind]
		if e.Path == "a/b/run.sh" {
			want = 0o755
		}
		if e.Mode != want {
			t.Errorf("%s: mode %o, want %o", e.Path, e.Mode, want)
		}
	}
}

func TestChunksCoverEveryEntryAndAreStable(t *testing.T) {
	if ChunkCount(1) != 1 || ChunkCount(ChunkTarget+1) != 2 || ChunkCount(1<<40) != MaxChunks {
		t.Error("ChunkCount")
	}
	// Files of one folder share a bucket; adding a folder moves nothing.
	if Bucket("x/a.py", 7) != Bucket("x/b.py", 7) {
		t.Error("a folder was split")
	}
	if Bucket("top.py", 1) != 0 {
		t.Error("one chunk must be bucket 0")
	}
	for _, p := range []string{"a/1", "b/c/2", "d/3"} {
		if b := Bucket(p, 5); b < 0 || b >= 5 {
			t.Errorf("%s: bucket %d", p, b)
		}
	}
}
