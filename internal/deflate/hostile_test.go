package deflate

import (
	"bytes"
	"compress/flate"
	"io"
	"math/rand"
	"testing"
)

// Hostile streams built bit by bit: dynamic blocks with arbitrary code
// lengths (complete, incomplete, over-subscribed, single-code, empty),
// matches reaching exactly to the stream's start or one byte past it,
// stored blocks placed at the input buffer's edges. Each is held to
// compress/flate's verdict and bytes, and, where accepted, its bounds are
// checked by cutting and by joining.

// bitWriter packs bits least significant first, as deflate does.
type bitWriter struct {
	out []byte
	b   uint64
	n   uint
}

func (w *bitWriter) bits(v uint32, k uint) {
	w.b |= uint64(v) & (1<<k - 1) << w.n
	w.n += k
	for w.n >= 8 {
		w.out = append(w.out, byte(w.b))
		w.b >>= 8
		w.n -= 8
	}
}

// code writes a Huffman code, most significant bit first.
func (w *bitWriter) code(c uint32, l uint) { w.bits(reverse(c, l), l) }

func (w *bitWriter) align() {
	if w.n > 0 {
		w.bits(0, 8-w.n)
	}
}

func (w *bitWriter) bytes() []byte {
	out := append([]byte{}, w.out...)
	if w.n > 0 {
		out = append(out, byte(w.b))
	}
	return out
}

// canonical returns the canonical codes for lengths (garbage, but
// defined, for over-subscribed ones).
func canonical(lens []uint8) []uint32 {
	var count, next [17]uint32
	for _, l := range lens {
		count[l]++
	}
	count[0] = 0
	var c uint32
	for l := 1; l <= 16; l++ {
		c = (c + count[l-1]) << 1
		next[l] = c
	}
	codes := make([]uint32, len(lens))
	for s, l := range lens {
		if l > 0 {
			codes[s] = next[l]
			next[l]++
		}
	}
	return codes
}

// source hands out fuzz bytes as decisions; zeros once they run out.
type source struct{ p []byte }

func (s *source) byte() byte {
	if len(s.p) == 0 {
		return 0
	}
	b := s.p[0]
	s.p = s.p[1:]
	return b
}

func (s *source) intn(n int) int {
	if n <= 1 {
		return 0
	}
	v := int(s.byte())
	if n > 256 {
		v = v<<8 | int(s.byte())
	}
	return v % n
}

// chance is true once in n, never once the input ran out: a stream
// built from a short input is plain.
func (s *source) chance(n int) bool { return s.intn(n) == n-1 }

// completeLengths gives k of the n symbols code lengths of a complete
// code no longer than maxLen, by splitting leaves at random; k == 1 is
// the degenerate one-bit code.
func completeLengths(s *source, n, k int, maxLen uint8) []uint8 {
	lens := make([]uint8, n)
	if k <= 0 {
		return lens
	}
	depths := []uint8{0}
	if k == 1 {
		depths[0] = 1
	}
	for len(depths) < k {
		i := s.intn(len(depths))
		if depths[i] >= maxLen {
			// Split the shallowest leaf instead.
			i = 0
			for j, d := range depths {
				if d < depths[i] {
					i = j
				}
			}
			if depths[i] >= maxLen {
				break
			}
		}
		depths[i]++
		depths = append(depths, depths[i])
	}
	perm := rand.New(rand.NewSource(int64(s.byte()))).Perm(n)
	for i, d := range depths {
		lens[perm[i]] = d
	}
	return lens
}

// perturb makes a code wrong in one of the ways a stream can be.
func perturb(s *source, lens []uint8) {
	switch s.intn(64) {
	case 60: // lengthen one code: incomplete
		i := s.intn(len(lens))
		if lens[i] > 0 && lens[i] < 15 {
			lens[i]++
		}
	case 61: // shorten one: over-subscribed
		i := s.intn(len(lens))
		if lens[i] > 1 {
			lens[i]--
		}
	case 62: // drop one: incomplete, or a single code
		lens[s.intn(len(lens))] = 0
	case 63: // add one: over-subscribed
		lens[s.intn(len(lens))] = uint8(1 + s.intn(15))
	}
}

