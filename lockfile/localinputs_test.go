package lockfile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlenv/mlenv/internal/localpath"
	"github.com/mlenv/mlenv/internal/testutil"
)

// Local inputs named by the intent must lie inside its folder: a hostile
// or mistyped intent cannot pull host files into a lock (and so an image),
// nor learn their size from an error, nor hang on a device.
func TestLockKeepsLocalInputsInsideTheProject(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret.whl")
	os.WriteFile(secret, []byte(strings.Repeat("s", 12345)), 0o644)
	os.MkdirAll(filepath.Join(outside, "etc-ssl"), 0o755)
	os.WriteFile(filepath.Join(outside, "etc-ssl", "ca.pem"), []byte("CA"), 0o644)
	w := testutil.Wheel{Name: "dep", Version: "1.0", Files: map[string]string{"dep.py": ""}}
	os.WriteFile(filepath.Join(outside, w.Filename()), w.Bytes(), 0o644)

	cases := []struct {
		name, intent string
		link         string // a symlink in the project, to outside
	}{
		{"files src climbing out", "base: scratch\nfiles: [{src: ../../" + filepath.Base(filepath.Dir(outside)) + "/" + filepath.Base(outside) + "/etc-ssl, dst: /etc/ssl}]\n", ""},
		{"files src absolute", "base: scratch\nfiles: [{src: " + filepath.Join(outside, "etc-ssl") + ", dst: /etc/ssl}]\n", ""},
		{"files src through a symlink", "base: scratch\nfiles: [{src: ssl, dst: /etc/ssl}]\n", "ssl"},
		{"deb path outside", "base: scratch\ndebs: [{path: " + secret + "}]\n", ""},
		{"deb path is a device", "base: scratch\ndebs: [{path: /dev/zero}]\n", ""},
		{"wheel path outside", "base: scratch\npython: {version: \"3.11\", wheels: [{path: " + filepath.Join(outside, w.Filename()) + "}]}\n", ""},
		{"requirements outside", "base: scratch\npython: {version: \"3.11\", requirements: " + secret + ", index-url: \"https://example.invalid/simple\"}\n", ""},
		{"find-links outside", "base: scratch\npython: {version: \"3.11\", requirements: req.txt, find-links: [" + outside + "]}\n", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			files := map[string][]byte{"req.txt": []byte("dep==1.0 --hash=sha256:" + sha(w.Bytes()) + "\n")}
			in := project(t, c.intent, files)
			if c.link != "" {
				if err := os.Symlink(filepath.Join(outside, "etc-ssl"), filepath.Join(in.Dir, c.link)); err != nil {
					t.Fatal(err)
				}
			}
			_, err := (&Resolver{}).Resolve(context.Background(), in)
			if err == nil {
				t.Fatal("an input outside the project was locked")
			}
			msg := err.Error()
			if c.name == "deb path is a device" {
				if !strings.Contains(msg, "outside the project") && !strings.Contains(msg, "not a regular file") {
					t.Errorf("message: %v", err)
				}
				return
			}
			if !errors.Is(err, localpath.ErrOutside) && !strings.Contains(msg, "outside the project") {
				t.Errorf("error does not say the input is outside the project: %v", err)
			}
			if strings.Contains(msg, "12345") || strings.Contains(msg, "CA") {
				t.Errorf("error leaks details of the outside file: %v", err)
			}
		})
	}
}

func TestLockAllowOutsideOptsIn(t *testing.T) {
	outside := t.TempDir()
	os.MkdirAll(filepath.Join(outside, "app"), 0o755)
	os.WriteFile(filepath.Join(outside, "app", "main.py"), []byte("print(1)\n"), 0o644)
	in := project(t, "base: scratch\nfiles: [{src: "+filepath.Join(outside, "app")+", dst: /app}]\n", nil)
	if _, err := (&Resolver{}).Resolve(context.Background(), in); err == nil {
		t.Fatal("outside folder locked without the opt-in")
	}
	l, err := (&Resolver{AllowOutside: []string{outside}}).Resolve(context.Background(), in)
	if err != nil {
		t.Fatalf("with --allow-outside: %v", err)
	}
	if len(l.Files) != 1 || l.Files[0].Files != 1 {
		t.Errorf("files: %+v", l.Files)
	}
}
