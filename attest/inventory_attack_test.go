package attest

import (
	"archive/tar"
	"fmt"
	"strings"
	"testing"
	"time"
)

const dep5File = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: MIT\n"

// An image of 100,000 packages' copyright files followed by a layer of
// 100,000 whiteouts: each whiteout was compared with every path read so
// far (1e10 comparisons, each allocating). Whiteouts must cost about
// their own number, and still remove what they name.
func TestInventoryWhiteoutsOfManyFilesAreQuick(t *testing.T) {
	const n = 100000
	v := NewInventoryVisitor()
	start := time.Now()
	for i := range n {
		name := fmt.Sprintf("usr/share/doc/pkg%06d/copyright", i)
		if _, err := v.Visit(0, name, &tar.Header{Typeflag: tar.TypeReg, Size: int64(len(dep5File))}, strings.NewReader(dep5File)); err != nil {
			t.Fatal(err)
		}
	}
	status := "Package: pkg000001\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n\nPackage: pkg099999\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n"
	v.Visit(0, "var/lib/dpkg/status", &tar.Header{Typeflag: tar.TypeReg, Size: int64(len(status))}, strings.NewReader(status))
	t.Logf("%d copyright files read in %s", n, time.Since(start))
	start = time.Now()
	for i := range n - 1 {
		name := fmt.Sprintf("usr/share/doc/.wh.pkg%06d", i)
		v.Visit(1, name, &tar.Header{Typeflag: tar.TypeReg}, nil)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("%d whiteouts took %s", n-1, d)
	} else {
		t.Logf("%d whiteouts took %s", n-1, d)
	}
	inv := v.Inventory()
	for _, p := range inv.Packages {
		if p.Name == "pkg000001" && p.LicenseIsSPDX {
			t.Error("the whited-out copyright file of pkg000001 still gives its license")
		}
		if p.Name == "pkg099999" && p.License != "MIT" {
			t.Errorf("pkg099999's license %q, want MIT", p.License)
		}
	}
}
