package dep5

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// A license expression in DEP-5 is short names joined by "and" and "or"
// (case-insensitive); "and" binds tighter than "or", and a comma before
// the operator makes it bind loosest: "A or B, and C" is (A or B) and C.
// "X with Y exception" names X with an exception; it is kept as one name.

// leaf is one license: its Debian short name and SPDX id.
type leaf struct {
	debian, id string
	ref        bool // id is a LicenseRef- made from the Debian name
}

// node is a leaf (op == "") or an AND/OR of its kids.
type node struct {
	op   string
	kids []node
	leaf leaf
}

// render writes n as SPDX; an operand whose operator differs from its
// parent's is put in parentheses. top says n has no parent.
func (n node) render(top bool) string {
	if n.op == "" {
		return n.leaf.id
	}
	if len(n.kids) == 1 {
		return n.kids[0].render(top)
	}
	parts := make([]string, len(n.kids))
	for i, k := range n.kids {
		s := k.render(false)
		if k.op != "" && len(k.kids) > 1 && k.op != n.op {
			s = "(" + s + ")"
		}
		parts[i] = s
	}
	return strings.Join(parts, " "+n.op+" ")
}

func (n node) walk(f func(leaf)) {
	if n.op == "" {
		f(n.leaf)
	}
	for _, k := range n.kids {
		k.walk(f)
	}
}

// join makes op(a, b), flattening operands that have the same operator.
func join(op string, a, b node) node {
	out := node{op: op}
	for _, x := range []node{a, b} {
		if x.op == op {
			out.kids = append(out.kids, x.kids...)
		} else {
			out.kids = append(out.kids, x)
		}
	}
	return out
}

var errEmpty = errors.New("empty license name")

// maxWords bounds the words of one License field. Real fields name a
// handful of licenses; a field of 300,000 comma-separated names (within
// MaxSize) made parseExpr copy its operand list at every comma, for
// minutes.
const maxWords = 1024

// parseExpr parses a License field's first line.
func parseExpr(s string) (node, error) {
	words := strings.Fields(s)
	if len(words) == 0 {
		return node{}, errEmpty
	}
	if len(words) > maxWords {
		return node{}, fmt.Errorf("%d words, more than the %d a real license expression could have", len(words), maxWords)
	}
	// Split at commas: each group after the first starts with its operator.
	var groups [][]string
	cur := []string{}
	for _, w := range words {
		comma := strings.HasSuffix(w, ",")
		if w = strings.TrimSuffix(w, ","); w != "" {
			cur = append(cur, w)
		}
		if comma {
			groups = append(groups, cur)
			cur = []string{}
		}
	}
	groups = append(groups, cur)
	result, err := parseOr(groups[0])
	if err != nil {
		return node{}, err
	}
	for _, g := range groups[1:] {
		if len(g) == 0 {
			return node{}, errors.New("nothing after a comma")
		}
		op := strings.ToUpper(g[0])
		if op != "AND" && op != "OR" {
			// "A, B" lists licenses like "A and B" would.
			op, g = "AND", append([]string{"and"}, g...)
		}
		rest, err := parseOr(g[1:])
		if err != nil {
			return node{}, err
		}
		result = join(op, result, rest)
	}
	return result, nil
}

// parseOr parses words without commas: or-separated and-groups.
func parseOr(words []string) (node, error) {
	var alts []node
	for _, part := range splitWord(words, "or") {
		var all []node
		for _, name := range splitWord(part, "and") {
			if len(name) == 0 {
				return node{}, errEmpty
			}
			all = append(all, node{leaf: toSPDX(strings.Join(name, " "))})
		}
		if len(all) == 1 {
			alts = append(alts, all[0])
		} else {
			alts = append(alts, node{op: "AND", kids: all})
		}
	}
	if len(alts) == 1 {
		return alts[0], nil
	}
	return node{op: "OR", kids: alts}, nil
}