func distSym(d int) int {
	for sym := 29; sym >= 0; sym-- {
		if uint32(d) >= distBase[sym] {
			return sym
		}
	}
	return 0
}

// hostileStream builds a stream of a few blocks from fuzz bytes.
func hostileStream(p []byte) []byte {
	s := &source{p: p}
	w := &bitWriter{}
	written := 0
	blocks := 1 + s.intn(4)
	for bi := 0; bi < blocks; bi++ {
		final := bi == blocks-1
		if s.chance(32) {
			final = !final
		}
		fb := uint32(0)
		if final {
			fb = 1
		}
		w.bits(fb, 1)
		kind := s.intn(8)
		switch {
		case kind == 0 || kind == 7 && s.chance(4): // stored
			w.bits(0, 2)
			w.align()
			n := s.intn(300)
			if s.chance(8) {
				n = s.intn(65536)
			}
			nn := ^uint16(n)
			if s.chance(32) {
				nn ^= 1 << uint(s.intn(16))
			}
			w.bits(uint32(n), 16)
			w.bits(uint32(nn), 16)
			for i := 0; i < n; i++ {
				w.bits(uint32(s.byte()), 8)
			}
			written += n
			continue
		case kind == 7: // reserved
			w.bits(3, 2)
			continue
		}
		var litLens, distLens []uint8
		nlit, ndist := 288, 32
		if kind == 1 {
			w.bits(1, 2)
			litLens = make([]uint8, 288)
			for i := range litLens {
				switch {
				case i < 144:
					litLens[i] = 8
				case i < 256:
					litLens[i] = 9
				case i < 280:
					litLens[i] = 7
				default:
					litLens[i] = 8
				}
			}
			distLens = make([]uint8, 32)
			for i := range distLens {
				distLens[i] = 5
			}
		} else {
			w.bits(2, 2)
			nlit = 257 + s.intn(30)
			if s.chance(64) {
				nlit = 257 + s.intn(32) // 287, 288: refused
			}
			ndist = 1 + s.intn(30)
			if s.chance(64) {
				ndist = 1 + s.intn(32)
			}
			k := nlit - s.intn(nlit)
			if s.chance(4) {
				k = 1 + s.intn(3)
			}
			litLens = completeLengths(s, nlit, k, 15)
			if !s.chance(16) && litLens[256] == 0 {
				// Most blocks need their end.
				for i := range litLens {
					if litLens[i] > 0 {
						litLens[i], litLens[256] = 0, litLens[i]
						break
					}
				}
			}
			distLens = completeLengths(s, ndist, s.intn(ndist+1), 15)
			perturb(s, litLens)
			perturb(s, distLens)
			// The code-length code: every symbol, usually.
			clens := completeLengths(s, 19, 19-s.intn(4)*s.intn(2), 7)
			perturb(s, clens)
			nclen := 19
			for nclen > 4 && clens[codeOrder[nclen-1]] == 0 {
				nclen--
			}
			w.bits(uint32(nlit-257), 5)
			w.bits(uint32(ndist-1), 5)
			w.bits(uint32(nclen-4), 4)
			for i := 0; i < nclen; i++ {
				w.bits(uint32(clens[codeOrder[i]]), 3)
			}
			ccodes := canonical(clens)
			put := func(sym int) {
				if clens[sym] == 0 {
					w.bits(uint32(s.byte()), 7)
					return
				}
				w.code(ccodes[sym], uint(clens[sym]))
			}
			all := append(append([]uint8{}, litLens...), distLens...)
			for i := 0; i < len(all); {
				run := 1
				for i+run < len(all) && all[i+run] == all[i] {
					run++
				}
				switch {
				case all[i] == 0 && run >= 11 && !s.chance(4):
					r := min(run, 138)
					put(18)
					w.bits(uint32(r-11), 7)
					i += r
				case all[i] == 0 && run >= 3 && !s.chance(4):
					r := min(run, 10)
					put(17)
					w.bits(uint32(r-3), 3)
					i += r
				case i > 0 && all[i-1] == all[i] && run >= 3 && !s.chance(4):
					r := min(run, 6)
					put(16)
					w.bits(uint32(r-3), 2)
					i += r
				default:
					put(int(all[i]))
					i++
				}
				if s.chance(4096) {
					put(16 + s.intn(3)) // a stray repeat
					w.bits(uint32(s.byte()), 7)
				}
			}
			litLens, distLens = all[:nlit], all[nlit:]
		}
		litCodes, distCodes := canonical(litLens), canonical(distLens)
		var lits, lenSyms, dists []int
		for sym, l := range litLens {
			if l == 0 {
				continue
			}
			switch {
			case sym < 256:
				lits = append(lits, sym)
			case sym > 256:
				lenSyms = append(lenSyms, sym)
			}
		}
		for sym, l := range distLens {
			if l > 0 {
				dists = append(dists, sym)
			}
		}
		putLit := func(sym int) {
			if sym >= len(litLens) || litLens[sym] == 0 {
				w.bits(uint32(s.byte()), 1+uint(s.intn(15)))
				return
			}
			w.code(litCodes[sym], uint(litLens[sym]))
		}
		for ops := s.intn(64); ops > 0; ops-- {
			op := s.intn(8)
			if op == 7 && !s.chance(16) || written == 0 && !s.chance(32) {
				op = 0
			}
			switch {
			case op < 3 && len(lits) > 0:
				putLit(lits[s.intn(len(lits))])
				written++
			case op < 7 && len(lenSyms) > 0:
				sym := lenSyms[s.intn(len(lenSyms))]
				putLit(sym)
				length := 0
				if sym < 286 {
					e := lengthExtra[sym-257]
					x := s.intn(1 << e)
					w.bits(uint32(x), uint(e))
					length = int(lengthBase[sym-257]) + x
				}
				var d int
				switch s.intn(32) {
				case 27, 28, 29, 30:
					d = written // exactly back to the start
				case 31:
					d = written + 1 // one byte before it
				default:
					d = 1 + s.intn(max(written, 1))
				}
				d = max(1, min(d, 32768))
				dsym := distSym(d)
				if len(dists) > 0 && s.chance(8) {
					dsym = dists[s.intn(len(dists))]
					d = int(distBase[min(dsym, 29)])
				}
				if dsym >= len(distLens) || distLens[dsym] == 0 {
					w.bits(uint32(s.byte()), 1+uint(s.intn(15)))
				} else {
					w.code(distCodes[dsym], uint(distLens[dsym]))
				}
				if dsym < 30 {
					w.bits(uint32(d)-distBase[dsym], uint(distExtra[dsym]))
				}
				written += length
			case op == 7:
				putLit(256 + 30 + s.intn(2)) // 286, 287: invalid symbols
			}
		}
		putLit(256)
	}
	out := w.bytes()
	switch s.intn(8) { // 0, once the input ran out: the stream as built
	case 1:
		out = out[:s.intn(len(out)+1)]
	case 2:
		for i := s.intn(20); i > 0; i-- {
			out = append(out, s.byte())
		}
	}
	return out
}

