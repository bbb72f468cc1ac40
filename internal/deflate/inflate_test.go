package deflate

import (
	"bytes"
	"compress/flate"
	"io"
	"math/rand"
	"testing"

	kflate "github.com/klauspost/compress/flate"
)

// inflateCap bounds what the fuzz tests inflate, so that a small input
// that expands hugely does not stall the fuzzer.
const inflateCap = 4 << 20

// stdInflate inflates with Go's compress/flate, the reference.
func stdInflate(stream []byte) ([]byte, error) {
	return io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(stream)), inflateCap))
}

// addSeeds adds streams of every block type and level, from both Go
// compressors, to a fuzz corpus.
func addSeeds(f *testing.F) {
	rng := rand.New(rand.NewSource(3))
	for l := -2; l <= 9; l++ {
		f.Add(compress(f, sample(rng, 3000), l, l%2 == 0))
		f.Add(compress(f, []byte("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbbbb"), l, l%2 != 0))
	}
	f.Add([]byte{0x01, 0x00, 0x00, 0xff, 0xff})
	f.Add([]byte{0x03, 0x00})
	f.Add([]byte{})
}

// FuzzInflate holds the inflater to Go's compress/flate on any input
// (checkStream): both accept it or both refuse it, they produce the same
// bytes for as far as both got, and where they accept it, the stream
// mlenv's Bounds delimit is the whole of what compress/flate read and
// joins with other streams.
func FuzzInflate(f *testing.F) {
	addSeeds(f)
	f.Fuzz(checkStream)
}

// TestInflateLarge: long streams, from both compressors at all levels,
// inflate to their content through the window's slides, whatever the
// read sizes.
func TestInflateLarge(t *testing.T) {
	rng := rand.New(rand.NewSource(11))
	for l := -2; l <= 9; l++ {
		data := sample(rng, 3<<20+rng.Intn(1<<20))
		stream := compress(t, data, l, l%2 == 0)
		r := NewReader(bytes.NewReader(stream), int64(len(stream)))
		var got bytes.Buffer
		buf := make([]byte, 1+rng.Intn(100000))
		for {
			n, err := r.Read(buf[:1+rng.Intn(len(buf))])
			got.Write(buf[:n])
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("level %d: %v", l, err)
			}
		}
		if !bytes.Equal(got.Bytes(), data) {
			t.Fatalf("level %d: inflated content differs", l)
		}
		if b, _ := r.Bounds(); b.Bytes() != int64(len(stream)) {
			t.Fatalf("level %d: bounds say %d bytes of %d", l, b.Bytes(), len(stream))
		}
	}
}

