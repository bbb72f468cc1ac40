package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlenv/mlenv/internal/testutil"
)

// The whole chain through the CLI: build and attest a training image in a
// registry on 127.0.0.1, record a run for a generated model, push the
// model, verify it (local folder and registry), deny a changed weight,
// and diff two runs.
func TestModelLineageCLI(t *testing.T) {
	t.Setenv("COSIGN_PASSWORD", "pw")
	host := testutil.Registry(t, nil)
	dir := t.TempDir()
	example, _ := filepath.Abs("../../examples/minimal")
	project := filepath.Join(dir, "project")
	mustCopyDir(t, example, project)
	lock := filepath.Join(project, "mlenv.lock")
	image := host + "/team/trainer:v1"
	stdout, stderr, code := run(t, "build", "--lock", lock, "--output", image)
	if code != 0 {
		t.Fatalf("build: %s", stderr)
	}
	image = host + "/team/trainer@" + lastLine(stdout)
	keys := filepath.Join(dir, "keys")
	os.MkdirAll(keys, 0o755)
	if _, stderr, code := run(t, "generate-key-pair", "--dir", keys); code != 0 {
		t.Fatal(stderr)
	}
	key, pub := filepath.Join(keys, "cosign.key"), filepath.Join(keys, "cosign.pub")
	if _, stderr, code := run(t, "attest", image, "--key", key, "--lock", lock); code != 0 {
		t.Fatalf("attest image: %s", stderr)
	}

	record := func(model, lr, shard string) {
		t.Helper()
		data := filepath.Join(filepath.Dir(model), "data")
		os.MkdirAll(data, 0o755)
		os.WriteFile(filepath.Join(data, "a.jsonl"), []byte("{}\n"), 0o644)
		os.WriteFile(filepath.Join(data, "b.jsonl"), []byte(shard), 0o644)
		cfg := filepath.Join(filepath.Dir(model), "train.json")
		os.WriteFile(cfg, []byte(`{"lr": `+lr+`, "epochs": 3}`), 0o644)
		if _, stderr, code := run(t, "attest", "--model", model, "--training-image", image, "--key", key, "--dataset", "s3://corp/train="+data,
			"--config", cfg, "--seed", "torch=1", "--started", "2026-01-01T00:00:00Z", "--finished", "2026-01-01T01:00:00Z", "--", "python", "train.py"); code != 0 {
			t.Fatalf("attest --model %s: %s", model, stderr)
		}
	}
	m1 := filepath.Join(dir, "run1", "model")
	testutil.WriteSafetensors(t, filepath.Join(m1, "model.safetensors"), map[string][]int{"w": {8, 8}}, 1)
	record(m1, "0.1", "{\"x\":1}\n")
	if stdout, stderr, code := run(t, "verify", m1, "--key", pub); code != 0 {
		t.Fatalf("verify local model: %d\n%s\n%s", code, stdout, stderr)
	}

	ref := host + "/team/model:v1"
	out1, stderr, code := run(t, "push-model", m1, ref)
	if code != 0 {
		t.Fatal(stderr)
	}
	out2, stderr, _ := run(t, "push-model", m1, ref)
	if lastLine(out1) != lastLine(out2) || !strings.Contains(stderr, "0 uploaded") {
		t.Fatalf("second push: %s then %s (%s)", lastLine(out1), lastLine(out2), stderr)
	}
	if _, stderr, code := run(t, "attest", "--model", ref, "--training-image", image, "--key", key); code != 0 {
		t.Fatalf("attest registry model: %s", stderr)
	}
	if stdout, stderr, code := run(t, "verify", "--model", ref, "--key", pub); code != 0 || !strings.Contains(stdout, "ALLOWED") {
		t.Fatalf("verify registry model: %d\n%s\n%s", code, stdout, stderr)
	}
	pulled := filepath.Join(dir, "pulled")
	if out, stderr, code := run(t, "pull-model", ref, pulled); code != 0 || lastLine(out) != lastLine(out1) {
		t.Fatalf("pull-model: %s %s", out, stderr)
	}

	// One byte of the weights changed: denied, exit 1, the file named.
	p := filepath.Join(m1, "model.safetensors")
	b, _ := os.ReadFile(p)
	b[len(b)-1] ^= 1
	os.WriteFile(p, b, 0o644)
	if stdout, _, code := run(t, "verify", m1, "--key", pub); code != 1 || !strings.Contains(stdout, "FAIL  lineage.subjects") || !strings.Contains(stdout, "model.safetensors") {
		t.Fatalf("changed weight: exit %d\n%s", code, stdout)
	}

	m2 := filepath.Join(dir, "run2", "model")
	testutil.WriteSafetensors(t, filepath.Join(m2, "model.safetensors"), map[string][]int{"w": {8, 8}}, 2)
	record(m2, "0.2", "{\"x\":2}\n")
	r, code := diffJSON(t, m1, m2)
	if code != 1 {
		t.Fatalf("diff exit %d", code)
	}
	if got := strings.Join(keysOf(r, ""), " "); got != "datasets:s3://corp/train/b.jsonl run:config/train.json:lr" {
		t.Fatalf("diff names %s", got)
	}
}
