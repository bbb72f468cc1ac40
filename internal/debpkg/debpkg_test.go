package debpkg_test

import (
	"archive/tar"
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

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

// FuzzValidateControl: a paragraph that passes Validate yields names that
// are safe as one path component under /var/lib/dpkg.
func FuzzValidateControl(f *testing.F) {
	f.Add([]byte("Package: libc6\nVersion: 1:2.36-9+deb12u4\nArchitecture: amd64\n"))
	f.Add([]byte("Package: ../../x\nVersion: 1\nArchitecture: all\n"))
	f.Add([]byte("Package: a\n b\nVersion: 1.0~rc1-1\nArchitecture: all\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := debpkg.ParseControl(b)
		if err != nil || c.Validate() != nil {
			return
		}
		for _, v := range []string{c.Package(), c.Version(), c.Architecture()} {
			if v == "" || v == "." || v == ".." || strings.ContainsAny(v, "/\\\n\r\x00 ") {
				t.Fatalf("accepted %q", v)
			}
		}
	})
}

func TestValidateFollowsPolicy(t *testing.T) {
	good := []string{"1", "1.0-1", "1:2.36-9+deb12u4", "2.0~rc1", "1.2-3-4"}
	bad := []string{"", "a1", "1:", ":1", "1-", "1/2", "1 2", "1-a/b", "x:1"}
	for _, v := range good {
		if err := debpkg.ValidVersion(v); err != nil {
			t.Errorf("%q refused: %v", v, err)
		}
	}
	for _, v := range bad {
		if debpkg.ValidVersion(v) == nil {
			t.Errorf("%q accepted", v)
		}
	}
	if debpkg.ValidPackageName("libstdc++6") != nil || debpkg.ValidPackageName("a") == nil || debpkg.ValidPackageName("A1") == nil {
		t.Error("package name rule is wrong")
	}
}

// A control file of 350,000 continuation lines (1 MiB; a kept control
// member may be 16 MiB) took over two minutes when each line was
// appended to the value by copying it.
func TestLongContinuationEndsQuickly(t *testing.T) {
	b := "Package: p\nVersion: 1\nArchitecture: all\nDescription: x\n" + strings.Repeat(" x\n", 350000)
	done := make(chan error, 1)
	var c debpkg.Control
	go func() { var err error; c, err = debpkg.ParseControl([]byte(b)); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Get("Description"); got != "x"+strings.Repeat("\n x", 350000) {
			t.Fatalf("Description has %d bytes", len(got))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ParseControl of 1 MiB of continuation lines took over 5 s")
	}
}
