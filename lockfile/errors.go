package lockfile

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// FieldError locates a problem in an input file: file, line and field path,
// plus what to do about it.
type FieldError struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *FieldError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
	}
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", loc, e.Field, e.Msg)
	}
	return fmt.Sprintf("%s: %s", loc, e.Msg)
}

// locator finds the line of a field path ("debs[1].sha256") in a parsed
// YAML (or JSON) document, so that validation errors after decoding can
// still point at the line.
type locator struct {
	file string
	root *yaml.Node
	// json is the lock's text: its lines are found by a token scan, done
	// only when an error needs one.
	json []byte
}

func (l locator) errf(field, format string, args ...any) *FieldError {
	return &FieldError{File: l.file, Line: l.line(field), Field: field, Msg: fmt.Sprintf(format, args...)}
}

func (l locator) line(path string) int {
	if l.json != nil {
		return jsonLine(l.json, path)
	}
	n := l.root
	if n == nil {
		return 0
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	best := n.Line
	for _, part := range splitPath(path) {
		next := child(n, part)
		if next == nil {
			break
		}
		n = next
		best = n.Line
	}
	return best
}

func splitPath(path string) []string {
	var parts []string
	for _, seg := range strings.Split(path, ".") {
		for seg != "" {
			i := strings.IndexByte(seg, '[')
			if i < 0 {
				parts = append(parts, seg)
				break
			}
			if i > 0 {
				parts = append(parts, seg[:i])
			}
			j := strings.IndexByte(seg, ']')
			if j < i {
				break
			}
			parts = append(parts, seg[i:j+1])
			seg = seg[j+1:]
		}
	}
	return parts
}

func child(n *yaml.Node, part string) *yaml.Node {
	if strings.HasPrefix(part, "[") {
		i, err := strconv.Atoi(strings.Trim(part, "[]"))
		switch {
		case err != nil || i < 0:
			return nil
		case n.Kind == yaml.SequenceNode && i < len(n.Content):
			return n.Content[i]
		case n.Kind == yaml.MappingNode && 2*i < len(n.Content):
			// env[2], labels[0]: the i-th key, whose text may be the problem.
			return n.Content[2*i]
		}
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == part {
			// Point at the value; for a scalar that is the key's line.
			return n.Content[i+1]
		}
	}
	return nil
}

// decodeStrict parses data (YAML or JSON) into v, rejecting unknown fields,
// and returns the node tree for later line lookups. Errors name the file and
// the line.
func decodeStrict(file string, data []byte, v any) (locator, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		line, msg := splitYAMLLine(strings.TrimPrefix(err.Error(), "yaml: "))
		// yaml.v3 reports "did not find expected ..." at the 0-based line of
		// the construct left open; make it 1-based like every other line.
		if strings.HasPrefix(msg, "did not find expected") && line > 0 {
			line++
		}
		return locator{}, &FieldError{File: file, Line: line, Msg: msg}
	}
	loc := locator{file: file, root: &root}
	if root.Kind == 0 {
		return loc, &FieldError{File: file, Msg: "file is empty"}
	}
	// Refuse anchors, aliases and merge keys before decoding: decoding
	// expands every alias, so a small file of nested aliases ("billion
	// laughs") grows to gigabytes. The node tree above holds each alias
	// once and is walked without following them.
	if err := refuseAliases(file, &root); err != nil {
		return loc, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		msg := err.Error()
		msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n")
		msg = strings.TrimPrefix(msg, "yaml: ")
		// Several errors come one per line; report the first, with its field.
		msg = strings.TrimSpace(strings.SplitN(strings.TrimSpace(msg), "\n", 2)[0])
		line, msg := splitYAMLLine(msg)
		return loc, &FieldError{File: file, Line: line, Field: loc.fieldAt(line), Msg: msg}
	}
	return loc, nil
}

// refuseAliases reports the first anchor (&a), alias (*a) or merge key (<<)
// in document order. mlenv.yaml is short and written by hand; repeating a
// value is clearer than a reference to it.
func refuseAliases(file string, n *yaml.Node) error {
	switch {
	case n.Kind == yaml.AliasNode:
		return &FieldError{File: file, Line: n.Line, Msg: fmt.Sprintf("YAML alias *%s: mlenv.yaml takes no anchors, aliases or merge keys; write the value out", n.Value)}
	case n.Anchor != "":
		return &FieldError{File: file, Line: n.Line, Msg: fmt.Sprintf("YAML anchor &%s: mlenv.yaml takes no anchors, aliases or merge keys; write the value out", n.Anchor)}
	case n.Kind == yaml.ScalarNode && n.Tag == "!!merge":
		return &FieldError{File: file, Line: n.Line, Msg: "YAML merge key <<: mlenv.yaml takes no anchors, aliases or merge keys; write the value out"}
	}
	for _, c := range n.Content {
		if err := refuseAliases(file, c); err != nil {
			return err
		}
	}
	return nil
}

// splitYAMLLine separates yaml.v3's "line N: message".
func splitYAMLLine(msg string) (int, string) {
	rest, ok := strings.CutPrefix(msg, "line ")
	if !ok {
		return 0, msg
	}
	num, text, ok := strings.Cut(rest, ": ")
	n, err := strconv.Atoi(num)
	if !ok || err != nil {
		return 0, msg
	}
	return n, text
}

// fieldAt names the mapping key that sits on a line, as a field path.
func (l locator) fieldAt(line int) string {
	if l.root == nil || line <= 0 {
		return ""
	}
	var walk func(n *yaml.Node, prefix string) string
	walk = func(n *yaml.Node, prefix string) string {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				if f := walk(c, prefix); f != "" {
					return f
				}
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if prefix != "" {
					p = prefix + "." + k.Value
				}
				if k.Line == line {
					return p
				}
				if f := walk(v, p); f != "" {
					return f
				}
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				if f := walk(c, fmt.Sprintf("%s[%d]", prefix, i)); f != "" {
					return f
				}
			}
		}
		return ""
	}
	return walk(l.root, "")
}

// indexed returns an error maker for the elements of a list field:
// indexed("ports")(2, err) is "FILE:LINE: ports[2]: err".
func (l locator) indexed(field string) func(i int, err error) error {
	return func(i int, err error) error {
		return l.errf(fmt.Sprintf("%s[%d]", field, i), "%v", err)
	}
}

// named is errf for an error value.
func (l locator) named(field string, err error) error {
	return l.errf(field, "%v", err)
}

// mapKeys returns the keys of the map decoded from field in the order the
// file lists them, so that the first bad entry is reported first and by
// its position; without a node tree (a lock, a resolved intent) in sorted order.
func (l locator) mapKeys(field string, m map[string]string) []string {
	if l.root != nil {
		n := l.root
		if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
			n = n.Content[0]
		}
		if n = child(n, field); n != nil && n.Kind == yaml.MappingNode && len(n.Content) == 2*len(m) {
			keys := make([]string, 0, len(m))
			for i := 0; i < len(n.Content); i += 2 {
				if _, ok := m[n.Content[i].Value]; !ok {
					break // a key YAML decodes differently (~ is ""): fall back
				}
				keys = append(keys, n.Content[i].Value)
			}
			if len(keys) == len(m) {
				return keys
			}
		}
	}
	return slices.Sorted(maps.Keys(m))
}
