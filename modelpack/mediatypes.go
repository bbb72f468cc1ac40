// Package modelpack pushes a model folder to a registry as a CNCF
// ModelPack OCI artifact and pulls one back into a folder: one layer per
// file (raw) or per sub-folder (tar), a config listing the layers'
// digests, and a manifest whose artifactType says "model". The same files
// always give the same manifest digest: nothing in it depends on when,
// where or by whom it was pushed.
package modelpack

// Media types and annotations of the ModelPack specification
// (github.com/modelpack/model-spec, docs/spec.md and specs-go/v1). The
// module is not served by the Go module proxy this project builds with,
// so the constants are restated here under the spec's own names.
const (
	// ArtifactTypeModelManifest is the manifest's artifactType.
	ArtifactTypeModelManifest = "application/vnd.cncf.model.manifest.v1+json"
	// MediaTypeModelConfig is the config blob's media type.
	MediaTypeModelConfig = "application/vnd.cncf.model.config.v1+json"
	// MediaTypeModelWeightRaw: one file, stored as it is.
	MediaTypeModelWeightRaw = "application/vnd.cncf.model.weight.v1.raw"
	// MediaTypeModelWeight: a folder, as an uncompressed tar.
	MediaTypeModelWeight = "application/vnd.cncf.model.weight.v1.tar"
	// AnnotationFilepath names the file or folder a layer holds,
	// relative to the model's root.
	AnnotationFilepath = "org.cncf.model.filepath"
)

// Model is the config blob (specs-go/v1 Model), reduced to what mlenv
// writes: nothing time- or host-dependent, so the digest is stable.
type Model struct {
	Descriptor ModelDescriptor `json:"descriptor"`
	ModelFS    ModelFS         `json:"modelfs"`
	Config     ModelConfig     `json:"config"`
}

// ModelDescriptor is the general information of a model.
type ModelDescriptor struct {
	Name string `json:"name,omitempty"`
}

// ModelFS lists the layers' content digests, bottom to top.
type ModelFS struct {
	// Type is always "layers".
	Type    string   `json:"type"`
	DiffIDs []string `json:"diffIds"`
}

// ModelConfig holds execution parameters; mlenv records the format only
// when every weight file agrees on one it recognises.
type ModelConfig struct {
	Format string `json:"format,omitempty"`
}
