package attest

// The training predicate: one signed statement that ties trained model
// files to the image, lock, host, data, code, configuration and seeds of
// the run that made them. Documented in the README ("Training lineage")
// and by attest/training.schema.json.

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/in-toto/in-toto-golang/in_toto"
	"github.com/in-toto/in-toto-golang/in_toto/slsa_provenance/common"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/mlenv/mlenv/fingerprint"
	"github.com/mlenv/mlenv/image"
	"github.com/mlenv/mlenv/internal/filedigest"
	"github.com/mlenv/mlenv/internal/gitinfo"
	"github.com/mlenv/mlenv/modelpack"
)

// TrainingPredicateType is the versioned predicate type of a lineage
// statement.
const TrainingPredicateType = "https://mlenv.dev/training/v1"

// TrainingSchemaVersion is the predicate's schemaVersion.
const TrainingSchemaVersion = 1

// TrainingSchema is the JSON schema of the predicate.
//
//go:embed training.schema.json
var TrainingSchema []byte

// Limits on what a statement carries inline.
const (
	// MaxInlineConfig: a config file up to this size is inlined (parsed
	// JSON or YAML), so that two runs' configs can be diffed key by key.
	MaxInlineConfig = 64 << 10
	// MaxMetrics bounds the metrics JSON file (inlined whole).
	MaxMetrics = 256 << 10
	// MaxListedDatasetFiles: a dataset with more files is recorded by its
	// tree digest and counts only.
	MaxListedDatasetFiles = 10000
)

// TrainingPredicate is the predicate of https://mlenv.dev/training/v1.
type TrainingPredicate struct {
	SchemaVersion int           `json:"schemaVersion"`
	Model         ModelInfo     `json:"model"`
	TrainingImage TrainingImage `json:"trainingImage"`
	Host          *TrainingHost `json:"host,omitempty"`
	Datasets      []Dataset     `json:"datasets"`
	Code          *Code         `json:"code,omitempty"`
	Configs       []ConfigFile  `json:"configs,omitempty"`
	// Seeds by name ("torch", "numpy", "data-order"), as given.
	Seeds      map[string]string `json:"seeds,omitempty"`
	Command    []string          `json:"command,omitempty"`
	StartedOn  *time.Time        `json:"startedOn,omitempty"`
	FinishedOn *time.Time        `json:"finishedOn,omitempty"`
	Metrics    *Metrics          `json:"metrics,omitempty"`
	Recorder   Recorder          `json:"recorder"`
}

// ModelInfo says what the statement's subjects are.
type ModelInfo struct {
	// Kind is "files" (local files, one subject each) or "oci" (a
	// ModelPack artifact: one subject, its manifest digest).
	Kind string `json:"kind"`
	// Name is the model folder's or file's base name, or the repository.
	Name string `json:"name"`
	// TreeSHA256 (files) is filedigest.TreeDigest over the subjects.
	TreeSHA256 string `json:"treeSha256,omitempty"`
	// Digest (oci) is the manifest digest.
	Digest string `json:"digest,omitempty"`
}

// TrainingImage is the image the run used.
type TrainingImage struct {
	Name   string `json:"name"`
	Digest string `json:"digest"`
	// LockDigest is the image config's dev.mlenv.lock.digest label ("" for
	// images not built by mlenv).
	LockDigest string `json:"lockDigest,omitempty"`
}

// TrainingHost is the host fingerprint, embedded, with its id.
type TrainingHost struct {
	ID          string                   `json:"id"`
	Fingerprint *fingerprint.Fingerprint `json:"fingerprint"`
}

// Dataset is one input data set: where it is known from and what it held.
type Dataset struct {
	URI string `json:"uri"`
	// TreeSHA256 is filedigest.TreeDigest of its files.
	TreeSHA256 string `json:"treeSha256"`
	FileCount  int    `json:"fileCount"`
	Size       int64  `json:"size"`
	// Files lists each file's digest, up to MaxListedDatasetFiles.
	Files []filedigest.File `json:"files,omitempty"`
}

// Code is the training code's source tree.
type Code struct {
	TreeSHA256 string        `json:"treeSha256"`
	FileCount  int           `json:"fileCount"`
	Git        *gitinfo.Info `json:"git,omitempty"`
}

// ConfigFile is one configuration file by digest; Content is its parsed
// value when it is small JSON or YAML.
type ConfigFile struct {
	Name    string `json:"name"`
	SHA256  string `json:"sha256"`
	Size    int64  `json:"size"`
	Format  string `json:"format,omitempty"` // json, yaml
	Content any    `json:"content,omitempty"`
}

// Metrics is the metrics JSON file, inlined.
type Metrics struct {
	Name   string         `json:"name"`
	SHA256 string         `json:"sha256"`
	Values map[string]any `json:"values"`
}

