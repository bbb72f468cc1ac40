package diff

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/mlenv/mlenv/builder"
	"github.com/mlenv/mlenv/internal/netx"
)

// openImage is the one place diff reads an image reference (REF, oci:DIR,
// tar:FILE). It calls builder.ReadImageFor until the image package lands;
// then only this function changes.
func openImage(ctx context.Context, arg, platform string) (v1.Image, error) {
	return builder.ReadImageFor(ctx, arg, platform, remote.WithTransport(netx.Transport(netx.DefaultTimeouts)))
}
