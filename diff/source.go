package diff

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/mlenv/mlenv/image"
)

// openImage is the one place diff reads an image reference (REF, oci:DIR,
// tar:FILE): through the image package, with its registry timeouts.
func openImage(ctx context.Context, arg, platform string) (v1.Image, error) {
	return image.ReadImage(ctx, arg, platform, image.Options{})
}