// Recorder is the tool that wrote the statement.
type Recorder struct {
	MlenvVersion string `json:"mlenvVersion"`
}

// TrainingOptions for `mlenv attest --model`.
type TrainingOptions struct {
	// Model is a local file or folder, or a registry reference to a
	// ModelPack artifact.
	Model  string
	KeyRef string
	// TrainingImage: a registry reference, oci:DIR or tar:FILE.
	TrainingImage string
	// Fingerprint: "" (none), "host" or a fingerprint JSON file.
	Fingerprint string
	// Datasets: "[URI=]PATH"; without URI, "file:" + the path as given.
	Datasets []string
	Code     string
	Configs  []string
	// Seeds: "NAME=VALUE".
	Seeds   []string
	Command []string
	Metrics string
	// Started and Finished are the run's times (zero: not recorded).
	Started, Finished time.Time
	// BundlePath: for local models, where the signed bundle goes (default
	// BesideBundle(Model)).
	BundlePath   string
	MlenvVersion string
	Registry     image.Options
	// Workers hash files in parallel (0: all CPUs).
	Workers int
}

// BundleSuffix is appended to a local model's path to name the lineage
// bundle written beside it.
const BundleSuffix = ".lineage.json"

// BesideBundle is where a local model's lineage bundle goes by default:
// next to the file or folder, never inside it (the folder's file list
// must not change by being attested).
func BesideBundle(model string) string {
	return filepath.Clean(model) + BundleSuffix
}

// ModelFiles lists and hashes a local model (file or folder) as its
// lineage statement names it: every file but .git and the lineage bundle
// itself (bundle), with workers hashing in parallel (0: the CPUs). Recording
// and verifying both call it, so that they agree on the model's files.
func ModelFiles(ctx context.Context, model, bundle string, workers int) ([]filedigest.File, error) {
	return filedigest.Sum(ctx, model, filedigest.Options{Workers: workers, Exclude: func(rel string) bool {
		return rel == ".git" || filepath.Join(model, filepath.FromSlash(rel)) == filepath.Clean(bundle)
	}})
}

// TrainingResult says what was written.
type TrainingResult struct {
	Model          string `json:"model"`
	Subjects       int    `json:"subjects"`
	EnvelopeDigest string `json:"envelopeDigest"`
	Where          string `json:"where"`
}

// IsLocalModel says whether MODEL names a local file or folder (which
// wins over a registry reference of the same spelling).
func IsLocalModel(model string) bool {
	_, err := os.Lstat(model)
	return err == nil
}

// LooksLikePath: an argument that can only be a local path (a missing
// model folder must say "no such file", not reach for Docker Hub).
func LooksLikePath(s string) bool {
	return strings.HasPrefix(s, "/") || strings.HasPrefix(s, ".") || strings.HasPrefix(s, "~")
}

// RecordRun builds, signs and stores the lineage statement. Every input
// is read and checked before anything is written.
func RecordRun(ctx context.Context, o TrainingOptions) (*TrainingResult, error) {
	if o.Model == "" {
		return nil, errors.New("--model is required: the trained model's file, folder or registry reference")
	}
	if o.TrainingImage == "" {
		return nil, errors.New("--training-image is required: the image the run used (REF, oci:DIR or tar:FILE)")
	}
	sv, err := LoadSigner(ctx, o.KeyRef)
	if err != nil {
		return nil, err
	}
	pred, subjects, digestRef, err := BuildTraining(ctx, o)
	if err != nil {
		return nil, err
	}
	// What is signed holds to the published schema.
	pb, err := json.Marshal(pred)
	if err != nil {
		return nil, err
	}
	if err := ValidateTraining(pb); err != nil {
		return nil, fmt.Errorf("the training predicate does not match its schema (a bug in mlenv): %w", err)
	}
	st := &in_toto.Statement{
		StatementHeader: in_toto.StatementHeader{Type: StatementType, PredicateType: TrainingPredicateType, Subject: subjects},
		Predicate:       pred,
	}
	signed, err := Sign(sv, st)
	if err != nil {
		return nil, err
	}
	res := &TrainingResult{Model: pred.Model.Name, Subjects: len(subjects), EnvelopeDigest: signed.EnvelopeDigest()}
	if digestRef != nil {
		if err := Attach(ctx, *digestRef, []Signed{signed}, o.Registry.RemoteOptions(ctx)...); err != nil {
			return nil, err
		}
		res.Where = digestRef.Context().Tag(strings.Replace(digestRef.DigestStr(), ":", "-", 1) + ".att").String()
		return res, nil
	}
	path := o.BundlePath
	if path == "" {
		path = BesideBundle(o.Model)
	}
	if err := WriteBundle(path, pred.Model.Name, "sha256:"+pred.Model.TreeSHA256, []Signed{signed}); err != nil {
		return nil, fmt.Errorf("writing lineage bundle %s: %w", path, err)
	}
	res.Where = path
	return res, nil
}

