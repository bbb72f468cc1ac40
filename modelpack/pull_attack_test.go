package modelpack

import (
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// A manifest of 100,000 layers (maxLayers; a registry may send up to
// 100 MB of manifest) was checked for nested paths by comparing every
// layer with every other: 5e9 comparisons before anything was pulled.
// The check must stay near-linear, and still refuse a layer inside
// another and a `../` title.
func TestPlanLayersOfAHugeManifestIsQuick(t *testing.T) {
	descs := make([]v1.Descriptor, maxLayers)
	for i := range descs {
		descs[i] = v1.Descriptor{MediaType: MediaTypeModelWeightRaw, Size: 1,
			Annotations: map[string]string{AnnotationFilepath: fmt.Sprintf("shards/%06d/model.safetensors", i)}}
	}
	start := time.Now()
	if _, err := planLayers(descs); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("planning %d layers took %s", len(descs), d)
	}

	// The last layer is a folder holding the first layer's file.
	descs[len(descs)-1].Annotations = map[string]string{AnnotationFilepath: "shards/000000"}
	descs[len(descs)-1].MediaType = MediaTypeModelWeight
	if _, err := planLayers(descs); err == nil || !strings.Contains(err.Error(), "shards/000000") {
		t.Errorf("a layer holding another's path: %v", err)
	}
	descs[len(descs)-1].Annotations = map[string]string{AnnotationFilepath: "../escape"}
	if _, err := planLayers(descs); err == nil {
		t.Error("a ../ title was accepted")
	}
}
