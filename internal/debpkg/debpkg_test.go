package debpkg_test

import (
	"archive/tar"
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/mlenv/mlenv/internal/debpkg"
	"github.com/mlenv/mlenv/internal/testutil"
)

func sample(comp string) []byte {
	return testutil.Deb{Package: "pk", Version: "1.0-2", Arch: "amd64", Depends: "libc6 (>= 2.36)", Compression: comp,
		Files: []testutil.TarEntry{{Name: "./usr/", Type: tar.TypeDir}, {Name: "./usr/x", Body: "x"}}}.Bytes()
}

func TestReadControlAndData(t *testing.T) {
	for _, comp := range []string{"gz", "xz", "zst"} {
		b := sample(comp)
		c, d, err := debpkg.ReadControl(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatalf("%s: %v", comp, err)
		}
		if c.Package() != "pk" || c.Version() != "1.0-2" || c.Architecture() != "amd64" || c.Get("depends") != "libc6 (>= 2.36)" {
			t.Errorf("%s: control %+v", comp, c)
		}
		if !strings.Contains(c.Get("Description"), "\n generated") {
			t.Errorf("continuation line lost: %q", c.Get("Description"))
		}
		tr, closer, err := d.Data()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, h.Name)
		}
		closer.Close()
		if strings.Join(names, ",") != "./usr/,./usr/x" {
			t.Errorf("%s: data %v", comp, names)
		}
	}
}

func TestRejectsBrokenPackages(t *testing.T) {
	good := sample("gz")
	cases := map[string][]byte{
		"not ar":     []byte("PK\x03\x04 this is a zip"),
		"truncated":  good[:len(good)-40],
		"no control": testutil.Ar([]testutil.ArMember{{Name: "debian-binary", Body: []byte("2.0\n")}}),
		"bad header": append([]byte("!<arch>\n"), bytes.Repeat([]byte("x"), 60)...),
	}
	for name, b := range cases {
		if _, _, err := debpkg.ReadControl(bytes.NewReader(b), int64(len(b))); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := debpkg.ParseControl([]byte("Package: a\nVersion: 1\n")); err == nil || !strings.Contains(err.Error(), "Architecture") {
		t.Errorf("missing field not named: %v", err)
	}
}

func FuzzDeb(f *testing.F) {
	f.Add(sample("gz"))
	f.Add(sample("xz"))
	f.Add(sample("zst"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, d, err := debpkg.ReadControl(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		tr, closer, err := d.Data()
		if err != nil {
			return
		}
		defer closer.Close()
		for i := 0; i < 1000; i++ {
			if _, err := tr.Next(); err != nil {
				return
			}
		}
	})
}
