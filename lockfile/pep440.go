package lockfile

// PEP 440 versions and version specifiers, as pypa/packaging implements
// them (the reference the conformance tests carry their vectors from:
// testdata/packaging/vectors.json). The one Go library on the module proxy
// for this, github.com/aquasecurity/go-pep440-version v0.0.1, fails those
// vectors (prefix matching "==1.0.0.*" against "1.0", pre-releases at the
// "<" boundary, "===" on strings that are not versions) and panics inside
// on some inputs, so the rules are written out here.

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Version is a parsed PEP 440 version.
type Version struct {
	Epoch   int
	Release []int
	// Pre is "a", "b" or "rc" with PreN; "" when not a pre-release.
	Pre  string
	PreN int
	// Post and Dev are -1 when absent.
	Post, Dev int
	// Local holds the local label's parts ("ubuntu", "1"); nil when absent.
	Local []string
}

// The PEP 440 (appendix B) regular expression, applied to the lowercased
// text; non-ASCII input is refused first so that case folding cannot turn
// "ſ" into "s" (packaging issue #469).
var versionRe = regexp.MustCompile(`^v?(?:([0-9]+)!)?([0-9]+(?:\.[0-9]+)*)` +
	`(?:[-_.]?(a|b|c|rc|alpha|beta|pre|preview)[-_.]?([0-9]+)?)?` +
	`(?:-([0-9]+)|[-_.]?(post|rev|r)[-_.]?([0-9]+)?)?` +
	`(?:[-_.]?(dev)[-_.]?([0-9]+)?)?` +
	`(?:\+([a-z0-9]+(?:[-_.][a-z0-9]+)*))?$`)

// maxVersionNumber bounds each number so that hostile input cannot
// overflow: no real version has a component this long.
const maxVersionDigits = 18

// ParseVersion parses a PEP 440 version (surrounding spaces allowed).
func ParseVersion(s string) (Version, error) {
	t := strings.TrimSpace(s)
	for i := 0; i < len(t); i++ {
		if t[i] >= 0x80 {
			return Version{}, fmt.Errorf("%q is not a PEP 440 version: non-ASCII character", s)
		}
	}
	m := versionRe.FindStringSubmatch(strings.ToLower(t))
	if m == nil {
		return Version{}, fmt.Errorf("%q is not a PEP 440 version", s)
	}
	num := func(x string) (int, error) {
		if x == "" {
			return 0, nil
		}
		if len(x) > maxVersionDigits {
			return 0, fmt.Errorf("%q is not a usable version: number %s is too long", s, x)
		}
		return strconv.Atoi(x)
	}
	var v Version
	var err error
	if v.Epoch, err = num(m[1]); err != nil {
		return Version{}, err
	}
	for _, p := range strings.Split(m[2], ".") {
		n, err := num(p)
		if err != nil {
			return Version{}, err
		}
		v.Release = append(v.Release, n)
	}
	if m[3] != "" {
		switch m[3] {
		case "alpha":
			v.Pre = "a"
		case "beta":
			v.Pre = "b"
		case "c", "pre", "preview":
			v.Pre = "rc"
		default:
			v.Pre = m[3]
		}
		if v.PreN, err = num(m[4]); err != nil {
			return Version{}, err
		}
	}
	v.Post, v.Dev = -1, -1
	switch {
	case m[5] != "":
		v.Post, err = num(m[5])
	case m[6] != "":
		v.Post, err = num(m[7])
	}
	if err != nil {
		return Version{}, err
	}
	if m[8] != "" {
		if v.Dev, err = num(m[9]); err != nil {
			return Version{}, err
		}
	}
	if m[10] != "" {
		v.Local = strings.FieldsFunc(m[10], func(r rune) bool { return r == '-' || r == '_' || r == '.' })
	}
	return v, nil
}

// IsPrerelease: a pre-release or a development release.
func (v Version) IsPrerelease() bool { return v.Pre != "" || v.Dev >= 0 }

// IsPostrelease reports a post-release segment.
func (v Version) IsPostrelease() bool { return v.Post >= 0 }

// String is the normalised form ("1.0rc1.post2.dev3+ubuntu.1").
func (v Version) String() string {
	var b strings.Builder
	b.WriteString(v.Public())
	if v.Local != nil {
		b.WriteString("+" + strings.Join(v.Local, "."))
	}
	return b.String()
}

