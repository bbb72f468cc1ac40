package attest

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/mlenv/mlenv/internal/testutil"
)

func trainingFixture(t *testing.T) (key, img, model string) {
	t.Helper()
	t.Setenv("COSIGN_PASSWORD", "")
	key, _, err := GenerateKeyPair(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(testutil.RandomImage(t, "linux", "amd64")); err != nil {
		t.Fatal(err)
	}
	model = filepath.Join(t.TempDir(), "model")
	testutil.WriteSafetensors(t, filepath.Join(model, "model.safetensors"), map[string][]int{"w": {4, 4}}, 1)
	os.WriteFile(filepath.Join(model, "config.json"), []byte(`{}`), 0o644)
	return key, "oci:" + dir, model
}

// Each bad input is refused with what was wrong, and no bundle is
// written.
func TestRecordRunRefusesBadInputsAndWritesNothing(t *testing.T) {
	key, img, model := trainingFixture(t)
	data := t.TempDir()
	os.WriteFile(filepath.Join(data, "a.jsonl"), []byte("{}"), 0o644)
	badYAML := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(badYAML, []byte("a: [1,\n"), 0o644)
	bigMetrics := filepath.Join(t.TempDir(), "m.json")
	os.WriteFile(bigMetrics, []byte(`{"a":"`+strings.Repeat("x", MaxMetrics)+`"}`), 0o644)
	linked := filepath.Join(t.TempDir(), "linked")
	os.MkdirAll(linked, 0o755)
	os.Symlink("/etc/passwd", filepath.Join(linked, "weights.bin"))
	now := time.Now()
	for name, tc := range map[string]struct {
		edit func(*TrainingOptions)
		want string
	}{
		"no training image":      {func(o *TrainingOptions) { o.TrainingImage = "" }, "--training-image is required"},
		"missing dataset":        {func(o *TrainingOptions) { o.Datasets = []string{"s3://x=" + filepath.Join(data, "nope")} }, "--dataset s3://x="},
		"config not YAML":        {func(o *TrainingOptions) { o.Configs = []string{badYAML} }, "not valid YAML"},
		"metrics too large":      {func(o *TrainingOptions) { o.Metrics = bigMetrics }, "over the"},
		"seed twice":             {func(o *TrainingOptions) { o.Seeds = []string{"torch=1", "torch=2"} }, "given twice"},
		"ends before it started": {func(o *TrainingOptions) { o.Started, o.Finished = now, now.Add(-time.Hour) }, "before --started"},
		"symlink in the model":   {func(o *TrainingOptions) { o.Model = linked }, "not a regular file"},
		"not a model at all":     {func(o *TrainingOptions) { o.Model = "./no/such/model" }, "no such file or folder"},
	} {
		o := TrainingOptions{Model: model, KeyRef: key, TrainingImage: img, Datasets: []string{"s3://d=" + data}}
		tc.edit(&o)
		_, err := RecordRun(context.Background(), o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error mentioning %q", name, err, tc.want)
		}
		if _, err := os.Stat(BesideBundle(o.Model)); err == nil {
			t.Errorf("%s: a bundle was written", name)
			os.Remove(BesideBundle(o.Model))
		}
	}
}

// What is recorded: the schema holds, YAML configs are inlined as JSON,
// the lock label and the times come through.
func TestRecordRunPredicate(t *testing.T) {
	key, img, model := trainingFixture(t)
	cfg := filepath.Join(t.TempDir(), "train.yaml")
	os.WriteFile(cfg, []byte("lr: 0.1\nsched: {warmup: 10}\n"), 0o644)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("x", 3600))
	p, subjects, ref, err := BuildTraining(context.Background(), TrainingOptions{Model: model, KeyRef: key, TrainingImage: img,
		Configs: []string{cfg}, Seeds: []string{"42"}, Started: start, Finished: start.Add(time.Hour), Command: []string{"python", "t.py"}})
	if err != nil {
		t.Fatal(err)
	}
	if ref != nil || len(subjects) != 2 || subjects[0].Name != "config.json" || subjects[1].Name != "model.safetensors" {
		t.Fatalf("subjects %+v", subjects)
	}
	b, _ := json.Marshal(p)
	if err := ValidateTraining(b); err != nil {
		t.Fatalf("schema: %v\n%s", err, b)
	}
	c := p.Configs[0].Content.(map[string]any)
	if c["lr"] != 0.1 || c["sched"].(map[string]any)["warmup"] != 10.0 || p.Seeds["seed"] != "42" {
		t.Fatalf("config %v seeds %v", c, p.Seeds)
	}
	if p.StartedOn.Location() != time.UTC || !p.StartedOn.Equal(start) {
		t.Fatalf("started %v", p.StartedOn)
	}
	// The schema refuses what it should.
	var m map[string]any
	json.Unmarshal(b, &m)
	m["trainingImage"].(map[string]any)["digest"] = "md5:abc"
	b, _ = json.Marshal(m)
	if ValidateTraining(b) == nil {
		t.Fatal("a bad digest passed the schema")
	}
}