// BuildTraining reads every input and returns the predicate, the
// statement's subjects and, for a registry model, the digest reference
// the statement is attached to.
func BuildTraining(ctx context.Context, o TrainingOptions) (*TrainingPredicate, []in_toto.Subject, *name.Digest, error) {
	p := &TrainingPredicate{SchemaVersion: TrainingSchemaVersion, Datasets: []Dataset{}, Recorder: Recorder{MlenvVersion: o.MlenvVersion}}
	var subjects []in_toto.Subject
	var digestRef *name.Digest
	bundle := o.BundlePath
	if bundle == "" {
		bundle = BesideBundle(o.Model)
	}
	if IsLocalModel(o.Model) {
		files, err := ModelFiles(ctx, o.Model, bundle, o.Workers)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("model %s: %w", o.Model, err)
		}
		if len(files) == 0 {
			return nil, nil, nil, fmt.Errorf("model %s holds no files", o.Model)
		}
		for _, f := range files {
			subjects = append(subjects, in_toto.Subject{Name: f.Name, Digest: common.DigestSet{"sha256": f.SHA256}})
		}
		p.Model = ModelInfo{Kind: "files", Name: filepath.Base(filepath.Clean(o.Model)), TreeSHA256: filedigest.TreeDigest(files)}
	} else {
		ref, err := image.Parse(o.Model)
		if err != nil || ref.Kind != image.Registry || LooksLikePath(o.Model) {
			return nil, nil, nil, fmt.Errorf("--model %s: no such file or folder, and not a registry reference", o.Model)
		}
		r, err := image.Resolve(ctx, ref, o.Registry)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("--model: %w", err)
		}
		if err := modelpack.CheckModel(r); err != nil {
			return nil, nil, nil, fmt.Errorf("--model %s: %w", o.Model, err)
		}
		d, _ := r.DigestRef()
		digestRef = &d
		subjects = []in_toto.Subject{{Name: d.Context().Name(), Digest: common.DigestSet{"sha256": r.Digest().Hex}}}
		p.Model = ModelInfo{Kind: "oci", Name: d.Context().Name(), Digest: r.Digest().String()}
	}

	img, err := trainingImage(ctx, o)
	if err != nil {
		return nil, nil, nil, err
	}
	p.TrainingImage = *img
	if o.Fingerprint != "" {
		fp, err := loadFingerprint(o.Fingerprint)
		if err != nil {
			return nil, nil, nil, err
		}
		p.Host = &TrainingHost{ID: fp.ID, Fingerprint: fp}
	}
	for _, spec := range o.Datasets {
		ds, err := dataset(ctx, spec, o.Workers)
		if err != nil {
			return nil, nil, nil, err
		}
		p.Datasets = append(p.Datasets, *ds)
	}
	sort.SliceStable(p.Datasets, func(i, j int) bool { return p.Datasets[i].URI < p.Datasets[j].URI })
	if o.Code != "" {
		if p.Code, err = code(ctx, o.Code, o.Workers); err != nil {
			return nil, nil, nil, err
		}
	}
	for _, c := range o.Configs {
		cf, err := configFile(ctx, c)
		if err != nil {
			return nil, nil, nil, err
		}
		p.Configs = append(p.Configs, *cf)
	}
	if p.Seeds, err = seeds(o.Seeds); err != nil {
		return nil, nil, nil, err
	}
	p.Command = o.Command
	if !o.Started.IsZero() {
		t := o.Started.UTC()
		p.StartedOn = &t
	}
	if !o.Finished.IsZero() {
		t := o.Finished.UTC()
		p.FinishedOn = &t
	}
	if p.StartedOn != nil && p.FinishedOn != nil && p.FinishedOn.Before(*p.StartedOn) {
		return nil, nil, nil, fmt.Errorf("--finished %s is before --started %s", p.FinishedOn.Format(time.RFC3339), p.StartedOn.Format(time.RFC3339))
	}
	if o.Metrics != "" {
		if p.Metrics, err = metrics(ctx, o.Metrics); err != nil {
			return nil, nil, nil, err
		}
	}
	return p, subjects, digestRef, nil
}

