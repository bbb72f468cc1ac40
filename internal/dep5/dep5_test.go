package dep5

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

const header = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nUpstream-Name: x\n\n"

func TestMachineReadable(t *testing.T) {
	cases := []struct {
		name, file, want string
		refs             map[string]string // LicenseRef -> text substring
	}{
		{"one files paragraph", header + "Files: *\nCopyright: 2020 A\nLicense: Expat\n", "MIT", nil},
		{"several paragraphs, sorted and said once",
			header + "Files: *\nLicense: Zlib\n\nFiles: debian/*\nLicense: GPL-2+\n\nFiles: contrib/*\nLicense: Zlib\n",
			"GPL-2.0-or-later AND Zlib", nil},
		{"or binds looser than and", header + "Files: *\nLicense: GPL-2+ or Artistic and BSD-3-clause\n",
			"GPL-2.0-or-later OR (Artistic-1.0 AND BSD-3-Clause)", nil},
		{"a comma makes the operator loosest", header + "Files: *\nLicense: GPL-1+ or Artistic, and BSD-3-clause\n",
			"BSD-3-Clause AND (GPL-1.0-or-later OR Artistic-1.0)", nil},
		{"and-ed paragraphs flatten", header + "Files: *\nLicense: MIT and Zlib\n\nFiles: b\nLicense: Zlib\n", "MIT AND Zlib", nil},
		{"GNU versions", header + "Files: a\nLicense: LGPL-2.1\n\nFiles: b\nLicense: GPL-3\n\nFiles: c\nLicense: AGPL-3+\n",
			"AGPL-3.0-or-later AND GPL-3.0-only AND LGPL-2.1-only", nil},
		{"unknown name with its text in a stand-alone paragraph",
			header + "Files: *\nLicense: public-domain\n\nLicense: public-domain\n The author disclaims copyright.\n .\n Do as you like.\n",
			"LicenseRef-public-domain", map[string]string{"LicenseRef-public-domain": "The author disclaims copyright.\n\nDo as you like."}},
		{"unknown name without text", header + "Files: *\nLicense: Foo Bar+\n",
			"LicenseRef-Foo-Bar-plus", map[string]string{"LicenseRef-Foo-Bar-plus": `"Foo Bar+" without giving its text`}},
		{"exception kept as one name", header + "Files: *\nLicense: GPL-2+ with OpenSSL exception\n",
			"LicenseRef-GPL-2-plus-with-OpenSSL-exception", map[string]string{"LicenseRef-GPL-2-plus-with-OpenSSL-exception": "without giving"}},
		{"header license when no Files paragraph", header[:len(header)-1] + "License: ISC\n", "ISC", nil},
		{"old DEP-5 format URL, CRLF line ends", strings.ReplaceAll("Format: http://svn.debian.org/wsvn/dep/web/deps/dep5.mdwn?op=file&rev=174\n\nFiles: *\nLicense: Apache-2.0\n", "\n", "\r\n"), "Apache-2.0", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l, err := Parse([]byte(c.file))
			if err != nil {
				t.Fatal(err)
			}
			if l.Expression != c.want {
				t.Errorf("expression %q, want %q", l.Expression, c.want)
			}
			if len(l.Texts) != len(c.refs) {
				t.Errorf("texts %q, want refs %v", l.Texts, c.refs)
			}
			for id, sub := range c.refs {
				if !strings.Contains(l.Texts[id], sub) {
					t.Errorf("text of %s is %q, want it to contain %q", id, l.Texts[id], sub)
				}
			}
		})
	}
}

func TestNotMachineReadable(t *testing.T) {
	for _, f := range []string{
		"This package was debianized by A on Mon.\n\nCopyright: 1999 B\nLicense: GPL\n",
		"Format: some other format\n\nFiles: *\nLicense: MIT\n",
		"",
	} {
		if _, err := Parse([]byte(f)); !errors.Is(err, ErrNotMachineReadable) {
			t.Errorf("%.30q: %v, want ErrNotMachineReadable", f, err)
		}
	}
}

