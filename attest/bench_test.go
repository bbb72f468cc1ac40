package attest_test

import (
	"archive/tar"
	"fmt"
	"io"
	"math/rand"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/mlenv/mlenv/attest"
)

var (
	benchFiles   []string
	benchImgOnce sync.Once
	benchImg     v1.Image
)

// sbomBenchImage is a synthetic image of MLENV_SBOM_BENCH_MB (default
// 1024) MiB in 20,000 files over 4 gzip layers, with dpkg and Python
// metadata among them. Layers are written to temporary files once.
func sbomBenchImage(b *testing.B) v1.Image {
	benchImgOnce.Do(func() {
		mb := 1024
		if v, err := strconv.Atoi(os.Getenv("MLENV_SBOM_BENCH_MB")); err == nil && v > 0 {
			mb = v
		}
		rng := rand.New(rand.NewSource(1))
		const files, layers = 20000, 4
		per := int64(mb) << 20 / files
		chunk := make([]byte, per)
		img := empty.Image
		for l := 0; l < layers; l++ {
			f, err := os.CreateTemp("", "mlenv-sbom-bench-*.tar")
			if err != nil {
				b.Fatal(err)
			}
			tw := tar.NewWriter(f)
			for i := 0; i < files/layers; i++ {
				rng.Read(chunk)
				tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("opt/l%d/f%05d.bin", l, i), Mode: 0o644, Size: per, Typeflag: tar.TypeReg})
				tw.Write(chunk)
				if i%500 == 0 {
					meta := []byte(fmt.Sprintf("Metadata-Version: 2.1\nName: pkg%d-%d\nVersion: 1.%d\nLicense: MIT\n", l, i, i))
					tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("usr/lib/python3/dist-packages/pkg%d_%d-1.%d.dist-info/METADATA", l, i, i), Mode: 0o644, Size: int64(len(meta)), Typeflag: tar.TypeReg})
					tw.Write(meta)
				}
			}
			status := []byte("Package: libc6\nStatus: install ok installed\nVersion: 2.36\nArchitecture: amd64\n")
			tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("var/lib/dpkg/status.d/p%d", l), Mode: 0o644, Size: int64(len(status)), Typeflag: tar.TypeReg})
			tw.Write(status)
			tw.Close()
			f.Close()
			name := f.Name()
			benchFiles = append(benchFiles, name)
			layer, err := tarball.LayerFromFile(name)
			if err != nil {
				b.Fatal(err)
			}
			if img, err = mutate.AppendLayers(img, layer); err != nil {
				b.Fatal(err)
			}
		}
		benchImg = img
	})
	return benchImg
}

func peakHeap(b *testing.B, f func()) {
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	done := make(chan struct{})
	var peak uint64
	go func() {
		var m runtime.MemStats
		for {
			select {
			case <-done:
				return
			default:
			}
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak {
				peak = m.HeapInuse
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	f()
	close(done)
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}

// BenchmarkSBOMInventory reads the package metadata of the image, as the
// SBOM does: tar entries streamed, only metadata files read.
func BenchmarkSBOMInventory(b *testing.B) {
	img := sbomBenchImage(b)
	b.ResetTimer()
	peakHeap(b, func() {
		for i := 0; i < b.N; i++ {
			inv, err := attest.ReadInventory(img)
			if err != nil {
				b.Fatal(err)
			}
			if len(inv.Packages) < 40 {
				b.Fatalf("found %d packages", len(inv.Packages))
			}
		}
	})
}

// BenchmarkReadAllLayers is the floor: every layer's bytes read once.
func BenchmarkReadAllLayers(b *testing.B) {
	img := sbomBenchImage(b)
	layers, _ := img.Layers()
	b.ResetTimer()
	peakHeap(b, func() {
		for i := 0; i < b.N; i++ {
			for _, l := range layers {
				rc, _ := l.Uncompressed()
				io.Copy(io.Discard, rc)
				rc.Close()
			}
		}
	})
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, f := range benchFiles {
		os.Remove(f)
	}
	os.Exit(code)
}
