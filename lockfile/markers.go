package lockfile

// PEP 508 environment markers, with PEP 751's set-valued "extras" and
// "dependency_groups", evaluated the way pypa/packaging's markers.py does
// (its test vectors are in testdata/packaging/vectors.json).

import (
	"fmt"
	"strings"
)

// Marker is a parsed PEP 508 environment marker.
type Marker struct {
	src  string
	root markerNode
}

// markerNode is an and/or expression or one comparison.
type markerNode struct {
	op       string // "and", "or", or "" for a comparison
	kids     []markerNode
	cmp      markerCmp
	position int
}

type markerCmp struct {
	op           string // == != < <= > >= ~= === in "not in"
	lhs, rhs     string // a literal, or the variable's name when lhsVar/rhsVar
	lhsVar       bool
	rhsVar       bool
	spec         *Specifier // pre-parsed op+literal when the variable is on the left
	specParseErr bool
}

// MarkerEnv is what a marker is evaluated against.
type MarkerEnv struct {
	Vars map[string]string
	// Extras and Groups are PEP 751's sets; nil means undefined (a marker
	// that reads them outside a lock file is an error).
	Extras, Groups map[string]bool
	// ExtraSet, when not nil, makes "extra" a set for == and !=: uv.lock's
	// conflict markers (`extra == 'extra-7-trainer-cu124'`) hold for every
	// extra and group the intent selects, encoded as uv encodes them.
	ExtraSet map[string]bool
}

// versionVars are compared as PEP 440 versions (packaging's
// MARKERS_REQUIRING_VERSION).
var versionVars = map[string]bool{"implementation_version": true, "platform_release": true, "python_full_version": true, "python_version": true}

// markerVars are the names PEP 508 defines, with the PEP 345 dotted
// spellings and setuptools' python_implementation mapped to them.
var markerVars = map[string]string{
	"python_version": "python_version", "python_full_version": "python_full_version",
	"os_name": "os_name", "os.name": "os_name", "sys_platform": "sys_platform", "sys.platform": "sys_platform",
	"platform_release": "platform_release", "platform_system": "platform_system",
	"platform_version": "platform_version", "platform.version": "platform_version",
	"platform_machine": "platform_machine", "platform.machine": "platform_machine",
	"platform_python_implementation": "platform_python_implementation", "platform.python_implementation": "platform_python_implementation",
	"python_implementation": "platform_python_implementation",
	"implementation_name":   "implementation_name", "implementation_version": "implementation_version",
	"extra": "extra", "extras": "extras", "dependency_groups": "dependency_groups",
}

// MarkerError is a marker that does not parse or cannot be evaluated.
type MarkerError struct {
	Marker string
	Pos    int
	Msg    string
}

func (e *MarkerError) Error() string {
	return fmt.Sprintf("marker %q: %s (at column %d)", e.Marker, e.Msg, e.Pos+1)
}

// ParseMarker parses a PEP 508 marker expression.
func ParseMarker(s string) (*Marker, error) {
	if len(s) > maxMarkerLen {
		return nil, &MarkerError{Marker: s[:80] + "...", Msg: fmt.Sprintf("is %d bytes long, more than mlenv reads in one marker (%d KiB): is the lock file damaged?", len(s), maxMarkerLen>>10)}
	}
	p := &markerParser{src: s}
	if err := p.tokenize(); err != nil {
		return nil, err
	}
	n, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.pos != len(p.toks) {
		return nil, p.errf("unexpected %q: expected and, or, or the end of the marker", p.toks[p.pos].text)
	}
	return &Marker{src: s, root: n}, nil
}

func (m *Marker) String() string { return m.src }

// Eval evaluates the marker.
func (m *Marker) Eval(env MarkerEnv) (bool, error) {
	return m.eval(m.root, env)
}

func (m *Marker) eval(n markerNode, env MarkerEnv) (bool, error) {
	switch n.op {
	case "and":
		for _, k := range n.kids {
			v, err := m.eval(k, env)
			if err != nil || !v {
				return false, err
			}
		}
		return true, nil
	case "or":
		for _, k := range n.kids {
			v, err := m.eval(k, env)
			if err != nil || v {
				return v, err
			}
		}
		return false, nil
	}
	return m.evalCmp(n, env)
}