func TestMalformedSaysWhat(t *testing.T) {
	cases := map[string]string{
		header + "Files: *\nLicense:\n":                  "empty License",
		header + "Files: *\nthis is not a field\n":       "line 5",
		header + " stray\n":                              "line 4: continuation",
		header + "Files: *\nLicense: MIT or\n":           "empty license name",
		header + "Files: *\nLicense: MIT,\n":             "nothing after a comma",
		header + "Files: *\nCopyright: nobody\n":         "no License field",
		header + "Files: *\nLicense: MIT and and Zlib\n": "empty license name",
	}
	for f, want := range cases {
		_, err := Parse([]byte(f))
		if err == nil || errors.Is(err, ErrNotMachineReadable) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error saying %q", f, err, want)
		}
	}
}

func TestOversizedIsRefused(t *testing.T) {
	b := []byte(header + "Files: *\nLicense: MIT\n Text\n" + strings.Repeat(" x\n", MaxSize/3))
	if _, err := Parse(b); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("a %d-byte file: %v", len(b), err)
	}
}

// Every expression Parse makes is balanced and uses only SPDX id
// characters, operators and parentheses, whatever the input.
func FuzzParse(f *testing.F) {
	f.Add([]byte(header + "Files: *\nLicense: GPL-2+ or Artistic, and BSD-3-clause\n\nLicense: Artistic\n text\n"))
	f.Add([]byte(header + "Files: *\nLicense: weird (name) with; chars\n"))
	f.Add([]byte("Format: dep5\n\nFiles: a\nLicense: a, or b and c or d, and e\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := Parse(b)
		if err != nil {
			return
		}
		depth := 0
		for _, tok := range strings.Fields(l.Expression) {
			for strings.HasPrefix(tok, "(") {
				depth++
				tok = tok[1:]
			}
			for strings.HasSuffix(tok, ")") {
				depth--
				tok = tok[:len(tok)-1]
			}
			if depth < 0 {
				t.Fatalf("unbalanced %q", l.Expression)
			}
			if tok == "AND" || tok == "OR" {
				continue
			}
			if id := strings.TrimPrefix(tok, "LicenseRef-"); id == "" || refUnsafe.MatchString(id) {
				t.Fatalf("bad id %q in %q", tok, l.Expression)
			}
			if strings.HasPrefix(tok, "LicenseRef-") {
				if _, ok := l.Texts[tok]; !ok {
					t.Fatalf("%s has no text (%q)", tok, l.Expression)
				}
			}
		}
		if depth != 0 {
			t.Fatalf("unbalanced %q", l.Expression)
		}
		_ = fmt.Sprint(l)
	})
}

// Hostile files within MaxSize: a field of 300,000 continuation lines
// (each appended to the value by copying it: quadratic, 34 s) and a
// License field of 300,000 comma-separated names (each comma group copied
// the operand list: did not end in 5 minutes). Both must end in well
// under a second; the names are refused, saying why.
func TestHostileShapesEndQuickly(t *testing.T) {
	long := header + "Files: *\nLicense: MIT\n" + strings.Repeat(" x\n", 300000)
	commas := header + "Files: *\nLicense: " + strings.Repeat("a, ", 300000) + "\n"
	mixed := header + "Files: *\nLicense: " + strings.Repeat("a, or b, and ", 70000) + "c\n"
	for name, c := range map[string]struct {
		file    string
		wantErr string
	}{
		"continuation lines": {long, ""},
		"comma names":        {commas, "300000 words"},
		"nested comma names": {mixed, "280001 words"},
	} {
		t.Run(name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() { _, err := Parse([]byte(c.file)); done <- err }()
			select {
			case err := <-done:
				if c.wantErr == "" && err != nil {
					t.Fatal(err)
				}
				if c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
					t.Fatalf("error %v, want one containing %q", err, c.wantErr)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Parse of a hostile 1 MiB file took over 5 s")
			}
		})
	}
}
