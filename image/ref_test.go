package image

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in         string
		kind       Kind
		path, tag  string
		registry   string
		wantErrSub string
	}{
		{in: "oci:out", kind: Layout, path: "out"},
		{in: "oci:./out:v1", kind: Layout, path: "./out", tag: "v1"},
		{in: "oci:/tmp/x:latest", kind: Layout, path: "/tmp/x", tag: "latest"},
		{in: "oci:.", kind: Layout, path: "."},
		// A ':' followed by something that is no tag stays in the path.
		{in: "oci:/tmp/a:b/", kind: Layout, path: "/tmp/a:b/"},
		{in: "oci:/tmp/a:b/c", kind: Layout, path: "/tmp/a:b/c"},
		{in: "oci:/tmp/a:b:v2", kind: Layout, path: "/tmp/a:b", tag: "v2"},
		{in: "oci:out:.hidden", kind: Layout, path: "out:.hidden"},
		{in: "tar:image.tar", kind: Tarball, path: "image.tar"},
		{in: "tar:-", kind: Tarball, path: Stdio},
		{in: "registry.example.com/team/train:v1", kind: Registry, registry: "registry.example.com/team/train:v1"},
		{in: "localhost:5000/x@sha256:" + strings.Repeat("a", 64), kind: Registry, registry: "localhost:5000/x@sha256:" + strings.Repeat("a", 64)},
		{in: "oci:", wantErrSub: "expected oci:DIR or oci:DIR:TAG"},
		{in: "oci::v1", wantErrSub: "expected oci:DIR or oci:DIR:TAG"},
		{in: "tar:", wantErrSub: "expected tar:FILE"},
		{in: "", wantErrSub: "no image given"},
		{in: "Not A Reference", wantErrSub: "neither oci:DIR[:TAG], tar:FILE nor a registry reference"},
	} {
		r, err := Parse(c.in)
		if c.wantErrSub != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErrSub) {
				t.Errorf("Parse(%q) = %+v, %v; want an error with %q", c.in, r, err, c.wantErrSub)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		if r.Kind != c.kind || r.Path != c.path || r.Tag != c.tag || (c.registry != "" && r.Name.String() != c.registry) {
			t.Errorf("Parse(%q) = %+v", c.in, r)
		}
		if back, err := Parse(r.String()); err != nil || back.String() != r.String() {
			t.Errorf("Parse(%q).String() = %q does not read back the same: %v", c.in, r.String(), err)
		}
	}
}

// FuzzParse: Parse never panics, and what it accepts reads back the same
// through String.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"oci:out", "oci:./a:b:v1", "oci:/x:y/", "tar:-", "tar:a.tar", "host:5000/a/b:c", "a@sha256:" + strings.Repeat("0", 64), "oci::", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			return
		}
		back, err := Parse(r.String())
		if err != nil {
			t.Fatalf("Parse(%q) gave %q, which does not parse: %v", s, r.String(), err)
		}
		if back.Kind != r.Kind || back.Path != r.Path || back.Tag != r.Tag || back.String() != r.String() {
			t.Fatalf("Parse(%q) = %+v, read back as %+v", s, r, back)
		}
	})
}
