package testutil

import (
	"bytes"
	"io"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TarBytesLayer is a gzip layer holding the tar bytes b, made the way
// other OCI tools make layers (go-containerregistry's tarball package).
func TarBytesLayer(t testing.TB, b []byte) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TarLayer is a gzip layer holding these tar entries (see Tar).
func TarLayer(t testing.TB, entries []TarEntry) v1.Layer {
	t.Helper()
	return TarBytesLayer(t, Tar(entries))
}
