package builder

import (
	"archive/zip"
	"bytes"
	"testing"

	"github.com/mlenv/mlenv/internal/testutil"
	"github.com/mlenv/mlenv/lockfile"
)

// FuzzInstallWheel feeds arbitrary zips to the wheel installer: it must
// refuse or install, never panic, and never place a file outside the root.
func FuzzInstallWheel(f *testing.F) {
	f.Add(helloWheel.Bytes())
	f.Add(testutil.Zip([]testutil.ZipEntry{{Name: "../x", Body: []byte("x")}}))
	lay := layoutFor(&lockfile.Python{Version: "3.11", Prefix: "/usr/local", SitePackages: "/usr/local/lib/python3.11/site-packages", Interpreter: "/usr/local/bin/python3.11"})
	w := lockfile.Wheel{Name: "hello", Version: "1.0", Filename: helloWheel.Filename()}
	f.Fuzz(func(t *testing.T, b []byte) {
		zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		tr := newTree()
		if err := installWheel(tr, zr, w, lay); err != nil {
			return
		}
		for p := range tr.entries {
			if _, err := cleanPath("fuzz", p); err != nil || p != "" && p[0] == '/' {
				t.Fatalf("installed path %q escapes", p)
			}
		}
	})
}

// FuzzParseEntryPoints: every script it accepts has a name that is one
// plain path component and a target that cannot break out of the import
// line of the generated launcher.
func FuzzParseEntryPoints(f *testing.F) {
	f.Add([]byte("[console_scripts]\nhello = hello:main\n[gui_scripts]\ng = a.b:c.d [extra]\n"))
	f.Add([]byte("[console_scripts]\nevil = os import system as _s;_s('id');from os:path\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		eps, err := parseEntryPoints("fuzz", b)
		if err != nil {
			return
		}
		for _, ep := range eps {
			if _, err := composedPath("fuzz", "usr/bin/"+ep.name); err != nil {
				t.Fatalf("script name %q accepted: %v", ep.name, err)
			}
			if !dottedIdentRe.MatchString(ep.module) || !dottedIdentRe.MatchString(ep.attr) {
				t.Fatalf("target %q:%q accepted", ep.module, ep.attr)
			}
		}
	})
}
