package verify_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/mlenv/mlenv/attest"
	"github.com/mlenv/mlenv/builder"
	"github.com/mlenv/mlenv/fingerprint"
	"github.com/mlenv/mlenv/internal/cas"
	"github.com/mlenv/mlenv/internal/testutil"
	"github.com/mlenv/mlenv/lockfile"
	"github.com/mlenv/mlenv/modelpack"
	"github.com/mlenv/mlenv/verify"
)

// lineageFixture: a registry on 127.0.0.1 with an mlenv-built, attested
// training image; two key pairs; a host fingerprint; a generated model
// (safetensors shards), a dataset folder and a YAML config.
type lineageFixture struct {
	host, image, key, pub, otherKey, otherPub, fp string
	model, dataset, config, metrics, code         string
}

func newLineageFixture(t *testing.T) *lineageFixture {
	t.Helper()
	t.Setenv("COSIGN_PASSWORD", "pw")
	f := &lineageFixture{host: testutil.Registry(t, nil)}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "app"), 0o755)
	os.WriteFile(filepath.Join(dir, "app", "train.py"), []byte("print('train')\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "mlenv.yaml"), []byte("name: trainer\nepoch: 1700000000\nplatforms: [linux/amd64]\nbase: scratch\nfiles: [{src: app, dst: /app}]\n"), 0o644)
	in, err := lockfile.LoadIntent(filepath.Join(dir, "mlenv.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cache := &cas.Cache{Dir: t.TempDir()}
	l, err := (&lockfile.Resolver{Fetcher: &cas.Fetcher{Cache: cache, BaseDir: dir}}).Resolve(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := l.Encode()
	lockPath := filepath.Join(dir, "mlenv.lock")
	os.WriteFile(lockPath, enc, 0o644)
	ld, _ := l.Digest()
	res, err := builder.Build(context.Background(), builder.Options{Lock: l, LockDigest: ld, BaseDir: dir, Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	ref := f.host + "/team/trainer:v1"
	if err := builder.Write(context.Background(), res, ref); err != nil {
		t.Fatal(err)
	}
	r, _ := name.ParseReference(ref)
	f.image = r.Context().Digest(res.Digest.String()).String()
	if f.key, f.pub, err = attest.GenerateKeyPair(t.TempDir(), false); err != nil {
		t.Fatal(err)
	}
	if f.otherKey, f.otherPub, err = attest.GenerateKeyPair(t.TempDir(), false); err != nil {
		t.Fatal(err)
	}
	if _, err := attest.Run(context.Background(), attest.Options{Image: f.image, KeyRef: f.key, LockPath: lockPath, MlenvVersion: "test", CompressorID: builder.CompressorID}); err != nil {
		t.Fatal(err)
	}
	fp := fingerprint.Capture(fingerprint.Options{})
	b, _ := fp.JSON()
	f.fp = filepath.Join(dir, "host.json")
	os.WriteFile(f.fp, b, 0o644)

	f.model = filepath.Join(t.TempDir(), "model")
	writeModel(t, f.model, 1)
	f.dataset = filepath.Join(dir, "data")
	os.MkdirAll(f.dataset, 0o755)
	os.WriteFile(filepath.Join(f.dataset, "train-000.jsonl"), []byte(`{"x":1}`+"\n"), 0o644)
	os.WriteFile(filepath.Join(f.dataset, "train-001.jsonl"), []byte(`{"x":2}`+"\n"), 0o644)
	f.config = filepath.Join(dir, "train.yaml")
	os.WriteFile(f.config, []byte("lr: 0.001\nbatch: 32\noptimizer: {name: adamw, betas: [0.9, 0.95]}\n"), 0o644)
	f.metrics = filepath.Join(dir, "metrics.json")
	os.WriteFile(f.metrics, []byte(`{"eval_loss": 1.25, "accuracy": 0.81}`), 0o644)
	f.code = filepath.Join(dir, "app")
	return f
}

func writeModel(t *testing.T, dir string, seed float32) {
	testutil.WriteSafetensors(t, filepath.Join(dir, "model-00001-of-00002.safetensors"), map[string][]int{"embed.weight": {32, 8}}, seed)
	testutil.WriteSafetensors(t, filepath.Join(dir, "model-00002-of-00002.safetensors"), map[string][]int{"lm_head.weight": {8, 32}}, seed+1)
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"hidden_size": 8}`), 0o644)
}

func (f *lineageFixture) record(t *testing.T, model, key, trainingImage, datasetURI string) {
	t.Helper()
	o := attest.TrainingOptions{Model: model, KeyRef: key, TrainingImage: trainingImage, Fingerprint: f.fp,
		Datasets: []string{datasetURI + "=" + f.dataset}, Configs: []string{f.config}, Seeds: []string{"torch=1234"},
		Command: []string{"python", "train.py"}, Metrics: f.metrics, Code: f.code, MlenvVersion: "test",
		Started: time.Now().Add(-time.Hour), Finished: time.Now()}
	if _, err := attest.RecordRun(context.Background(), o); err != nil {
		t.Fatal(err)
	}
}

func (f *lineageFixture) verifier(t *testing.T, policy string) *verify.Verifier {
	t.Helper()
	ks, err := verify.LoadKeys([]string{f.pub})
	if err != nil {
		t.Fatal(err)
	}
	p := verify.DefaultPolicy()
	if policy != "" {
		if p, err = verify.ParsePolicy([]byte("apiVersion: mlenv.dev/v1\nkind: VerifyPolicy\n" + policy)); err != nil {
			t.Fatal(err)
		}
	}
	v, err := verify.NewVerifier(ks, p)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func verifyModel(t *testing.T, v *verify.Verifier, req verify.ModelRequest) *verify.Result {
	t.Helper()
	res, err := v.VerifyModel(context.Background(), req)
	if err != nil {
		t.Fatalf("verify model %s: %v", req.Model, err)
	}
	return res
}

const allowPolicy = "lineage:\n  allowedDatasets: ['s3://corp-data/*']\n  maxAge: 1d\n  requiredMetrics: [eval_loss]\n"

func TestLineageEndToEnd(t *testing.T) {
	f := newLineageFixture(t)
	v := f.verifier(t, allowPolicy)

	// A local model: the bundle is written beside the folder.
	f.record(t, f.model, f.key, f.image, "s3://corp-data/train")
	if _, err := os.Stat(f.model + attest.BundleSuffix); err != nil {
		t.Fatalf("no bundle beside the model: %v", err)
	}
	res := verifyModel(t, v, verify.ModelRequest{Model: f.model})
	wantModelDecision(t, res, verify.Allow)
	wantModelCheck(t, res, "lineage.subjects", verify.Pass, "3 files")
	wantModelCheck(t, res, "lineage.trainingImage", verify.Pass, "provenance and SBOM verified")
	wantModelCheck(t, res, "lineage.trainingImage.lock", verify.Pass, "sha256:")
	wantModelCheck(t, res, "policy.lineage.datasets.s3://corp-data/train", verify.Pass, "s3://corp-data/train")
	wantModelCheck(t, res, "policy.lineage.metrics.eval_loss", verify.Pass, "present")

	// The predicate is valid against the published schema.
	validateTraining(t, res.Statements[0].Predicate)

	// The same model pushed to the registry, recorded there, verified.
	ref := f.host + "/team/model:v1"
	pushed, err := modelpack.Push(context.Background(), f.model, ref, modelpack.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.record(t, ref, f.key, f.image, "s3://corp-data/train")
	res = verifyModel(t, v, verify.ModelRequest{Model: ref})
	wantModelDecision(t, res, verify.Allow)
	wantModelCheck(t, res, "lineage.subjects", verify.Pass, pushed.Digest)

	t.Run("serving image and host compared with the training side", func(t *testing.T) {
		host := fingerprint.Capture(fingerprint.Options{})
		res := verifyModel(t, v, verify.ModelRequest{Model: f.model, Serving: f.image, Host: host})
		wantModelDecision(t, res, verify.Allow)
		wantModelCheck(t, res, "serving.statement.provenance", verify.Pass, "signed by")
		wantModelCheck(t, res, "reproduce.packages", verify.Pass, "same")
		wantModelCheck(t, res, "reproduce", verify.Pass, "same GPU")
		// Another host: a numerics environment variable set differently.
		other := fingerprint.Capture(fingerprint.Options{})
		if other.Env == nil {
			other.Env = map[string]string{}
		}
		other.Env["NVIDIA_TF32_OVERRIDE"] = "1"
		other.ID = other.ComputeID()
		res = verifyModel(t, f.verifier(t, allowPolicy+"runtime: {willRun: warn, willReproduce: enforce}\n"), verify.ModelRequest{Model: f.model, Serving: f.image, Host: other})
		wantModelDecision(t, res, verify.Deny)
		wantModelCheck(t, res, "reproduce.env.NVIDIA_TF32_OVERRIDE", verify.Fail, "1")
		// A serving image without statements: its checks fail, and the
		// packages cannot be compared.
		bare := testutil.Push(t, testutil.RandomImage(t, "linux", "amd64"), f.host+"/team/server:v1")
		res = verifyModel(t, v, verify.ModelRequest{Model: f.model, Serving: bare, Host: host})
		wantModelDecision(t, res, verify.Deny)
		wantModelCheck(t, res, "serving.statement.sbom", verify.Fail, "not attested")
		wantModelCheck(t, res, "reproduce.packages", verify.WarnStatus, "missing")
	})
	t.Run("weight file changed by one byte", func(t *testing.T) {
		p := filepath.Join(f.model, "model-00002-of-00002.safetensors")
		b, _ := os.ReadFile(p)
		orig := append([]byte(nil), b...)
		b[len(b)-1] ^= 1
		os.WriteFile(p, b, 0o644)
		defer os.WriteFile(p, orig, 0o644)
		res := verifyModel(t, v, verify.ModelRequest{Model: f.model})
		wantModelDecision(t, res, verify.Deny)
		wantModelCheck(t, res, "lineage.subjects", verify.Fail, "model-00002-of-00002.safetensors: sha256")
	})
	t.Run("dataset not on the allow-list", func(t *testing.T) {
		m := filepath.Join(t.TempDir(), "m")
		writeModel(t, m, 3)
		f.record(t, m, f.key, f.image, "s3://scraped/web")
		res := verifyModel(t, v, verify.ModelRequest{Model: m})
		wantModelDecision(t, res, verify.Deny)
		wantModelCheck(t, res, "policy.lineage.datasets.s3://scraped/web", verify.Fail, "s3://corp-data/*")
	})
	t.Run("training image without valid provenance", func(t *testing.T) {
		bare := testutil.Push(t, testutil.RandomImage(t, "linux", "amd64"), f.host+"/team/unattested:v1")
		m := filepath.Join(t.TempDir(), "m")
		writeModel(t, m, 4)
		f.record(t, m, f.key, bare, "s3://corp-data/train")
		res := verifyModel(t, v, verify.ModelRequest{Model: m})
		wantModelDecision(t, res, verify.Deny)
		wantModelCheck(t, res, "lineage.trainingImage", verify.Fail, "provenance")
	})
	t.Run("statement signed by another key", func(t *testing.T) {
		m := filepath.Join(t.TempDir(), "m")
		writeModel(t, m, 5)
		f.record(t, m, f.otherKey, f.image, "s3://corp-data/train")
		res := verifyModel(t, v, verify.ModelRequest{Model: m})
		wantModelDecision(t, res, verify.Deny)
		wantModelCheck(t, res, "lineage.statement", verify.Fail, "signature does not verify")
	})
	t.Run("statement copied onto another model", func(t *testing.T) {
		// Local: the bundle put beside other weights.
		m := filepath.Join(t.TempDir(), "m")
		writeModel(t, m, 6)
		b, _ := os.ReadFile(f.model + attest.BundleSuffix)
		os.WriteFile(m+attest.BundleSuffix, b, 0o644)
		res := verifyModel(t, v, verify.ModelRequest{Model: m})
		wantModelDecision(t, res, verify.Deny)
		wantModelCheck(t, res, "lineage.subjects", verify.Fail, "the statement says")
		// Registry: the signed envelope attached to another model's digest.
		other := f.host + "/team/model:other"
		op, err := modelpack.Push(context.Background(), m, other, modelpack.Options{})
		if err != nil {
			t.Fatal(err)
		}
		bu, _ := attest.ReadBundle(f.model + attest.BundleSuffix)
		od, _ := name.NewDigest(f.host + "/team/model@" + op.Digest)
		if err := attest.Attach(context.Background(), od, bu.Attestations); err != nil {
			t.Fatal(err)
		}
		res = verifyModel(t, v, verify.ModelRequest{Model: other})
		wantModelDecision(t, res, verify.Deny)
		wantModelCheck(t, res, "lineage.subjects", verify.Fail, "another model")
	})
	t.Run("no lineage at all", func(t *testing.T) {
		m := filepath.Join(t.TempDir(), "m")
		writeModel(t, m, 7)
		if _, err := v.VerifyModel(context.Background(), verify.ModelRequest{Model: m}); err == nil || !strings.Contains(err.Error(), "mlenv attest --model") {
			t.Fatalf("got %v", err)
		}
	})
}

func validateTraining(t *testing.T, pred json.RawMessage) {
	t.Helper()
	if err := attest.ValidateTraining(pred); err != nil {
		t.Fatalf("predicate does not match attest/training.schema.json: %v\n%s", err, pred)
	}
}

// wantModelDecision and wantModelCheck are e2e_test.go's helpers, which
// builds with cgo only; these tests run without it.
func wantModelDecision(t *testing.T, res *verify.Result, want verify.Decision) {
	t.Helper()
	if res.Decision != want {
		b, _ := json.MarshalIndent(res.Checks, "", " ")
		t.Fatalf("decision %s, want %s; checks:\n%s", res.Decision, want, b)
	}
}

func wantModelCheck(t *testing.T, res *verify.Result, name string, st verify.Status, msgPart string) {
	t.Helper()
	for _, c := range res.Checks {
		if c.Name == name {
			if c.Status != st || !strings.Contains(c.Message+" "+c.Actual+" "+c.Expected, msgPart) {
				t.Errorf("%s: %s %q (expected %q, actual %q); want %s mentioning %q", name, c.Status, c.Message, c.Expected, c.Actual, st, msgPart)
			}
			return
		}
	}
	t.Errorf("no check %s in %+v", name, res.Checks)
}
