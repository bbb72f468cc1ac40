package layerwalk

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// WalkLayers streams some of an image's layers (layers[i] is the image's
// layer first+i) through the visitors, so that a reader who already knows
// two images share their first layers (equal digests) reads only the rest.
func WalkLayers(layers []v1.Layer, first int, visitors ...Visitor) error {
	for i, l := range layers {
		n := first + i
		rc, err := l.Uncompressed()
		if err != nil {
			return fmt.Errorf("layer %d: %w", n, err)
		}
		err = walkLayer(n, rc, visitors)
		rc.Close()
		if err != nil {
			return fmt.Errorf("layer %d: %w", n, err)
		}
	}
	return nil
}