func splitWord(words []string, sep string) [][]string {
	out := [][]string{{}}
	for _, w := range words {
		if strings.EqualFold(w, sep) {
			out = append(out, []string{})
			continue
		}
		out[len(out)-1] = append(out[len(out)-1], w)
	}
	return out
}

// spdxIDs maps Debian short names (lower case) that are not GNU licenses
// to SPDX identifiers. Names from the DEP-5 spec's list and those common
// in Debian images.
var spdxIDs = map[string]string{
	"apache-1.0": "Apache-1.0", "apache-1.1": "Apache-1.1", "apache-2.0": "Apache-2.0", "apache-2": "Apache-2.0",
	"artistic": "Artistic-1.0", "artistic-1.0": "Artistic-1.0", "artistic-2.0": "Artistic-2.0",
	"bsd-2-clause": "BSD-2-Clause", "bsd-3-clause": "BSD-3-Clause", "bsd-4-clause": "BSD-4-Clause",
	"0bsd": "0BSD", "isc": "ISC", "expat": "MIT", "mit": "MIT", "x11": "X11",
	"zlib": "Zlib", "libpng": "Libpng", "libpng-2.0": "libpng-2.0", "bzip2-1.0.6": "bzip2-1.0.6",
	"cc0": "CC0-1.0", "cc0-1.0": "CC0-1.0", "cc-by-3.0": "CC-BY-3.0", "cc-by-4.0": "CC-BY-4.0",
	"cc-by-sa-3.0": "CC-BY-SA-3.0", "cc-by-sa-4.0": "CC-BY-SA-4.0",
	"mpl-1.1": "MPL-1.1", "mpl-2.0": "MPL-2.0", "epl-1.0": "EPL-1.0", "epl-2.0": "EPL-2.0",
	"cddl-1.0": "CDDL-1.0", "boost": "BSL-1.0", "bsl-1.0": "BSL-1.0", "bsl": "BSL-1.0",
	"psf-2": "PSF-2.0", "psf-2.0": "PSF-2.0", "python-2.0": "Python-2.0", "python": "Python-2.0",
	"openssl": "OpenSSL", "curl": "curl", "ftl": "FTL", "ofl-1.1": "OFL-1.1", "unlicense": "Unlicense",
	"wtfpl": "WTFPL", "unicode-dfs-2016": "Unicode-DFS-2016", "w3c": "W3C", "zope-2.1": "ZPL-2.1",
	"zpl-2.1": "ZPL-2.1", "lppl-1.3c": "LPPL-1.3c", "gpl-2.0-with-classpath-exception": "GPL-2.0-with-classpath-exception",
}

// gnuRe matches the GNU family: GPL-2, GPL-2+, LGPL-2.1+, AGPL-3, GFDL-1.3.
var gnuRe = regexp.MustCompile(`(?i)^(a?gpl|lgpl|gfdl)(?:-(\d+(?:\.\d+)?))?(\+)?$`)

var refUnsafe = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

// toSPDX maps one Debian short name to an SPDX id, or a LicenseRef.
func toSPDX(name string) leaf {
	if id, ok := spdxIDs[strings.ToLower(name)]; ok {
		return leaf{debian: name, id: id}
	}
	if m := gnuRe.FindStringSubmatch(name); m != nil {
		fam := strings.ToUpper(m[1])
		ver, later := m[2], m[3] == "+"
		if ver == "" {
			// "GPL" without a version means any version.
			ver, later = "1", true
			if fam == "LGPL" {
				ver = "2"
			}
			if fam == "AGPL" {
				ver = "3"
			}
			if fam == "GFDL" {
				ver = "1.1"
			}
		}
		if !strings.Contains(ver, ".") {
			ver += ".0"
		}
		suffix := "-only"
		if later {
			suffix = "-or-later"
		}
		return leaf{debian: name, id: fam + "-" + ver + suffix}
	}
	s := strings.Trim(refUnsafe.ReplaceAllString(strings.ReplaceAll(name, "+", "-plus"), "-"), "-")
	if s == "" {
		s = "unnamed"
	}
	return leaf{debian: name, id: "LicenseRef-" + s, ref: true}
}