func trainingImage(ctx context.Context, o TrainingOptions) (*TrainingImage, error) {
	r, img, err := image.ResolveSingle(ctx, o.TrainingImage, o.Registry)
	if err != nil {
		return nil, fmt.Errorf("--training-image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("--training-image %s: reading its config: %w", o.TrainingImage, err)
	}
	return &TrainingImage{Name: r.Name(), Digest: r.Digest().String(), LockDigest: cf.Config.Labels[image.LabelLockDigest]}, nil
}

func dataset(ctx context.Context, spec string, workers int) (*Dataset, error) {
	uri, path, ok := strings.Cut(spec, "=")
	if !ok || !strings.Contains(uri, ":") {
		uri, path = "file:"+filepath.ToSlash(spec), spec
	}
	if path == "" {
		return nil, fmt.Errorf("--dataset %q: want [URI=]PATH", spec)
	}
	files, err := filedigest.Sum(ctx, path, filedigest.Options{Workers: workers})
	if err != nil {
		return nil, fmt.Errorf("--dataset %s: %w", spec, err)
	}
	ds := &Dataset{URI: uri, TreeSHA256: filedigest.TreeDigest(files), FileCount: len(files)}
	for _, f := range files {
		ds.Size += f.Size
	}
	if len(files) <= MaxListedDatasetFiles {
		ds.Files = files
	}
	return ds, nil
}

func code(ctx context.Context, dir string, workers int) (*Code, error) {
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("--code %s: not a folder", dir)
	}
	files, err := filedigest.Sum(ctx, dir, filedigest.Options{Workers: workers, Exclude: func(rel string) bool { return rel == ".git" }})
	if err != nil {
		return nil, fmt.Errorf("--code %s: %w", dir, err)
	}
	c := &Code{TreeSHA256: filedigest.TreeDigest(files), FileCount: len(files)}
	if info, err := gitinfo.Read(dir); err == nil {
		c.Git = info
	} else if !errors.Is(err, gitinfo.ErrNotGit) {
		return nil, fmt.Errorf("--code %s: reading its git checkout: %w", dir, err)
	}
	return c, nil
}

func configFile(ctx context.Context, path string) (*ConfigFile, error) {
	sum, size, err := filedigest.HashFile(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	cf := &ConfigFile{Name: filepath.Base(path), SHA256: sum, Size: size}
	if size > MaxInlineConfig {
		return cf, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			return nil, fmt.Errorf("--config %s: not valid JSON: %w", path, err)
		}
		cf.Format, cf.Content = "json", v
	case ".yaml", ".yml":
		v, err := yamlToJSON(b)
		if err != nil {
			return nil, fmt.Errorf("--config %s: not valid YAML: %w", path, err)
		}
		cf.Format, cf.Content = "yaml", v
	}
	return cf, nil
}

// yamlToJSON decodes YAML into the values encoding/json would give for
// the same document (string keys only), so the statement is plain JSON.
func yamlToJSON(b []byte) (any, error) {
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	j, err := json.Marshal(normaliseYAML(v))
	if err != nil {
		return nil, err
	}
	var out any
	dec := json.NewDecoder(bytes.NewReader(j))
	return out, dec.Decode(&out)
}

func normaliseYAML(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normaliseYAML(e)
		}
		return x
	case map[any]any:
		m := map[string]any{}
		for k, e := range x {
			m[fmt.Sprint(k)] = normaliseYAML(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = normaliseYAML(e)
		}
		return x
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	}
	return v
}

func seeds(specs []string) (map[string]string, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, s := range specs {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			k, v = "seed", s
		}
		if k == "" || v == "" {
			return nil, fmt.Errorf("--seed %q: want NAME=VALUE (or VALUE for the seed named \"seed\")", s)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("--seed %s is given twice", k)
		}
		out[k] = v
	}
	return out, nil
}

func metrics(ctx context.Context, path string) (*Metrics, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	if fi.Size() > MaxMetrics {
		return nil, fmt.Errorf("--metrics %s: %d bytes, over the %d-byte limit for an inlined metrics file", path, fi.Size(), MaxMetrics)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	var vals map[string]any
	if err := json.Unmarshal(b, &vals); err != nil {
		return nil, fmt.Errorf("--metrics %s: want a JSON object: %w", path, err)
	}
	sum, _, err := filedigest.HashFile(ctx, path)
	if err != nil {
		return nil, err
	}
	return &Metrics{Name: filepath.Base(path), SHA256: sum, Values: vals}, nil
}

var trainingSchema = sync.OnceValues(func() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(TrainingSchema))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("training.schema.json", doc); err != nil {
		return nil, err
	}
	return c.Compile("training.schema.json")
})

// ValidateTraining checks a predicate's JSON against training.schema.json.
func ValidateTraining(pred []byte) error {
	sch, err := trainingSchema()
	if err != nil {
		return fmt.Errorf("the embedded training schema does not compile: %w", err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(pred))
	if err != nil {
		return err
	}
	return sch.Validate(inst)
}
