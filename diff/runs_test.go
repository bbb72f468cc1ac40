package diff

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/mlenv/mlenv/attest"
	"github.com/mlenv/mlenv/internal/testutil"
)

// Two runs that differ in one config value and one dataset file: the
// diff of the two models names exactly those two things.
func TestTwoRunsDifferInOneConfigValueAndOneDatasetFile(t *testing.T) {
	t.Setenv("COSIGN_PASSWORD", "")
	key, _, err := attest.GenerateKeyPair(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	imgDir := t.TempDir()
	lp, err := layout.Write(imgDir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(testutil.RandomImage(t, "linux", "amd64")); err != nil {
		t.Fatal(err)
	}
	run := func(lr string, shard1 string) string {
		dir := t.TempDir()
		data := filepath.Join(dir, "data")
		os.MkdirAll(data, 0o755)
		os.WriteFile(filepath.Join(data, "shard-0.jsonl"), []byte("{\"x\":0}\n"), 0o644)
		os.WriteFile(filepath.Join(data, "shard-1.jsonl"), []byte(shard1), 0o644)
		cfg := filepath.Join(dir, "train.yaml")
		os.WriteFile(cfg, []byte("lr: "+lr+"\nbatch: 32\noptimizer: {name: adamw, betas: [0.9, 0.95]}\n"), 0o644)
		model := filepath.Join(dir, "model")
		testutil.WriteSafetensors(t, filepath.Join(model, "model.safetensors"), map[string][]int{"w": {4, 4}}, float32(len(lr)+len(shard1)))
		_, err := attest.RecordRun(context.Background(), attest.TrainingOptions{Model: model, KeyRef: key, TrainingImage: "oci:" + imgDir,
			Datasets: []string{"s3://corp/train=" + data}, Configs: []string{cfg}, Seeds: []string{"torch=7"}, Command: []string{"python", "train.py"}})
		if err != nil {
			t.Fatal(err)
		}
		return model
	}
	a := run("0.001", "{\"x\":1}\n")
	b := run("0.002", "{\"x\":2}\n")
	da, err := Load(context.Background(), a, "")
	if err != nil {
		t.Fatal(err)
	}
	db, err := Load(context.Background(), b, "")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Compare(da, db, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range r.Findings {
		got = append(got, f.Section+":"+f.Key+":"+string(f.Kind))
	}
	sort.Strings(got)
	want := "datasets:s3://corp/train/shard-1.jsonl:changed run:config/train.yaml:lr:changed"
	if strings.Join(got, " ") != want {
		t.Fatalf("findings %v, want %s", got, want)
	}
	for _, f := range r.Findings {
		if f.Key == "config/train.yaml:lr" && (f.A != "0.001" || f.B != "0.002") {
			t.Errorf("lr: %q -> %q", f.A, f.B)
		}
	}
	// The same run against itself: nothing.
	if r, _ := Compare(da, da, Options{}); !r.Same {
		t.Errorf("a run differs from itself: %+v", r.Findings)
	}
}

func TestFlattenKeys(t *testing.T) {
	out := map[string]string{}
	flatten("", map[string]any{"a": map[string]any{"b": []any{1.0, "x"}}, "e": map[string]any{}}, out)
	if len(out) != 3 || out["a.b[0]"] != "1" || out["a.b[1]"] != `"x"` || out["e"] != "{}" {
		t.Fatalf("%v", out)
	}
}
