package image

import (
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/mlenv/mlenv/internal/testutil"
)

func TestNameIsNeverAPath(t *testing.T) {
	titled := mutate.Annotations(testutil.RandomImage(t, "linux", "amd64"), map[string]string{AnnotationTitle: "trainer"}).(v1.Image)
	plain := testutil.RandomImage(t, "linux", "amd64")
	dir := filepath.Join(t.TempDir(), "secret-build-path")
	for _, c := range []struct {
		out  string
		img  Content
		want string
	}{
		{"oci:" + dir + "/a", plain, DefaultName},
		{"oci:" + dir + "/b:v1", plain, DefaultName}, // a bare tag is a version, not a name
		{"oci:" + dir + "/c", titled, "trainer"},
		{"oci:" + dir + "/d:latest", titled, "trainer"},
		{"tar:" + dir + ".tar", plain, DefaultName},
	} {
		mustWrite(t, c.out, c.img, WriteOptions{})
		r, err := Resolve(ctx, mustParse(t, c.out), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Name(); got != c.want || strings.Contains(got, "secret-build-path") {
			t.Errorf("%s: name %q, want %q", c.out, got, c.want)
		}
	}

	// A full reference in ref.name names the repository.
	full := mustParse(t, "oci:"+filepath.Join(dir, "e")+":v1")
	mustWrite(t, full.String(), plain, WriteOptions{})
	r, err := Resolve(ctx, full, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.Descriptor.Annotations = map[string]string{AnnotationRefName: "registry.example.com/team/train:v1"}
	if got := r.Name(); got != "registry.example.com/team/train" {
		t.Errorf("full ref.name: %q", got)
	}

	// A registry image: its repository, without the tag.
	host := testutil.Registry(t, nil)
	ref := testutil.Push(t, plain, host+"/team/train:v1")
	rr, err := Resolve(ctx, mustParse(t, ref), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := rr.Name(); got != host+"/team/train" {
		t.Errorf("registry name %q", got)
	}
	if d, ok := rr.DigestRef(); !ok || d.DigestStr() != digestOf(t, plain).String() {
		t.Errorf("digest ref %v %v", d, ok)
	}
}
