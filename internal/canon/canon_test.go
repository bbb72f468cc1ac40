package canon

import (
	"strings"
	"testing"
)

func TestCanonicalEncoding(t *testing.T) {
	type s struct {
		Z string            `json:"z"`
		A map[string]int    `json:"a"`
		M string            `json:"m"`
		H map[string]string `json:"h,omitempty"`
	}
	v := s{Z: "<&>", A: map[string]int{"b": 2, "a": 1}, M: "x"}
	b, err := Compact(v)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); got != `{"a":{"a":1,"b":2},"m":"x","z":"<&>"}` {
		t.Errorf("compact: %s", got)
	}
	ind, _ := Indent(v)
	if !strings.HasSuffix(string(ind), "}\n") || !strings.Contains(string(ind), "\n  \"a\": {") {
		t.Errorf("indent: %s", ind)
	}
	h1, _ := SHA256(v)
	h2, _ := SHA256(map[string]any{"z": "<&>", "m": "x", "a": map[string]int{"a": 1, "b": 2}})
	if h1 != h2 || !strings.HasPrefix(h1, "sha256:") {
		t.Errorf("equal values hash differently: %s %s", h1, h2)
	}
}