func (m *Marker) evalCmp(n markerNode, env MarkerEnv) (bool, error) {
	c := n.cmp
	fail := func(format string, args ...any) (bool, error) {
		return false, &MarkerError{Marker: m.src, Pos: n.position, Msg: fmt.Sprintf(format, args...)}
	}
	key := c.rhs
	if c.lhsVar {
		key = c.lhs
	}
	if key == "extras" || key == "dependency_groups" {
		set := env.Extras
		if key == "dependency_groups" {
			set = env.Groups
		}
		if c.lhsVar || !c.rhsVar || (c.op != "in" && c.op != "not in") {
			return fail("%s is a set: use it only as `\"name\" in %s` or `\"name\" not in %s`", key, key, key)
		}
		if set == nil {
			return fail("%s is only defined in a lock file (PEP 751)", key)
		}
		in := set[NormalizeName(c.lhs)]
		return in == (c.op == "in"), nil
	}
	lookup := func(name string) (string, bool) {
		v, ok := env.Vars[name]
		if name == "extra" && ok {
			v = NormalizeName(v)
		}
		return v, ok
	}
	lhs, rhs := c.lhs, c.rhs
	var ok bool
	if c.lhsVar {
		if lhs, ok = lookup(c.lhs); !ok {
			return fail("%s is not defined for this target", c.lhs)
		}
	}
	if c.rhsVar {
		if rhs, ok = lookup(c.rhs); !ok {
			return fail("%s is not defined for this target", c.rhs)
		}
	}
	if key == "extra" && env.ExtraSet != nil && c.lhsVar != c.rhsVar && (c.op == "==" || c.op == "!=") {
		name := c.rhs
		if c.rhsVar {
			name = c.lhs
		}
		return env.ExtraSet[NormalizeName(name)] == (c.op == "=="), nil
	}
	if key == "extra" {
		// PEP 685: extras compare as normalised names, never as versions.
		if !c.lhsVar {
			lhs = NormalizeName(lhs)
		}
		if !c.rhsVar {
			rhs = NormalizeName(rhs)
		}
	}
	if versionVars[key] {
		if c.spec != nil {
			return c.spec.Contains(lhs), nil
		}
		if !c.specParseErr {
			if sp, err := ParseSpecifier(c.op + rhs); err == nil {
				return sp.Contains(lhs), nil
			}
		}
	}
	switch c.op {
	case "in":
		return strings.Contains(rhs, lhs), nil
	case "not in":
		return !strings.Contains(rhs, lhs), nil
	case "==", "<=", ">=":
		return lhs == rhs, nil
	case "!=":
		return lhs != rhs, nil
	case "<", ">":
		return false, nil
	}
	return fail("%s is not defined on %q and %q (not PEP 440 versions)", c.op, lhs, rhs)
}

type markerTok struct {
	kind string // "(", ")", "str", "var", "op", "and", "or", "not", "in"
	text string
	pos  int
}

type markerParser struct {
	src   string
	toks  []markerTok
	pos   int
	depth int // open parentheses around the current position
}

// maxMarkerDepth bounds parenthesis nesting: the parser recurses once per
// level, and a marker of a million "(" would overflow the goroutine stack
// (a fatal error, not a panic). Real markers nest two or three levels.
const maxMarkerDepth = 100

// maxMarkerLen bounds one marker, whose parse tree is kept for the run:
// uv's longest resolution markers are a few KiB.
const maxMarkerLen = 64 << 10

func (p *markerParser) errf(format string, args ...any) error {
	at := len(p.src)
	if p.pos < len(p.toks) {
		at = p.toks[p.pos].pos
	}
	return &MarkerError{Marker: p.src, Pos: at, Msg: fmt.Sprintf(format, args...)}
}

func isWordByte(c byte) bool {
	return c == '_' || c == '.' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func (p *markerParser) tokenize() error {
	s := p.src
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case c == '(' || c == ')':
			p.toks = append(p.toks, markerTok{string(c), string(c), i})
			i++
		case c == '"' || c == '\'':
			j := strings.IndexByte(s[i+1:], c)
			if j < 0 {
				return &MarkerError{Marker: s, Pos: i, Msg: "unterminated string"}
			}
			text := s[i+1 : i+1+j]
			if strings.ContainsAny(text, "\\\n\r") {
				// Python would read escapes here; no marker needs them.
				return &MarkerError{Marker: s, Pos: i, Msg: "invalid quoted string (backslash or line break)"}
			}
			p.toks = append(p.toks, markerTok{"str", text, i})
			i += j + 2
		case strings.IndexByte("=!<>~", c) >= 0:
			op := ""
			for _, o := range []string{"===", "==", "~=", "!=", "<=", ">=", "<", ">"} {
				if strings.HasPrefix(s[i:], o) {
					op = o
					break
				}
			}
			if op == "" {
				return &MarkerError{Marker: s, Pos: i, Msg: "expected an operator: one of <=, <, !=, ==, >=, >, ~=, ===, in, not in"}
			}
			p.toks = append(p.toks, markerTok{"op", op, i})
			i += len(op)
		case isWordByte(c):
			j := i
			for j < len(s) && isWordByte(s[j]) {
				j++
			}
			w := s[i:j]
			switch w {
			case "and", "or", "not", "in":
				p.toks = append(p.toks, markerTok{w, w, i})
			default:
				name, ok := markerVars[w]
				if !ok {
					return &MarkerError{Marker: s, Pos: i, Msg: fmt.Sprintf("%q is not a marker variable (PEP 508 names: python_version, sys_platform, platform_machine, ...)", w)}
				}
				p.toks = append(p.toks, markerTok{"var", name, i})
			}
			i = j
		default:
			return &MarkerError{Marker: s, Pos: i, Msg: fmt.Sprintf("unexpected character %q", c)}
		}
	}
	return nil
}

