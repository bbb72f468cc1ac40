package lockfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// decodeJSONStrict decodes the lock: strict JSON (no unknown fields, one
// value, nothing after it) with errors that name the file and the line,
// computed from the decoder's byte offset.
func decodeJSONStrict(file string, data []byte, v any) (locator, error) {
	loc := locator{file: file, json: data}
	if len(bytes.TrimSpace(data)) == 0 {
		return loc, &FieldError{File: file, Msg: "file is empty"}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			off := skipJSONSpace(data, dec.InputOffset())
			return loc, &FieldError{File: file, Line: lineAt(data, off), Msg: "unexpected text after the lock's closing brace"}
		}
		return loc, nil
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return loc, &FieldError{File: file, Line: lineAt(data, syn.Offset), Msg: "not valid JSON: " + syn.Error()}
	case errors.As(err, &typ):
		field := typ.Field
		return loc, &FieldError{File: file, Line: lineAt(data, typ.Offset), Field: field,
			Msg: fmt.Sprintf("a JSON %s where %s belongs", typ.Value, jsonKind(typ.Type.Kind()))}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return loc, &FieldError{File: file, Line: lineAt(data, int64(len(data))), Msg: "not valid JSON: the file ends inside a value (truncated?)"}
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		line, field := firstKey(data, name)
		return loc, &FieldError{File: file, Line: line, Field: field,
			Msg: fmt.Sprintf("unknown field %q: not part of lock version %d (a typo, or a lock from a newer mlenv?)", name, LockVersion)}
	}
	return loc, &FieldError{File: file, Msg: strings.TrimPrefix(err.Error(), "json: ")}
}

// jsonKind names a Go kind the way a lock's reader thinks of it.
func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint, reflect.Uint64, reflect.Uint32:
		return "a whole number"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	}
	return "a " + k.String()
}

// lineAt is the 1-based line of byte offset off.
func lineAt(data []byte, off int64) int {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	if off < 0 {
		off = 0
	}
	return 1 + bytes.Count(data[:off], []byte("\n"))
}

// skipJSONSpace moves off past white space and the separators the
// decoder's tokens leave out (",", ":"), to where the next token starts.
func skipJSONSpace(data []byte, off int64) int64 {
	for off < int64(len(data)) && strings.IndexByte(" \t\r\n,:", data[off]) >= 0 {
		off++
	}
	return off
}

// scanJSON calls visit with the field path ("debs[1].sha256") and start
// offset of every value in document order, until visit returns false.
// data must be JSON that decoded; a syntax error just ends the scan.
func scanJSON(data []byte, visit func(path string, off int64) bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var value func(path string) bool
	value = func(path string) bool {
		if !visit(path, skipJSONSpace(data, dec.InputOffset())) {
			return false
		}
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		switch tok {
		case json.Delim('{'):
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return false
				}
				key, _ := kt.(string)
				p := key
				if path != "" {
					p = path + "." + key
				}
				if !value(p) {
					return false
				}
			}
		case json.Delim('['):
			for i := 0; dec.More(); i++ {
				if !value(fmt.Sprintf("%s[%d]", path, i)) {
					return false
				}
			}
		default:
			return true
		}
		_, err = dec.Token() // the closing bracket
		return err == nil
	}
	value("")
}

// jsonLine is the line of the value at path, or of the deepest part of
// path that exists.
func jsonLine(data []byte, want string) int {
	best := 0
	scanJSON(data, func(p string, off int64) bool {
		if p == want {
			best = lineAt(data, off)
			return false
		}
		if p == "" || strings.HasPrefix(want, p+".") || strings.HasPrefix(want, p+"[") {
			best = lineAt(data, off)
		}
		return true
	})
	return best
}

// firstKey finds the first key named name outside the lock's free-form
// maps (labels, base manifests): encoding/json reports an unknown field
// by name only, and stops at the first one in document order.
func firstKey(data []byte, name string) (int, string) {
	line, field := 0, ""
	scanJSON(data, func(p string, off int64) bool {
		parent, last := "", p
		if i := strings.LastIndexByte(p, '.'); i >= 0 {
			parent, last = p[:i], p[i+1:]
		}
		if last == name && parent != "config.labels" && parent != "base.manifests" {
			line, field = lineAt(data, off), p
			return false
		}
		return true
	})
	return line, field
}
