package modelpack

import (
	"context"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/mlenv/mlenv/internal/filedigest"
)

// benchBytes is the model size: MLENV_BENCH_MODEL_BYTES, default 4 GiB
// (the figure).
func benchBytes() int64 {
	if s := os.Getenv("MLENV_BENCH_MODEL_BYTES"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
			return n
		}
	}
	return 4 << 30
}

// writeBenchModel writes a few large shards (distinct pseudo-random
// bytes) plus small config files.
func writeBenchModel(b *testing.B, dir string, total int64) {
	const shards = 4
	buf := make([]byte, 8<<20)
	for i := 0; i < shards; i++ {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, shards)))
		if err != nil {
			b.Fatal(err)
		}
		r := rand.New(rand.NewPCG(uint64(i), 42))
		for left := total / shards; left > 0; {
			for k := 0; k+8 <= len(buf); k += 8 {
				v := r.Uint64()
				buf[k], buf[k+1], buf[k+2], buf[k+3], buf[k+4], buf[k+5], buf[k+6], buf[k+7] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24), byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56)
			}
			n := min(int64(len(buf)), left)
			if _, err := f.Write(buf[:n]); err != nil {
				b.Fatal(err)
			}
			left -= n
		}
		f.Close()
	}
	for _, n := range []string{"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"} {
		os.WriteFile(filepath.Join(dir, n), []byte(`{"name":"`+n+`"}`), 0o644)
	}
}

func timeCmd(b *testing.B, dir string, name string, args ...string) time.Duration {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Stdout = io.Discard
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("%s %v: %v\n%s", name, args, err, stderr.String())
	}
	return time.Since(start)
}

// BenchmarkPushModel: hashing and pushing a model folder to a registry on
// loopback (go-containerregistry's registry, blobs on disk), next to
// sha256sum of the same files on all cores (the floor) and crane pushing
// the same files as one tarball layer. Run it with
//
//	go test ./modelpack -run XXX -bench PushModel -benchtime 1x
//
// (MLENV_BENCH_MODEL_BYTES sets the size). It needs sha256sum; crane is
// optional (its row is skipped without it).
func BenchmarkPushModel(b *testing.B) {
	if _, err := exec.LookPath("sha256sum"); err != nil {
		b.Skip("sha256sum is not installed: it is the floor the hashing is compared with")
	}
	total := benchBytes()
	dir := b.TempDir()
	model := filepath.Join(dir, "model")
	os.MkdirAll(model, 0o755)
	writeBenchModel(b, model, total)
	os.MkdirAll(filepath.Join(dir, "registry"), 0o755)
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithBlobHandler(registry.NewDiskBlobHandler(filepath.Join(dir, "registry")))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	ctx := context.Background()
	gib := float64(total) / (1 << 30)
	rate := func(d time.Duration) string { return fmt.Sprintf("%.2f GiB/s", gib/d.Seconds()) }
	cores := runtime.NumCPU()

	for i := 0; i < b.N; i++ {
		// Warm the page cache once so that every row reads from memory.
		timeCmd(b, model, "sh", "-c", "cat * > /dev/null")
		floor := timeCmd(b, model, "sh", "-c", fmt.Sprintf("ls | xargs -P %d -n 1 sha256sum", cores))
		start := time.Now()
		if _, err := filedigest.Sum(ctx, model, filedigest.Options{}); err != nil {
			b.Fatal(err)
		}
		hash := time.Since(start)
		start = time.Now()
		first, err := Push(ctx, model, host+"/bench/model:v1", Options{})
		if err != nil {
			b.Fatal(err)
		}
		push := time.Since(start)
		start = time.Now()
		second, err := Push(ctx, model, host+"/bench/model:v1", Options{})
		if err != nil {
			b.Fatal(err)
		}
		again := time.Since(start)
		if second.Uploaded != 0 || second.Digest != first.Digest {
			b.Fatalf("second push of an unchanged model uploaded %d blobs (digest %s, then %s)", second.Uploaded, first.Digest, second.Digest)
		}
		b.ReportMetric(float64(hash)/float64(floor), "hash/floor")
		b.ReportMetric(gib/push.Seconds(), "push-GiB/s")
		b.ReportMetric(float64(second.Uploaded), "blobs-resent")
		b.Logf("model %.2f GiB (4 shards + 4 small files), %d cores", gib, cores)
		b.Logf("%-44s %9s %12s", "step", "wall", "throughput")
		b.Logf("%-44s %9s %12s", "sha256sum, one process per file (floor)", floor.Round(time.Millisecond), rate(floor))
		if _, err := exec.LookPath("openssl"); err == nil {
			ossl := timeCmd(b, model, "sh", "-c", fmt.Sprintf("ls | xargs -P %d -n 1 openssl dgst -sha256", cores))
			b.Logf("%-44s %9s %12s  (%.2fx mlenv's hashing time)", "openssl dgst -sha256, one process per file", ossl.Round(time.Millisecond), rate(ossl), float64(ossl)/float64(hash))
		}
		b.Logf("%-44s %9s %12s  (%.2fx the floor)", "mlenv hashing (filedigest, all cores)", hash.Round(time.Millisecond), rate(hash), float64(hash)/float64(floor))
		b.Logf("%-44s %9s %12s  (%d blobs sent)", "mlenv push-model, first push (hash+upload)", push.Round(time.Millisecond), rate(push), first.Uploaded)
		b.Logf("%-44s %9s %12s  (%d blobs sent)", "mlenv push-model, unchanged model again", again.Round(time.Millisecond), rate(again), second.Uploaded)
		if crane, err := exec.LookPath("crane"); err == nil {
			tarball := filepath.Join(dir, "model.tar")
			tarTime := timeCmd(b, model, "tar", "-cf", tarball, ".")
			craneTime := timeCmd(b, dir, crane, "append", "--insecure", "-f", tarball, "-t", host+"/bench/crane:v1")
			b.Logf("%-44s %9s %12s  (+ %s to write the tar)", "crane append, one tarball layer", craneTime.Round(time.Millisecond), rate(craneTime), tarTime.Round(time.Millisecond))
			os.Remove(tarball)
		} else {
			b.Logf("crane row skipped: crane is not installed")
		}
	}
}