// TestInflateErrors: each way a stream can be wrong is refused, with the
// reason.
func TestInflateErrors(t *testing.T) {
	good := compress(t, sample(rand.New(rand.NewSource(2)), 100000), 6, false)
	farBack := []byte{0x63, 0x00, 0x42, 0x00} // fixed block: literal, then distance 3 with one byte out
	cases := map[string][]byte{
		"truncated":                 good[:len(good)/3],
		"reserved block type":       {0x07},
		"stored length complement":  {0x01, 0x05, 0x00, 0x00, 0x00, 'a'},
		"stored block cut short":    {0x01, 0x05, 0x00, 0xfa, 0xff, 'a'},
		"distance before the start": farBack,
		"no final block":            {0x00, 0x00, 0x00, 0xff, 0xff},
		"over-subscribed code":      {0x04, 0xc0, 0xff, 0xff, 0xff, 0xff, 0xff},
		"empty input":               {},
	}
	for name, stream := range cases {
		if _, wantErr := stdInflate(stream); wantErr == nil {
			t.Errorf("%s: compress/flate accepts the case; it tests nothing", name)
			continue
		}
		r := NewReader(bytes.NewReader(stream), int64(len(stream)))
		if _, err := io.ReadAll(r); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// BenchmarkInflate compares this inflater with klauspost/compress/flate
// (what the splicer used before) and Go's compress/flate on Python-like
// text, in one run: the ratio is what counts.
func BenchmarkInflate(b *testing.B) {
	rng := rand.New(rand.NewSource(5))
	words := make([]string, 4000)
	for i := range words {
		w := make([]byte, 2+rng.Intn(10))
		for j := range w {
			w[j] = byte('a' + rng.Intn(26))
		}
		words[i] = string(w)
	}
	var text bytes.Buffer
	for text.Len() < 16<<20 {
		text.WriteString(words[int(rng.ExpFloat64()*200)%len(words)])
		text.WriteString([]string{" ", " ", " ", "\n    ", "(self, "}[rng.Intn(5)])
	}
	stream := compress(b, text.Bytes(), 6, true)
	buf := make([]byte, 256<<10)
	for _, c := range []struct {
		name string
		open func() io.Reader
	}{
		{"mlenv", func() io.Reader { return NewReader(bytes.NewReader(stream), int64(len(stream))) }},
		{"klauspost", func() io.Reader { return kflate.NewReader(bytes.NewReader(stream)) }},
		{"stdlib", func() io.Reader { return flate.NewReader(bytes.NewReader(stream)) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(text.Len()))
			for i := 0; i < b.N; i++ {
				if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{c.open()}, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestInflateNegativeSize: a size that is not one (a zip64 size past
// 2^63 converted to int64) is an error, not a panic.
func TestInflateNegativeSize(t *testing.T) {
	stream := compress(t, []byte("hello hello hello"), 6, false)
	for _, size := range []int64{-1, -1 << 62, -1 << 63} {
		r := NewReader(bytes.NewReader(stream), size)
		if _, err := io.ReadAll(r); err == nil {
			t.Fatalf("size %d accepted", size)
		}
		if _, ok := r.Bounds(); ok {
			t.Fatalf("size %d: bounds", size)
		}
	}
}

// shortSource reads as a file shorter than the size it is opened with
// does: the bytes there are, and io.EOF.
type shortSource struct{ b []byte }

func (s shortSource) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(s.b)) {
		return 0, io.EOF
	}
	n := copy(p, s.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// TestInflateSizePastSource: a zip member whose declared compressed size
// runs past the file's end (archive/zip passes the declared size; the
// file has fewer bytes) holds a complete stream; compress/flate, reading
// the same section, inflates it, and so must this inflater: the size is
// where the stream must end by, not a promise that the bytes are there.
func TestInflateSizePastSource(t *testing.T) {
	data := sample(rand.New(rand.NewSource(4)), 600000)
	for _, stream := range [][]byte{compress(t, data, 6, false), compress(t, data[:1000], 9, true), compress(t, data[:50], 0, false)} {
		for _, extra := range []int64{1, 15, 16, 17, 1000, inSize, 1 << 40, 1<<62 - int64(len(stream))} {
			size := int64(len(stream)) + extra
			want, err := io.ReadAll(flate.NewReader(io.NewSectionReader(shortSource{stream}, 0, size)))
			if err != nil {
				t.Fatal(err)
			}
			r := NewReader(shortSource{stream}, size)
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatalf("%d-byte stream opened as %d bytes: %v", len(stream), size, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%d-byte stream opened as %d bytes: content differs", len(stream), size)
			}
			if b, ok := r.Bounds(); !ok || b.Bytes() != int64(len(stream)) {
				t.Fatalf("%d-byte stream opened as %d bytes: bounds %+v, %v", len(stream), size, b, ok)
			}
		}
		// Cut short, it is still refused.
		cut := stream[:len(stream)-1]
		if _, err := io.ReadAll(NewReader(shortSource{cut}, int64(len(stream))+100)); err == nil {
			t.Fatalf("a %d-byte stream missing its last byte was accepted", len(stream))
		}
	}
}

// headerOnlyBlocks is a hostile stream: n dynamic blocks that carry only
// their code (the least input per table build), then an empty final
// stored block.
func headerOnlyBlocks(n int) []byte {
	var w bitWriter
	// Code-length code: '1' one bit, '0' and '18' two bits.
	clens := make([]uint8, 19)
	clens[1], clens[0], clens[18] = 1, 2, 2
	cc := canonical(clens)
	for i := 0; i < n; i++ {
		w.bits(0, 1)  // not final
		w.bits(2, 2)  // dynamic
		w.bits(0, 5)  // 257 literal/length codes
		w.bits(0, 5)  // 1 distance code
		w.bits(14, 4) // 18 code-length codes, up to '1'
		for _, s := range codeOrder[:18] {
			w.bits(uint32(clens[s]), 3)
		}
		w.code(cc[1], 1) // literal 0: one bit
		w.code(cc[18], 2)
		w.bits(127, 7) // 138 zeros
		w.code(cc[18], 2)
		w.bits(106, 7)   // 117 zeros
		w.code(cc[1], 1) // end of block: one bit
		w.code(cc[1], 1) // the one distance code: one bit
		w.code(1, 1)     // end of block ('1'; literal 0 is '0')
	}
	w.bits(1, 1)
	w.bits(0, 2)
	w.align()
	w.out = append(w.out, 0, 0, 0xff, 0xff)
	return w.bytes()
}

// BenchmarkHeaderOnlyBlocks: blocks that are all header cost a table
// build each; this inflater against compress/flate on the same input.
func BenchmarkHeaderOnlyBlocks(b *testing.B) {
	stream := headerOnlyBlocks(100000)
	if out, err := stdInflate(stream); err != nil || len(out) != 0 {
		b.Fatalf("compress/flate: %d bytes, %v", len(out), err)
	}
	for _, c := range []struct {
		name string
		open func() io.Reader
	}{
		{"mlenv", func() io.Reader { return NewReader(bytes.NewReader(stream), int64(len(stream))) }},
		{"stdlib", func() io.Reader { return flate.NewReader(bytes.NewReader(stream)) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(stream)))
			for i := 0; i < b.N; i++ {
				if _, err := io.Copy(io.Discard, c.open()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