// checkStream holds the inflater to compress/flate on one stream, and
// where it is accepted, checks its bounds by cutting and joining.
func checkStream(t *testing.T, stream []byte) {
	t.Helper()
	want, wantErr := stdInflate(stream)
	r := NewReader(bytes.NewReader(stream), int64(len(stream)))
	got, err := io.ReadAll(io.LimitReader(r, inflateCap))
	n := min(len(got), len(want))
	if !bytes.Equal(got[:n], want[:n]) {
		t.Fatalf("inflated bytes differ from compress/flate's within the first %d", n)
	}
	if len(want) == inflateCap || len(got) == inflateCap {
		return
	}
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("mlenv's inflater says %v, compress/flate says %v", err, wantErr)
	}
	if err != nil {
		if _, ok := r.Bounds(); ok {
			t.Fatal("bounds reported for a refused stream")
		}
		return
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("inflated %d bytes, compress/flate %d", len(got), len(want))
	}
	b, ok := r.Bounds()
	if !ok || b.Bytes() > int64(len(stream)) || b.LastBlock+3 > b.End {
		t.Fatalf("bounds %+v (ok %v) for a %d-byte input", b, ok, len(stream))
	}
	if again, err := stdInflate(stream[:b.Bytes()]); err != nil || !bytes.Equal(again, want) {
		t.Fatalf("the %d bytes the bounds delimit do not inflate alone: %v", b.Bytes(), err)
	}
	if _, err := stdInflate(stream[:b.Bytes()-1]); err == nil {
		t.Fatalf("the stream inflates without its last byte: bounds %+v are too long", b)
	}
	// Joined after other content and before more, it inflates to the
	// three in order.
	var joined bytes.Buffer
	head := []byte("head head head")
	WriteStoredBytes(&joined, head)
	if _, err := Copy(&joined, bytes.NewReader(stream), b, nil); err != nil {
		t.Fatal(err)
	}
	zw, _ := flate.NewWriter(&joined, 6)
	zw.Write(head)
	zw.Close()
	all, err := io.ReadAll(flate.NewReader(&joined))
	if err != nil {
		t.Fatalf("joined stream does not inflate: %v", err)
	}
	if w := append(append(append([]byte{}, head...), want...), head...); !bytes.Equal(all, w) {
		t.Fatalf("joined stream inflates to %d bytes, want %d", len(all), len(w))
	}
}

