// Package dep5 reads Debian's machine-readable copyright files
// (/usr/share/doc/<package>/copyright, format "DEP-5",
// https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/) into
// one SPDX license expression per package.
//
// What a package is licensed under is the conjunction of the License
// fields of its Files paragraphs (each covers some of its files); the
// header's License field is used only when there is no Files paragraph.
// Debian short names are mapped to SPDX identifiers where a well-known
// mapping exists (GPL-2+ is GPL-2.0-or-later, Expat is MIT, ...); any
// other name becomes a LicenseRef-<name> whose text, when the file gives
// one, is returned so that the SPDX document can carry it in
// hasExtractedLicensingInfos.
package dep5

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// MaxSize is the largest copyright file Parse accepts. Real ones are a
// few KiB, the largest in Debian a few hundred; a larger one is not read.
const MaxSize = 1 << 20

// ErrNotMachineReadable says that the file is a free-text copyright file
// (no DEP-5 Format header): its license cannot be told reliably.
var ErrNotMachineReadable = errors.New("not a machine-readable (DEP-5) copyright file")

// License is what a copyright file says about its package's license.
type License struct {
	// Expression is an SPDX license expression, e.g.
	// "MIT AND (GPL-2.0-or-later OR Artistic-1.0)".
	Expression string
	// Texts are the license texts of the LicenseRef- identifiers used in
	// Expression, keyed by identifier; every LicenseRef has an entry
	// (a note saying the file gave no text when it did not).
	Texts map[string]string
}

// Parse reads a DEP-5 copyright file. A file without a Format header that
// names the copyright format gives ErrNotMachineReadable; a machine-readable
// one that breaks the syntax, or has no License field, gives an error
// saying what is wrong.
func Parse(b []byte) (License, error) {
	if len(b) > MaxSize {
		return License{}, fmt.Errorf("copyright file of %d bytes is over the %d-byte limit", len(b), MaxSize)
	}
	// A free-text file is told apart before its syntax is judged: only
	// a file that says it is machine-readable can be malformed.
	first, _, _ := strings.Cut(strings.TrimLeft(string(b), " \t\r\n"), "\n")
	if name, value, _ := strings.Cut(first, ":"); !strings.EqualFold(name, "Format") || !isFormatURL(value) {
		return License{}, ErrNotMachineReadable
	}
	paras, err := paragraphs(b)
	if err != nil {
		return License{}, err
	}
	// Stand-alone License paragraphs (and Files paragraphs with a text)
	// give the text of a short name.
	texts := map[string]string{}
	var exprs []string
	for i, p := range paras {
		lic, ok := p.lookup("License")
		if !ok {
			continue
		}
		name, text, _ := strings.Cut(lic, "\n")
		name = strings.TrimSpace(name)
		if text = strings.TrimSpace(text); text != "" && name != "" {
			if _, seen := texts[strings.ToLower(name)]; !seen {
				texts[strings.ToLower(name)] = unfold(text)
			}
		}
		if _, isFiles := p.lookup("Files"); isFiles {
			if name == "" {
				return License{}, fmt.Errorf("paragraph %d: Files paragraph with an empty License field", i+1)
			}
			exprs = append(exprs, name)
		}
	}
	if len(exprs) == 0 {
		if name, _, _ := strings.Cut(paras[0].get("License"), "\n"); strings.TrimSpace(name) != "" {
			exprs = append(exprs, strings.TrimSpace(name))
		} else {
			return License{}, errors.New("machine-readable copyright file with no License field")
		}
	}
	out := License{Texts: map[string]string{}}
	// Each term with its rendering, which is both the duplicate check
	// and the sort key: rendered once, not at every comparison.
	type term struct {
		s string
		n node
	}
	var terms []term
	seen := map[string]bool{}
	for _, e := range exprs {
		n, err := parseExpr(e)
		if err != nil {
			return License{}, fmt.Errorf("License %.80q: %w", e, err)
		}
		// The package's license is the conjunction of every paragraph's;
		// a license that several paragraphs name is said once.
		conj := []node{n}
		if n.op == "AND" {
			conj = n.kids
		}
		for _, c := range conj {
			if s := c.render(true); !seen[s] {
				seen[s] = true
				terms = append(terms, term{s, c})
			}
		}
		n.walk(func(l leaf) {
			if l.ref {
				t, ok := texts[strings.ToLower(l.debian)]
				if !ok {
					t = fmt.Sprintf("The package's copyright file names the license %q without giving its text.", l.debian)
				}
				out.Texts[l.id] = t
			}
		})
	}
	sort.Slice(terms, func(i, j int) bool { return terms[i].s < terms[j].s })
	kids := make([]node, len(terms))
	for i, t := range terms {
		kids[i] = t.n
	}
	out.Expression = node{op: "AND", kids: kids}.render(false)
	return out, nil
}

// isFormatURL accepts the URLs Debian has used for the format over time
// (the 1.0 URL, with http or https, and the older DEP-5 drafts').
func isFormatURL(s string) bool {
	s = strings.ToLower(strings.TrimSpace(s))
	return strings.Contains(s, "copyright-format") || strings.Contains(s, "dep5") || strings.Contains(s, "dep-5")
}

// unfold turns deb822 continuation lines back into text: one leading
// space goes, a lone "." is an empty line.
func unfold(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		l = strings.TrimSpace(l)
		if l == "." {
			l = ""
		}
		lines[i] = l
	}
	return strings.Join(lines, "\n")
}

type field struct{ name, value string }

type paragraph []field

func (p paragraph) lookup(name string) (string, bool) {
	for _, f := range p {
		if strings.EqualFold(f.name, name) {
			return f.value, true
		}
	}
	return "", false
}

func (p paragraph) get(name string) string { v, _ := p.lookup(name); return v }

// paragraphs splits deb822 text into paragraphs of fields; a value's
// continuation lines are kept after a "\n".
func paragraphs(b []byte) ([]paragraph, error) {
	var out []paragraph
	var cur paragraph
	// A value's continuation lines are collected and joined once the
	// field ends: appending each to the value would copy it every line
	// (a 1 MiB field of 300,000 lines took 34 s).
	var cont []string
	endField := func() {
		if len(cont) > 0 {
			cur[len(cur)-1].value += "\n" + strings.Join(cont, "\n")
			cont = cont[:0]
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	// A buffer of the file's size (up to 64 KiB), not 64 KiB each time:
	// an image of 100,000 small copyright files allocated 6 GB.
	sc.Buffer(make([]byte, 0, min(len(b)+1, 64<<10)), MaxSize+1)
	n := 0
	for sc.Scan() {
		n++
		text := strings.TrimRight(sc.Text(), "\r")
		switch {
		case strings.TrimSpace(text) == "":
			endField()
			if len(cur) > 0 {
				out = append(out, cur)
				cur = nil
			}
		case text[0] == '#' && len(cur) == 0:
			// deb822 comment lines; tolerated between paragraphs.
		case text[0] == ' ' || text[0] == '\t':
			if len(cur) == 0 {
				return nil, fmt.Errorf("line %d: continuation line outside a field", n)
			}
			cont = append(cont, text)
		default:
			name, value, ok := strings.Cut(text, ":")
			if !ok || name == "" || strings.ContainsAny(name, " \t") {
				return nil, fmt.Errorf("line %d: expected \"Field: value\", got %.60q", n, text)
			}
			endField()
			cur = append(cur, field{name: name, value: strings.TrimSpace(value)})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", n+1, err)
	}
	endField()
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out, nil
}
