package lockfile

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// markerEnv is the PEP 508 environment of a target (Linux, CPython).
func (t Target) markerEnv() map[string]string {
	full := t.PythonVersion
	if strings.Count(full, ".") == 1 {
		full += ".0"
	}
	return map[string]string{
		"python_version":                 full[:strings.LastIndex(full, ".")],
		"python_full_version":            full,
		"os_name":                        "posix",
		"sys_platform":                   "linux",
		"platform_system":                "Linux",
		"platform_machine":               t.machine(),
		"implementation_name":            "cpython",
		"platform_python_implementation": "CPython",
		"implementation_version":         full,
		"extra":                          "",
	}
}

// EvalMarker evaluates a PEP 508 environment marker for the target.
// Supported: and/or/parentheses, the comparison operators, in / not in.
func (t Target) EvalMarker(marker string) (bool, error) {
	p := &markerParser{toks: tokenizeMarker(marker), env: t.markerEnv()}
	v, err := p.or()
	if err != nil {
		return false, fmt.Errorf("marker %q: %w", marker, err)
	}
	if p.pos != len(p.toks) {
		return false, fmt.Errorf("marker %q: unexpected %q", marker, p.toks[p.pos])
	}
	return v, nil
}

func tokenizeMarker(s string) []string {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case c == '(' || c == ')':
			toks = append(toks, string(c))
			i++
		case c == '"' || c == '\'':
			j := strings.IndexByte(s[i+1:], c)
			if j < 0 {
				toks = append(toks, s[i:])
				return toks
			}
			toks = append(toks, s[i:i+j+2])
			i += j + 2
		case strings.ContainsRune("=!<>~", rune(c)):
			j := i
			for j < len(s) && strings.ContainsRune("=!<>~", rune(s[j])) {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		default:
			j := i
			for j < len(s) && (unicode.IsLetter(rune(s[j])) || unicode.IsDigit(rune(s[j])) || s[j] == '_' || s[j] == '.') {
				j++
			}
			if j == i {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		}
	}
	return toks
}

type markerParser struct {
	toks []string
	pos  int
	env  map[string]string
}

func (p *markerParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *markerParser) or() (bool, error) {
	v, err := p.and()
	for err == nil && p.peek() == "or" {
		p.pos++
		var r bool
		r, err = p.and()
		v = v || r
	}
	return v, err
}

func (p *markerParser) and() (bool, error) {
	v, err := p.atom()
	for err == nil && p.peek() == "and" {
		p.pos++
		var r bool
		r, err = p.atom()
		v = v && r
	}
	return v, err
}

func (p *markerParser) atom() (bool, error) {
	if p.peek() == "(" {
		p.pos++
		v, err := p.or()
		if err != nil {
			return false, err
		}
		if p.peek() != ")" {
			return false, fmt.Errorf("missing )")
		}
		p.pos++
		return v, nil
	}
	lhs, lvar, err := p.value()
	if err != nil {
		return false, err
	}
	op := p.peek()
	p.pos++
	if op == "not" {
		if p.peek() != "in" {
			return false, fmt.Errorf("expected 'in' after 'not'")
		}
		p.pos++
		op = "not in"
	}
	rhs, _, err := p.value()
	if err != nil {
		return false, err
	}
	switch op {
	case "in":
		return strings.Contains(rhs, lhs), nil
	case "not in":
		return !strings.Contains(rhs, lhs), nil
	case "==", "!=", "<", "<=", ">", ">=", "~=", "===":
	default:
		return false, fmt.Errorf("unknown operator %q", op)
	}
	if op == "===" {
		return lhs == rhs, nil
	}
	if strings.HasSuffix(lvar, "version") || isVersion(lhs) && isVersion(rhs) {
		c := compareVersions(lhs, rhs)
		switch op {
		case "==":
			return c == 0, nil
		case "!=":
			return c != 0, nil
		case "<":
			return c < 0, nil
		case "<=":
			return c <= 0, nil
		case ">":
			return c > 0, nil
		case ">=":
			return c >= 0, nil
		case "~=":
			// ~=X.Y means >=X.Y, ==X.*
			prefix := rhs
			if i := strings.LastIndex(rhs, "."); i > 0 {
				prefix = rhs[:i]
			}
			return c >= 0 && compareVersions(lhs, prefix) >= 0 && strings.HasPrefix(lhs+".", prefix+"."), nil
		}
	}
	switch op {
	case "==":
		return lhs == rhs, nil
	case "!=":
		return lhs != rhs, nil
	}
	return false, fmt.Errorf("operator %s needs versions, got %q and %q", op, lhs, rhs)
}

// value reads a quoted string or an environment variable name.
func (p *markerParser) value() (string, string, error) {
	t := p.peek()
	if t == "" {
		return "", "", fmt.Errorf("unexpected end")
	}
	p.pos++
	if t[0] == '"' || t[0] == '\'' {
		if len(t) < 2 || t[len(t)-1] != t[0] {
			return "", "", fmt.Errorf("unterminated string %s", t)
		}
		return t[1 : len(t)-1], "", nil
	}
	v, ok := p.env[t]
	if !ok {
		return "", "", fmt.Errorf("unknown marker variable %q", t)
	}
	return v, t, nil
}

func isVersion(s string) bool {
	if s == "" {
		return false
	}
	for _, part := range strings.Split(s, ".") {
		if _, err := strconv.Atoi(part); err != nil {
			return false
		}
	}
	return true
}

// compareVersions compares dotted release numbers; a non-numeric part
// compares as text.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		x, y := "0", "0"
		if i < len(as) {
			x = as[i]
		}
		if i < len(bs) {
			y = bs[i]
		}
		xi, errx := strconv.Atoi(x)
		yi, erry := strconv.Atoi(y)
		if errx == nil && erry == nil {
			if xi != yi {
				if xi < yi {
					return -1
				}
				return 1
			}
			continue
		}
		if x != y {
			return strings.Compare(x, y)
		}
	}
	return 0
}
