package cuda

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mlenv/mlenv/internal/testutil"
)

var (
	bigOnce sync.Once
	bigPath string
	bigErr  error
)

// bigELF writes, once, an ELF with a ~300 MB .nv_fatbin section of many
// entries (about what libtorch_cuda.so carries).
func bigELF(b *testing.B) (string, int64, int64) {
	bigOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mlenv-fatbin-bench-*")
		if err != nil {
			bigErr = err
			return
		}
		bigPath = filepath.Join(dir, "libbig.so")
		payload := bytes.Repeat([]byte{0xAB}, 256<<10)
		var containers [][]byte
		for c := 0; c < 143; c++ { // 143 x 8 x ~256 KiB: ~300 MB
			var entries [][]byte
			for _, arch := range []uint32{70, 75, 80, 86, 89, 90, 100, 120} {
				entries = append(entries, fixtureEntry(kindELF, arch, payload[:len(payload)-int(arch)], true, 1<<20))
			}
			entries = append(entries, fixtureEntry(kindPTX, 120, payload[:1000], true, 4000))
			containers = append(containers, fixtureContainer(entries...))
		}
		var size int64
		for _, c := range containers {
			size += int64(len(c))
		}
		f, err := os.Create(bigPath)
		if err != nil {
			bigErr = err
			return
		}
		defer f.Close()
		bigErr = testutil.WriteELF(f, []testutil.ELFSection{
			{Name: ".text", Size: 1 << 20, Write: func(w io.Writer) error { _, err := w.Write(make([]byte, 1<<20)); return err }},
			{Name: ".nv_fatbin", Size: size, Write: func(w io.Writer) error {
				for _, c := range containers {
					if _, err := w.Write(c); err != nil {
						return err
					}
				}
				return nil
			}},
		})
	})
	if bigErr != nil {
		b.Fatal(bigErr)
	}
	f, err := os.Open(bigPath)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	entries, err := ScanELF(f, fi.Size())
	if err != nil || len(entries) != 143*9 {
		b.Fatalf("fixture: %v, %d entries", err, len(entries))
	}
	return bigPath, fi.Size(), 1 << 20 // section starts after .text (1 MiB + header)
}

// BenchmarkScanFatbinHeaders reads only ELF and fat binary headers.
func BenchmarkScanFatbinHeaders(b *testing.B) {
	p, size, _ := bigELF(b)
	f, _ := os.Open(p)
	defer f.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := ScanELF(f, size); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadFatbinSection is the floor a naive reader pays: reading the
// whole section once (from the page cache).
func BenchmarkReadFatbinSection(b *testing.B) {
	p, size, _ := bigELF(b)
	f, _ := os.Open(p)
	defer f.Close()
	buf := make([]byte, 1<<20)
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := io.NewSectionReader(f, 0, size)
		for {
			_, err := r.Read(buf)
			if err == io.EOF {
				break
			}
		}
	}
}

// BenchmarkScanFatbinStream is the image path: the file arrives as a
// stream (from a layer) and every byte passes through once.
func BenchmarkScanFatbinStream(b *testing.B) {
	p, size, _ := bigELF(b)
	b.SetBytes(size)
	for i := 0; i < b.N; i++ {
		f, _ := os.Open(p)
		entries, err := ScanStream(f)
		f.Close()
		if err != nil || len(entries) != 143*9 {
			b.Fatal(err, len(entries))
		}
	}
}
