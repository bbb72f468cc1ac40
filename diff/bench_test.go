package diff

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/mlenv/mlenv/internal/testutil"
)

// benchSize is the image size and file count of the --files benchmark:
// small by default so that `go test -bench` stays quick;
// MLENV_BENCH_DIFF_MB=1024 MLENV_BENCH_DIFF_FILES=20000 is the size.
func benchSize() (bytesPerImage int64, files int) {
	mb, n := int64(64), 2000
	if v, err := strconv.Atoi(os.Getenv("MLENV_BENCH_DIFF_MB")); err == nil && v > 0 {
		mb = int64(v)
	}
	if v, err := strconv.Atoi(os.Getenv("MLENV_BENCH_DIFF_FILES")); err == nil && v > 0 {
		n = v
	}
	return mb << 20, n
}

// writeBenchImage writes an OCI layout of `layers` layers holding `files`
// files of pseudo-random content. changed[i] files of
// layer i get other content, so that layer's digest differs.
func writeBenchImage(b *testing.B, dir string, total int64, files, layers int, changed []int) v1.Image {
	b.Helper()
	per := total / int64(files)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	var ls []v1.Layer
	for li := 0; li < layers; li++ {
		path := filepath.Join(dir, fmt.Sprintf("layer%d.tar", li))
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		tw := tar.NewWriter(f)
		buf := make([]byte, per)
		for i := li; i < files; i += layers {
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			// Half the entropy of random bytes: gzip has work to do, as with
			// real libraries (which compress to about 40-60%).
			for j := 0; j+8 <= len(buf); j += 8 {
				v := rng.Uint64() & 0x0f0f0f0f0f0f0f0f
				buf[j], buf[j+1], buf[j+2], buf[j+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
				buf[j+4], buf[j+5], buf[j+6], buf[j+7] = byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56)
			}
			if (i / layers) < changed[li] {
				buf[0] ^= 0xff
			}
			h := &tar.Header{Name: fmt.Sprintf("data/%d/f%06d.bin", li, i), Mode: 0o644, Size: per, Typeflag: tar.TypeReg}
			if err := tw.WriteHeader(h); err != nil {
				b.Fatal(err)
			}
			if _, err := tw.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		tw.Close()
		f.Close()
		l, err := tarball.LayerFromFile(path, tarball.WithCompressionLevel(gzip.BestSpeed))
		if err != nil {
			b.Fatal(err)
		}
		ls = append(ls, l)
	}
	img, err := mutate.AppendLayers(empty.Image, ls...)
	if err != nil {
		b.Fatal(err)
	}
	lp, err := layout.Write(filepath.Join(dir, "oci"), empty.Index)
	if err != nil {
		b.Fatal(err)
	}
	if err := lp.AppendImage(img); err != nil {
		b.Fatal(err)
	}
	for li := 0; li < layers; li++ {
		os.Remove(filepath.Join(dir, fmt.Sprintf("layer%d.tar", li)))
	}
	out, err := openImage(context.Background(), "oci:"+filepath.Join(dir, "oci"), "linux/amd64")
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// readAll is the floor: every layer's uncompressed bytes read once.
func readAll(b *testing.B, imgs ...v1.Image) int64 {
	var n int64
	for _, img := range imgs {
		ls, _ := img.Layers()
		for _, l := range ls {
			rc, err := l.Uncompressed()
			if err != nil {
				b.Fatal(err)
			}
			m, err := io.Copy(io.Discard, rc)
			rc.Close()
			if err != nil {
				b.Fatal(err)
			}
			n += m
		}
	}
	return n
}

// peakHeap samples the heap in use until stop is closed.
func peakHeap(stop <-chan struct{}) func() uint64 {
	var peak atomic.Uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() uint64 { <-done; return peak.Load() }
}

// BenchmarkFilesDiff compares two images that differ in a few files with
// --files, next to the floor of reading both images' layers once.
// "unshared": every layer differs (each holds a changed file);
// "shared": only the last layer differs, the others must not be read.
func BenchmarkFilesDiff(b *testing.B) {
	total, files := benchSize()
	const layers = 4
	for _, c := range []struct {
		name    string
		changed []int
	}{{"unshared", []int{1, 1, 1, 2}}, {"shared", []int{0, 0, 0, 3}}} {
		b.Run(c.name, func(b *testing.B) {
			dir := b.TempDir()
			a := writeBenchImage(b, filepath.Join(dir, "a"), total, files, layers, []int{0, 0, 0, 0})
			bb := writeBenchImage(b, filepath.Join(dir, "b"), total, files, layers, c.changed)
			start, cpu0 := time.Now(), testutil.CPUTime()
			n := readAll(b, a, bb)
			floor, floorCPU := time.Since(start), testutil.CPUTime()-cpu0
			da, db := &Description{Kind: KindImage, image: a}, &Description{Kind: KindImage, image: bb}
			b.ResetTimer()
			var r *Result
			stop := make(chan struct{})
			peak := peakHeap(stop)
			start, cpu0 = time.Now(), testutil.CPUTime()
			for i := 0; i < b.N; i++ {
				var err error
				if r, err = Compare(da, db, Options{Files: true}); err != nil {
					b.Fatal(err)
				}
			}
			elapsed := time.Since(start) / time.Duration(b.N)
			elapsedCPU := (testutil.CPUTime() - cpu0) / time.Duration(b.N)
			close(stop)
			b.StopTimer()
			want := 0
			for _, n := range c.changed {
				want += n
			}
			if got := r.Counts[SectionFiles]; got != want {
				b.Fatalf("%d files differ, want %d", got, want)
			}
			b.ReportMetric(floor.Seconds(), "floor-s")
			b.ReportMetric(elapsed.Seconds()/floor.Seconds(), "x-floor")
			if floorCPU > 0 {
				b.ReportMetric(floorCPU.Seconds(), "floor-cpu-s")
				b.ReportMetric(elapsedCPU.Seconds(), "diff-cpu-s")
				b.ReportMetric(elapsedCPU.Seconds()/floorCPU.Seconds(), "x-floor-cpu")
			}
			b.ReportMetric(float64(peak())/(1<<20), "peak-heap-MiB")
			b.ReportMetric(float64(n)/(1<<20), "floor-MiB-read")
		})
	}
}
