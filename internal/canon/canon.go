// Package canon encodes values as canonical JSON: object keys sorted, no HTML
// escaping, numbers as written. Equal values give equal bytes, so a sha256 of
// the output identifies the value (lock digests, fingerprint ids).
package canon

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// normalise round-trips v through a generic representation so that struct
// field order and map iteration order no longer matter: encoding/json sorts
// map keys.
func normalise(v any) (any, error) {
	raw, err := marshalNoEscape(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return nil, fmt.Errorf("canonical json: %w", err)
	}
	return generic, nil
}

func marshalNoEscape(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("canonical json: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Compact returns the canonical compact encoding of v (no whitespace).
func Compact(v any) ([]byte, error) {
	g, err := normalise(v)
	if err != nil {
		return nil, err
	}
	return marshalNoEscape(g)
}

// Indent returns the canonical encoding of v indented by two spaces and
// ending in a newline: the form mlenv writes to files people read and diff.
func Indent(v any) ([]byte, error) {
	g, err := normalise(v)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(g); err != nil {
		return nil, fmt.Errorf("canonical json: %w", err)
	}
	return buf.Bytes(), nil
}

// SHA256 returns "sha256:<hex>" of the canonical compact encoding of v.
func SHA256(v any) (string, error) {
	b, err := Compact(v)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}
