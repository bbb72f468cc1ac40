package deflate

import (
	"bytes"
	"compress/flate"
	"io"
	"math/rand"
	"testing"

	kflate "github.com/klauspost/compress/flate"
)

// sample is content that mixes compressible text and random bytes, so
// that compressors emit Huffman and stored blocks in one stream.
func sample(rng *rand.Rand, n int) []byte {
	words := []string{"def ", "return ", "self", ".linear", "(x)", " * ", "bias", "\n    ", "import ", "torch"}
	var b bytes.Buffer
	for b.Len() < n {
		if rng.Intn(4) == 0 {
			r := make([]byte, rng.Intn(100000))
			rng.Read(r)
			b.Write(r)
			continue
		}
		for i := rng.Intn(20000); i > 0; i-- {
			b.WriteString(words[rng.Intn(len(words))])
		}
	}
	return b.Bytes()[:n]
}

func compress(t testing.TB, data []byte, level int, klaus bool) []byte {
	var b bytes.Buffer
	var w io.WriteCloser
	var err error
	if klaus {
		w, err = kflate.NewWriter(&b, level)
	} else {
		w, err = flate.NewWriter(&b, level)
	}
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func inflateBounds(t testing.TB, stream []byte) ([]byte, Bounds) {
	r := NewReader(bytes.NewReader(stream), int64(len(stream)))
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	b, ok := r.Bounds()
	if !ok {
		t.Fatal("no bounds after EOF")
	}
	return out, b
}

// TestJoin joins streams written by two compressors at every level, of
// sizes from 0 to a few MiB, and checks that the standard inflater reads
// the joined stream as the concatenation of their contents.
func TestJoin(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	var joined, want bytes.Buffer
	sizes := []int{0, 1, 2, 100, 65535, 65536, 200000, 3 << 20}
	for i := 0; i < 40; i++ {
		n := sizes[i%len(sizes)]
		if i >= len(sizes) {
			n = rng.Intn(1 << 20)
		}
		data := sample(rng, n)
		level := i % 10
		stream := compress(t, data, level, i%2 == 1)
		got, b := inflateBounds(t, stream)
		if !bytes.Equal(got, data) {
			t.Fatalf("stream %d: inflated content differs", i)
		}
		if b.Bytes() != int64(len(stream)) {
			t.Fatalf("stream %d (level %d): bounds say %d bytes, the stream has %d", i, level, b.Bytes(), len(stream))
		}
		if _, err := Copy(&joined, bytes.NewReader(stream), b, nil); err != nil {
			t.Fatal(err)
		}
		want.Write(data)
		// Some bytes as stored blocks in between, as a spliced layer has.
		extra := sample(rng, rng.Intn(140000))
		if err := WriteStoredBytes(&joined, extra); err != nil {
			t.Fatal(err)
		}
		want.Write(extra)
	}
	joined.Write(FinalEmpty)
	got, err := io.ReadAll(flate.NewReader(bytes.NewReader(joined.Bytes())))
	if err != nil {
		t.Fatalf("joined stream does not inflate: %v", err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("joined stream inflates to %d bytes that differ from the %d expected", len(got), want.Len())
	}
}

// TestTruncatedAndCorrupt: a stream cut short, or one without a final
// block, is an error, never bounds.
func TestTruncatedAndCorrupt(t *testing.T) {
	stream := compress(t, sample(rand.New(rand.NewSource(1)), 300000), 6, false)
	for _, bad := range [][]byte{stream[:len(stream)/2], stream[:len(stream)-1], {0xff, 0xff, 0xff}, {}} {
		r := NewReader(bytes.NewReader(bad), int64(len(bad)))
		if _, err := io.ReadAll(r); err == nil {
			t.Errorf("%d bytes: no error", len(bad))
		}
		if _, ok := r.Bounds(); ok {
			t.Errorf("%d bytes: bounds reported for a broken stream", len(bad))
		}
	}
	// A non-final sync-flushed stream is not complete.
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, 1)
	w.Write([]byte("hello"))
	w.Flush()
	r := NewReader(bytes.NewReader(b.Bytes()), int64(b.Len()))
	if _, err := io.ReadAll(r); err == nil {
		t.Error("a stream without a final block read without error")
	}
	// Bounds that do not point at a final block are refused by Copy.
	_, good := inflateBounds(t, stream)
	wrong := good
	wrong.LastBlock++
	if _, err := Copy(io.Discard, bytes.NewReader(stream), wrong, nil); err == nil {
		t.Error("Copy accepted bounds without a final block")
	}
}

// FuzzBlocks feeds arbitrary bytes to the block-tracking inflater: it must
// never panic, and whenever it accepts a stream, that stream joined to
// another must inflate to both contents.
func FuzzBlocks(f *testing.F) {
	rng := rand.New(rand.NewSource(3))
	for l := 0; l <= 9; l++ {
		f.Add(compress(f, sample(rng, 3000), l, l%2 == 0))
	}
	f.Add([]byte{0x01, 0x00, 0x00, 0xff, 0xff})
	f.Add([]byte{0x03, 0x00})
	tail := compress(f, []byte("tail tail tail"), 9, false)
	f.Fuzz(func(t *testing.T, stream []byte) {
		r := NewReader(bytes.NewReader(stream), int64(len(stream)))
		data, err := io.ReadAll(io.LimitReader(r, 1<<20))
		if err != nil {
			return
		}
		b, ok := r.Bounds()
		if !ok {
			return // longer than the limit
		}
		if b.Bytes() > int64(len(stream)) {
			t.Fatalf("bounds %+v past the %d-byte input", b, len(stream))
		}
		var joined bytes.Buffer
		if _, err := Copy(&joined, bytes.NewReader(stream), b, nil); err != nil {
			t.Fatal(err)
		}
		joined.Write(tail)
		got, err := io.ReadAll(flate.NewReader(&joined))
		if err != nil {
			t.Fatalf("joined stream does not inflate: %v", err)
		}
		if want := append(append([]byte{}, data...), "tail tail tail"...); !bytes.Equal(got, want) {
			t.Fatalf("joined stream inflates to %q..., want %q...", trunc(got), trunc(want))
		}
	})
}

func trunc(b []byte) []byte { return b[:min(len(b), 40)] }