// FuzzHostile builds streams bit by bit from the fuzz input, so that
// most get past the block header into the code-building and decoding
// paths that random bytes rarely reach.
func FuzzHostile(f *testing.F) {
	rng := rand.New(rand.NewSource(9))
	for i := 0; i < 64; i++ {
		p := make([]byte, 50+rng.Intn(400))
		rng.Read(p)
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		checkStream(t, hostileStream(p))
	})
}

// TestHostileStreams runs many generated streams without the fuzzer, and
// counts how many are accepted, so that the generator is seen to reach
// both verdicts.
func TestHostileStreams(t *testing.T) {
	rng := rand.New(rand.NewSource(21))
	accepted := 0
	const runs = 3000
	for i := 0; i < runs; i++ {
		p := make([]byte, 20+rng.Intn(600))
		rng.Read(p)
		stream := hostileStream(p)
		checkStream(t, stream)
		if _, err := stdInflate(stream); err == nil {
			accepted++
		}
	}
	t.Logf("%d of %d generated streams are valid", accepted, runs)
	if accepted < runs/5 || accepted > runs*4/5 {
		t.Fatalf("%d of %d generated streams are valid: the generator is lopsided", accepted, runs)
	}
}

// edgeStream is prefix as stored blocks, then a stream compressed with
// the prefix's last 32 KiB as dictionary: tail, whose matches reach back
// into the prefix (for tail == that dictionary, every match is 32768
// back). level < 0 ends it with a final empty stored block instead of a
// compressor's final block.
func edgeStream(t testing.TB, prefix, tail []byte, level int) []byte {
	var b bytes.Buffer
	if err := WriteStoredBytes(&b, prefix); err != nil {
		t.Fatal(err)
	}
	dict := prefix[max(len(prefix)-window, 0):]
	if level < 0 {
		b.Write(FinalEmpty)
		return b.Bytes()
	}
	zw, err := flate.NewWriterDict(&b, level, dict)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(tail)
	zw.Close()
	return b.Bytes()
}