// Public is the normalised version without its local label.
func (v Version) Public() string {
	var b strings.Builder
	b.WriteString(v.BaseVersion())
	if v.Pre != "" {
		b.WriteString(v.Pre + strconv.Itoa(v.PreN))
	}
	if v.Post >= 0 {
		b.WriteString(".post" + strconv.Itoa(v.Post))
	}
	if v.Dev >= 0 {
		b.WriteString(".dev" + strconv.Itoa(v.Dev))
	}
	return b.String()
}

// BaseVersion is the epoch and release alone.
func (v Version) BaseVersion() string {
	var b strings.Builder
	if v.Epoch != 0 {
		b.WriteString(strconv.Itoa(v.Epoch) + "!")
	}
	for i, n := range v.Release {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.Itoa(n))
	}
	return b.String()
}

func (v Version) withoutLocal() Version { v.Local = nil; return v }

func (v Version) base() Version {
	return Version{Epoch: v.Epoch, Release: v.Release, Post: -1, Dev: -1}
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Compare orders versions as PEP 440 (and packaging's _cmpkey) does:
// -1, 0 or 1.
func (v Version) Compare(o Version) int {
	if c := cmpInt(v.Epoch, o.Epoch); c != 0 {
		return c
	}
	// Trailing zeros do not count: 1.0 == 1.0.0.
	n := max(len(v.Release), len(o.Release))
	for i := 0; i < n; i++ {
		a, b := 0, 0
		if i < len(v.Release) {
			a = v.Release[i]
		}
		if i < len(o.Release) {
			b = o.Release[i]
		}
		if c := cmpInt(a, b); c != 0 {
			return c
		}
	}
	if c := cmpInt(v.preKey(), o.preKey()); c != 0 {
		return c
	}
	if v.Pre != "" && o.Pre != "" {
		if c := cmpInt(v.PreN, o.PreN); c != 0 {
			return c
		}
	}
	if c := cmpInt(v.Post, o.Post); c != 0 { // absent (-1) sorts first
		return c
	}
	if c := cmpInt(devKey(v.Dev), devKey(o.Dev)); c != 0 {
		return c
	}
	return compareLocal(v.Local, o.Local)
}

// preKey: a dev release of a final version sorts before its pre-releases;
// a final version after them.
func (v Version) preKey() int {
	switch {
	case v.Pre == "" && v.Post < 0 && v.Dev >= 0:
		return -1
	case v.Pre == "":
		return 4
	case v.Pre == "a":
		return 1
	case v.Pre == "b":
		return 2
	}
	return 3 // rc
}

// devKey: no dev segment sorts after every dev release.
func devKey(d int) int {
	if d < 0 {
		return int(^uint(0) >> 1)
	}
	return d
}

// compareLocal: no label sorts first; numeric parts sort after text parts
// and compare as numbers; a longer label with an equal prefix sorts last.
func compareLocal(a, b []string) int {
	if a == nil || b == nil {
		switch {
		case a == nil && b == nil:
			return 0
		case a == nil:
			return -1
		}
		return 1
	}
	for i := 0; i < len(a) && i < len(b); i++ {
		x, errx := strconv.Atoi(a[i])
		y, erry := strconv.Atoi(b[i])
		switch {
		case errx == nil && erry == nil:
			if c := cmpInt(x, y); c != 0 {
				return c
			}
		case errx == nil:
			return 1
		case erry == nil:
			return -1
		default:
			if c := strings.Compare(a[i], b[i]); c != 0 {
				return c
			}
		}
	}
	return cmpInt(len(a), len(b))
}

// Specifier is one PEP 440 version clause: an operator and a version.
type Specifier struct {
	Op      string // ~= == != <= >= < > ===
	Version string // as written, without ".*"
	// Prefix is set for "==X.*" and "!=X.*".
	Prefix bool
	v      Version // parsed Version (not for ===)
}

var specOps = []string{"===", "~=", "==", "!=", "<=", ">=", "<", ">"}

// ParseSpecifier parses one clause such as ">=3.11", "==3.11.*" or "~=2.2".
func ParseSpecifier(s string) (Specifier, error) {
	t := strings.TrimSpace(s)
	var sp Specifier
	for _, op := range specOps {
		if strings.HasPrefix(t, op) {
			sp.Op = op
			break
		}
	}
	if sp.Op == "" {
		return sp, fmt.Errorf("%q is not a version specifier: it must start with one of %s", s, strings.Join(specOps, " "))
	}
	rest := strings.TrimSpace(t[len(sp.Op):])
	if sp.Op == "===" {
		if rest == "" || strings.ContainsAny(rest, " \t\r\n;)") {
			return sp, fmt.Errorf("%q: === needs one word to compare", s)
		}
		sp.Version = rest
		return sp, nil
	}
	if (sp.Op == "==" || sp.Op == "!=") && strings.HasSuffix(rest, ".*") {
		sp.Prefix = true
		rest = strings.TrimSuffix(rest, ".*")
	}
	v, err := ParseVersion(rest)
	if err != nil || rest == "" || strings.ContainsAny(rest, " \t") {
		return sp, fmt.Errorf("%q is not a version specifier: %q is not a PEP 440 version", s, rest)
	}
	switch {
	case sp.Prefix && (v.Pre != "" || v.Post >= 0 || v.Dev >= 0 || v.Local != nil):
		return sp, fmt.Errorf("%q: a .* prefix match takes a release only (no pre, post, dev or local part)", s)
	case sp.Op == "~=" && len(v.Release) < 2:
		return sp, fmt.Errorf("%q: ~= needs at least two release numbers (~=2.2, not ~=2)", s)
	case sp.Op != "==" && sp.Op != "!=" && v.Local != nil:
		return sp, fmt.Errorf("%q: a local version (+label) is allowed with == and != only", s)
	}
	sp.Version, sp.v = rest, v
	return sp, nil
}

func (sp Specifier) String() string {
	if sp.Prefix {
		return sp.Op + sp.Version + ".*"
	}
	return sp.Op + sp.Version
}

// Contains reports whether the version (text) satisfies the clause.
// Pre-releases are accepted, as PEP 508 marker evaluation does.
func (sp Specifier) Contains(version string) bool {
	if sp.Op == "===" {
		return strings.EqualFold(strings.TrimSpace(version), sp.Version)
	}
	v, err := ParseVersion(version)
	if err != nil {
		return false
	}
	return sp.ContainsVersion(v)
}

// ContainsVersion is Contains for a parsed version.
func (sp Specifier) ContainsVersion(v Version) bool {
	s := sp.v
	switch sp.Op {
	case "===":
		return strings.EqualFold(v.String(), sp.Version)
	case "==":
		return sp.equal(v)
	case "!=":
		return !sp.equal(v)
	case "<=":
		return v.withoutLocal().Compare(s) <= 0
	case ">=":
		return v.withoutLocal().Compare(s) >= 0
	case "<":
		if v.Compare(s) >= 0 {
			return false
		}
		// <3.1 must not take 3.1.dev0 unless the clause names a pre-release.
		return s.IsPrerelease() || !v.IsPrerelease() || v.base().Compare(s.base()) != 0
	case ">":
		if v.Compare(s) <= 0 {
			return false
		}
		// >3.1 must not take 3.1.post1 (unless it names a post-release)
		// nor 3.1+local.
		if !s.IsPostrelease() && v.IsPostrelease() && v.base().Compare(s.base()) == 0 {
			return false
		}
		return v.Local == nil || v.withoutLocal().Compare(s) != 0
	case "~=":
		// ~=X.Y.Z is >=X.Y.Z together with ==X.Y.*.
		prefix := Specifier{Op: "==", Prefix: true, v: Version{Epoch: s.Epoch, Release: s.Release[:len(s.Release)-1], Post: -1, Dev: -1}}
		return v.withoutLocal().Compare(s) >= 0 && prefix.equal(v)
	}
	return false
}

func (sp Specifier) equal(v Version) bool {
	if !sp.Prefix {
		if sp.v.Local == nil {
			v = v.withoutLocal()
		}
		return v.Compare(sp.v) == 0
	}
	// Prefix match on the split form packaging uses: epoch, release
	// numbers, then the pre/post/dev parts; the candidate is padded with
	// zeros to the clause's release length, then cut to the clause's length.
	if v.Epoch != sp.v.Epoch {
		return false
	}
	want := sp.v.Release
	for i, n := range want {
		got := 0
		if i < len(v.Release) {
			got = v.Release[i]
		}
		if got != n {
			return false
		}
	}
	return true
}