func (p *markerParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos].kind
	}
	return ""
}

func (p *markerParser) or() (markerNode, error) {
	return p.chain("or", p.and)
}

func (p *markerParser) and() (markerNode, error) {
	return p.chain("and", p.atom)
}

func (p *markerParser) chain(op string, next func() (markerNode, error)) (markerNode, error) {
	first, err := next()
	if err != nil || p.peek() != op {
		return first, err
	}
	n := markerNode{op: op, kids: []markerNode{first}}
	for p.peek() == op {
		p.pos++
		k, err := next()
		if err != nil {
			return n, err
		}
		n.kids = append(n.kids, k)
	}
	return n, nil
}

func (p *markerParser) atom() (markerNode, error) {
	if p.peek() == "(" {
		if p.depth == maxMarkerDepth {
			return markerNode{}, p.errf("parentheses nested more than %d deep", maxMarkerDepth)
		}
		p.pos++
		p.depth++
		n, err := p.or()
		p.depth--
		if err != nil {
			return n, err
		}
		if p.peek() != ")" {
			return n, p.errf("expected ) to close the parenthesis")
		}
		p.pos++
		return n, nil
	}
	start := p.pos
	lhs, lvar, err := p.operand()
	if err != nil {
		return markerNode{}, err
	}
	var op string
	switch p.peek() {
	case "op":
		op = p.toks[p.pos].text
		p.pos++
	case "in":
		op = "in"
		p.pos++
	case "not":
		p.pos++
		if p.peek() != "in" {
			return markerNode{}, p.errf("expected 'in' after 'not'")
		}
		p.pos++
		op = "not in"
	default:
		return markerNode{}, p.errf("expected a marker operator: one of <=, <, !=, ==, >=, >, ~=, ===, in, not in")
	}
	rhs, rvar, err := p.operand()
	if err != nil {
		return markerNode{}, err
	}
	c := markerCmp{op: op, lhs: lhs, rhs: rhs, lhsVar: lvar, rhsVar: rvar}
	if lvar && !rvar && versionVars[lhs] && op != "in" && op != "not in" {
		if sp, err := ParseSpecifier(op + rhs); err == nil {
			c.spec = &sp
		} else {
			c.specParseErr = true
		}
	}
	return markerNode{cmp: c, position: p.toks[start].pos}, nil
}

func (p *markerParser) operand() (string, bool, error) {
	switch p.peek() {
	case "str":
		p.pos++
		return p.toks[p.pos-1].text, false, nil
	case "var":
		p.pos++
		return p.toks[p.pos-1].text, true, nil
	}
	return "", false, p.errf("expected a marker variable or a quoted string")
}

// markerEnv is the PEP 508 environment of a target (Linux, CPython).
// platform_release and platform_version describe the kernel the image
// will run on, which a lock cannot know: they are empty.
func (t Target) markerEnv() map[string]string {
	full := t.PythonVersion
	if strings.Count(full, ".") == 1 {
		full += ".0"
	}
	return map[string]string{
		"python_version":                 majorMinor(full),
		"python_full_version":            full,
		"os_name":                        "posix",
		"sys_platform":                   "linux",
		"platform_system":                "Linux",
		"platform_machine":               t.machine(),
		"platform_release":               "",
		"platform_version":               "",
		"implementation_name":            "cpython",
		"platform_python_implementation": "CPython",
		"implementation_version":         full,
		"extra":                          "",
	}
}

// MarkerEnv is the target's environment with PEP 751's extras and
// dependency groups.
func (t Target) MarkerEnv(extras, groups []string) MarkerEnv {
	env := MarkerEnv{Vars: t.markerEnv(), Extras: map[string]bool{}, Groups: map[string]bool{}}
	for _, e := range extras {
		env.Extras[NormalizeName(e)] = true
	}
	for _, g := range groups {
		env.Groups[NormalizeName(g)] = true
	}
	return env
}

// EvalMarker evaluates a PEP 508 environment marker for the target, with
// no extras and no dependency groups.
func (t Target) EvalMarker(marker string) (bool, error) {
	m, err := ParseMarker(marker)
	if err != nil {
		return false, err
	}
	return m.Eval(t.MarkerEnv(nil, nil))
}