// TestInflateBufferEdges puts block headers, stored blocks, a stream's end
// and matches 32 KiB back at every offset around the input buffer's size
// (256 KiB) and the output step (512 KiB past a 32 KiB window), and cuts
// streams at every byte around those edges.
func TestInflateBufferEdges(t *testing.T) {
	rng := rand.New(rand.NewSource(31))
	big := make([]byte, 2<<20)
	rng.Read(big)
	copy(big[len(big)-window:], bytes.Repeat([]byte("def forward(self, x):\n"), 2000))
	dict := big[len(big)-window:]
	tails := [][]byte{dict, sample(rng, 70000), dict[:3]}
	check := func(l int, tail []byte, level int) []byte {
		prefix := big[len(big)-l:] // always ends with dict
		stream := edgeStream(t, prefix, tail, level)
		checkStream(t, stream)
		want := append(append([]byte{}, prefix...), tail...)
		if level < 0 {
			want = prefix
		}
		if got, _ := inflateBounds(t, stream); !bytes.Equal(got, want) {
			t.Fatalf("prefix %d, level %d: content differs", l, level)
		}
		return stream
	}
	for _, around := range []int{inSize, 2*inSize - keepBack, window + outChunk, 2 * outChunk} {
		for d := -20; d <= 20; d++ {
			check(around+d, tails[(d+20)%len(tails)], 1+(d+20)%9)
		}
	}
	// Streams that end at every byte around the input buffer's edge, and
	// every cut of them near it.
	for _, tail := range tails {
		tailLen := len(edgeStream(t, dict, tail, 6)) - len(edgeStream(t, dict, nil, -1)) + len(FinalEmpty)
		for _, level := range []int{6, -1} {
			n := 0
			if level < 0 {
				n = len(FinalEmpty)
			} else {
				n = tailLen
			}
			for end := inSize - 12; end <= inSize+12; end++ {
				// end = stored bytes + 5 per 65535 + n.
				l := (end - n) * 65535 / 65540
				for l > 0 && len(edgeStream(t, big[len(big)-l:], nil, -1))-len(FinalEmpty)+n < end {
					l++
				}
				if l < window {
					continue
				}
				stream := check(l, tail, level)
				if len(stream) != end {
					t.Fatalf("built a %d-byte stream for %d", len(stream), end)
				}
				for cut := len(stream) - 1; cut >= len(stream)-8 && cut >= 0; cut-- {
					checkStream(t, stream[:cut])
				}
			}
		}
	}
}

// TestInflateResetAfterError: a Reader that failed anywhere (in a code,
// mid-block, mid-stored-block, or was abandoned half-way) and is Reset
// reads the next stream exactly, bounds included.
func TestInflateResetAfterError(t *testing.T) {
	rng := rand.New(rand.NewSource(8))
	data := sample(rng, 900000)
	good := compress(t, data, 6, true)
	r := NewReader(nil, 0)
	for i := 0; i < 18; i++ {
		bad := compress(t, sample(rng, 1+rng.Intn(700000)), rng.Intn(10), i%2 == 0)
		switch i % 3 {
		case 0:
			bad = bad[:rng.Intn(len(bad))]
		case 1:
			bad = append([]byte{}, bad...)
			bad[rng.Intn(len(bad))] ^= byte(1 << rng.Intn(8))
		}
		r.Reset(bytes.NewReader(bad), int64(len(bad)))
		if i%3 == 2 {
			io.CopyN(io.Discard, r, int64(rng.Intn(300000)))
		} else {
			io.ReadAll(r)
		}
		r.Reset(bytes.NewReader(good), int64(len(good)))
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("after a stream that failed (%d): %v, content equal %v", i, err, bytes.Equal(got, data))
		}
		if b, ok := r.Bounds(); !ok || b.Bytes() != int64(len(good)) {
			t.Fatalf("after a stream that failed (%d): bounds %+v %v", i, b, ok)
		}
	}
}
