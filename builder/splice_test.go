package builder

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	kflate "github.com/klauspost/compress/flate"

	"github.com/mlenv/mlenv/internal/cas"
	"github.com/mlenv/mlenv/internal/localpath"
	"github.com/mlenv/mlenv/internal/testutil"
	"github.com/mlenv/mlenv/lockfile"
)

var (
	classicGzip = lockfile.Compression{Algorithm: "gzip", Level: 1}
	splicedGzip = lockfile.DefaultCompression("gzip")
	testPython  = &lockfile.Python{Version: "3.11", Prefix: "/usr/local", SitePackages: "/usr/local/lib/python3.11/site-packages",
		Interpreter: "/usr/local/bin/python3.11", Libc: "glibc 2.36"}
)

// member is one file of a generated wheel: its content, and how the zip
// holds it (zip.Store, or zip.Deflate at level, by Go's or klauspost's
// compressor).
type member struct {
	name   string
	body   []byte
	method uint16
	level  int
	klaus  bool
	// badCRC writes a wrong CRC-32; short declares one byte less than
	// the content; cut keeps only half the compressed bytes.
	badCRC, short, cut bool
}

// wordText is text that is not a repeated string: random words, as
// Python sources are.
func wordText(rng *rand.Rand, n int) []byte {
	words := []string{"self", "def", "return", "import", "torch", "tensor", "x", "y", "forward", "None", "if", "else", "for", "in", "range", "(", ")", ":", "=", "+", "0.5", "bias", "weight", "\n", "\n    ", "\n        "}
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[rng.Intn(len(words))])
		b.WriteByte(' ')
	}
	return b.Bytes()[:n]
}

// randomMembers makes n members of sizes 0 to a few MiB: word text,
// random bytes or zeros, stored or deflated at levels 1-9.
func randomMembers(rng *rand.Rand, pkg string, n int) []member {
	var ms []member
	for i := 0; i < n; i++ {
		var size int
		switch rng.Intn(10) {
		case 0:
			size = 0
		case 1, 2:
			size = rng.Intn(3 << 20)
		default:
			size = rng.Intn(20000)
		}
		var body []byte
		switch rng.Intn(4) {
		case 0:
			body = make([]byte, size)
			rng.Read(body)
		case 1:
			body = make([]byte, size)
		default:
			body = wordText(rng, size)
		}
		m := member{name: fmt.Sprintf("%s/sub%d/m%03d.py", pkg, rng.Intn(4), i), body: body, method: zip.Deflate, level: 1 + rng.Intn(9), klaus: rng.Intn(2) == 0}
		if rng.Intn(4) == 0 {
			m.method = zip.Store
		}
		ms = append(ms, m)
	}
	return ms
}

// goWheel writes a wheel with Go's archive/zip; RECORD lists every
// member (and a #!python script in .data, rewritten on install, so a
// layer mixes spliced and compressed content).
func goWheel(t testing.TB, name string, ms []member) []byte {
	di := name + "-1.0.dist-info"
	ms = append(ms,
		member{name: name + "-1.0.data/scripts/tool", body: []byte("#!python\nprint('tool')\n"), method: zip.Deflate, level: 6},
		member{name: name + "-1.0.data/purelib/" + name + "_extra.py", body: []byte("moved = True\n"), method: zip.Deflate, level: 9},
		member{name: di + "/METADATA", body: []byte("Metadata-Version: 2.1\nName: " + name + "\nVersion: 1.0\n"), method: zip.Deflate, level: 6},
		member{name: di + "/WHEEL", body: []byte("Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"), method: zip.Deflate, level: 6},
		member{name: di + "/entry_points.txt", body: []byte("[console_scripts]\n" + name + "-cli = " + name + ".cli:main\n"), method: zip.Store})
	var record strings.Builder
	for _, m := range ms {
		sum := sha256.Sum256(m.body)
		size := fmt.Sprint(len(m.body))
		if m.short {
			size = "" // RECORD may leave the size out; the zip header then decides
		}
		fmt.Fprintf(&record, "%s,sha256=%s,%s\n", m.name, base64.RawURLEncoding.EncodeToString(sum[:]), size)
	}
	fmt.Fprintf(&record, "%s/RECORD,,\n", di)
	ms = append(ms, member{name: di + "/RECORD", body: []byte(record.String()), method: zip.Deflate, level: 6})
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, m := range ms {
		data := m.body
		if m.method == zip.Deflate {
			var c bytes.Buffer
			var w io.WriteCloser
			var err error
			if m.klaus {
				w, err = kflate.NewWriter(&c, m.level)
			} else {
				w, err = flate.NewWriter(&c, m.level)
			}
			if err != nil {
				t.Fatal(err)
			}
			w.Write(m.body)
			w.Close()
			data = c.Bytes()
		}
		if m.cut {
			data = data[:len(data)/2]
		}
		h := &zip.FileHeader{Name: m.name, Method: m.method, CRC32: crc32.ChecksumIEEE(m.body),
			CompressedSize64: uint64(len(data)), UncompressedSize64: uint64(len(m.body))}
		if m.badCRC {
			h.CRC32 ^= 1
		}
		if m.short {
			h.UncompressedSize64--
		}
		h.CreatorVersion = 3 << 8
		h.ExternalAttrs = 0o100644 << 16
		w, err := zw.CreateRaw(h)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// bothLayers installs one wheel file into a tree and writes it as a
// classic and as a spliced layer; it returns both blobs' paths.
func bothLayers(t *testing.T, wheelPath string) (classic, spliced string, ci, si layerInfo) {
	t.Helper()
	zr, err := zip.OpenReader(wheelPath)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	base := filepath.Base(wheelPath)
	wn, err := lockfile.ParseWheelFilename(base)
	if err != nil {
		t.Fatal(err)
	}
	tr := newTree()
	if err := installWheel(tr, &zr.Reader, lockfile.Wheel{Name: wn.Distribution, Version: wn.Version, Filename: base}, layoutFor(testPython)); err != nil {
		t.Fatal(err)
	}
	c := &cas.Cache{Dir: t.TempDir()}
	ci, err = writeLayer(c, tr, 1700000000, classicGzip)
	if err != nil {
		t.Fatal(err)
	}
	si, err = writeLayer(c, tr, 1700000000, splicedGzip)
	if err != nil {
		t.Fatal(err)
	}
	return c.Path(strings.TrimPrefix(ci.Digest, "sha256:")), c.Path(strings.TrimPrefix(si.Digest, "sha256:")), ci, si
}

// gunzip reads a layer with Go's compress/gzip, which also checks the
// trailer's CRC-32 and size.
func gunzip(t testing.TB, p string) []byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	zr.Multistream(false)
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: compress/gzip: %v", p, err)
	}
	return b
}

// assertSameTar: the spliced layer inflates to exactly the classic
// layer's tar, its diffID is the classic one, and the gzip tools accept it.
func assertSameTar(t *testing.T, what, classic, spliced string, ci, si layerInfo) {
	t.Helper()
	a, b := gunzip(t, classic), gunzip(t, spliced)
	if !bytes.Equal(a, b) {
		t.Fatalf("%s: spliced layer inflates to a different tar (%d bytes, classic %d)", what, len(b), len(a))
	}
	if ci.DiffID != si.DiffID {
		t.Fatalf("%s: diffID %s, classic %s", what, si.DiffID, ci.DiffID)
	}
	if sum := sha256.Sum256(b); "sha256:"+fmt.Sprintf("%x", sum) != si.DiffID {
		t.Fatalf("%s: recorded diffID %s is not the tar's", what, si.DiffID)
	}
	if ci.Digest == si.Digest {
		t.Fatalf("%s: the spliced layer is the classic one: nothing was spliced", what)
	}
	fi, _ := os.Stat(spliced)
	if fi.Size() != si.Size {
		t.Fatalf("%s: recorded size %d, blob %d", what, si.Size, fi.Size())
	}
}

// gnuTools checks a spliced layer with GNU gzip and tar when present.
func gnuTools(t *testing.T, spliced string, want []byte) {
	t.Helper()
	if _, err := exec.LookPath("gzip"); err != nil {
		t.Log("gzip not installed: GNU gzip check skipped")
		return
	}
	if out, err := exec.Command("gzip", "-t", spliced).CombinedOutput(); err != nil {
		t.Fatalf("gzip -t: %v: %s", err, out)
	}
	if _, err := exec.LookPath("tar"); err != nil {
		t.Log("tar not installed: zcat | tar -t check skipped")
		return
	}
	out, err := exec.Command("sh", "-c", "zcat < '"+spliced+"' | tar -tf -").Output()
	if err != nil {
		t.Fatalf("zcat | tar -t: %v", err)
	}
	var names []string
	tr := tar.NewReader(bytes.NewReader(want))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
	}
	if got := strings.Fields(string(out)); strings.Join(got, "\n") != strings.Join(names, "\n") {
		t.Fatalf("tar -t lists %d names, the layer has %d", len(got), len(names))
	}
}

// TestSplicedEqualsClassicGoWheels is the property test over wheels
// written by Go's archive/zip: random members of 0 B to 3 MiB, stored
// or deflated at levels 1-9 by two compressors.
func TestSplicedEqualsClassicGoWheels(t *testing.T) {
	rng := rand.New(rand.NewSource(11))
	dir := t.TempDir()
	n := 12
	if testing.Short() {
		n = 3
	}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("pkg%d", i)
		p := filepath.Join(dir, name+"-1.0-py3-none-any.whl")
		if err := os.WriteFile(p, goWheel(t, name, randomMembers(rng, name, 5+rng.Intn(30))), 0o644); err != nil {
			t.Fatal(err)
		}
		classic, spliced, ci, si := bothLayers(t, p)
		assertSameTar(t, p, classic, spliced, ci, si)
		if i < 3 {
			gnuTools(t, spliced, gunzip(t, classic))
		}
	}
}

// pythonWheels is run by python3: wheels written by zipfile, each member
// stored or deflated at a random level 1-9.
const pythonWheels = `
import base64, hashlib, random, sys, zipfile
out, count = sys.argv[1], int(sys.argv[2])
rng = random.Random(5)
words = ["self", "def", "return", "import", "torch", "x", "(", ")", ":", "\n", "\n    ", "0.5", "bias"]
for w in range(count):
    name = "pyw%d" % w
    di = name + "-1.0.dist-info"
    members = []
    for i in range(rng.randint(5, 30)):
        kind = rng.randint(0, 9)
        size = 0 if kind == 0 else rng.randint(0, 3 << 20) if kind < 3 else rng.randint(0, 20000)
        style = rng.randint(0, 3)
        if style == 0:
            body = rng.randbytes(size)
        elif style == 1:
            body = bytes(size)
        else:
            body = " ".join(rng.choice(words) for _ in range(size // 3 + 1)).encode()[:size]
        members.append(("%s/m%03d.py" % (name, i), body))
    members.append((di + "/METADATA", b"Metadata-Version: 2.1\nName: %s\nVersion: 1.0\n" % name.encode()))
    members.append((di + "/WHEEL", b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"))
    record = ""
    for n, b in members:
        h = base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b"=").decode()
        record += "%s,sha256=%s,%d\n" % (n, h, len(b))
    record += di + "/RECORD,,\n"
    members.append((di + "/RECORD", record.encode()))
    with zipfile.ZipFile("%s/%s-1.0-py3-none-any.whl" % (out, name), "w") as z:
        for n, b in members:
            if rng.randint(0, 3) == 0:
                z.writestr(n, b, compress_type=zipfile.ZIP_STORED)
            else:
                z.writestr(n, b, compress_type=zipfile.ZIP_DEFLATED, compresslevel=rng.randint(1, 9))
`

// TestSplicedEqualsClassicPythonWheels: the same property over wheels
// written by Python's zipfile (zlib's deflate), as real wheels are.
func TestSplicedEqualsClassicPythonWheels(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed: the zipfile-written wheels cannot be made (the archive/zip property test still runs)")
	}
	dir := t.TempDir()
	n := "8"
	if testing.Short() {
		n = "2"
	}
	if out, err := exec.Command(py, "-c", pythonWheels, dir, n).CombinedOutput(); err != nil {
		t.Fatalf("python3: %v: %s", err, out)
	}
	ws, _ := filepath.Glob(filepath.Join(dir, "*.whl"))
	if len(ws) == 0 {
		t.Fatal("python3 wrote no wheel")
	}
	for i, p := range ws {
		classic, spliced, ci, si := bothLayers(t, p)
		assertSameTar(t, p, classic, spliced, ci, si)
		if i == 0 {
			gnuTools(t, spliced, gunzip(t, classic))
		}
	}
}

// spliceLock is handLock with the splice layout.
func spliceLock(t *testing.T, arts ...hostileArt) string {
	t.Helper()
	lp := handLock(t, arts...)
	b, _ := os.ReadFile(lp)
	var l map[string]any
	json.Unmarshal(b, &l)
	l["compression"] = map[string]any{"algorithm": "gzip", "level": 1, "layout": lockfile.LayoutSplice}
	b, _ = json.Marshal(l)
	os.WriteFile(lp, b, 0o644)
	return lp
}

// TestSplicedHostileWheels: every check of the classic path holds on the
// spliced one, and a refused wheel leaves nothing in the cache.
func TestSplicedHostileWheels(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	text := wordText(rng, 200000)
	cases := []struct {
		name string
		m    member
		// tamper changes the content after RECORD was computed.
		tamper bool
		want   []string
	}{
		{"content differs from RECORD", member{body: text, method: zip.Deflate, level: 6}, true, []string{"m.py", "hash mismatch"}},
		{"stored content differs from RECORD", member{body: text, method: zip.Store}, true, []string{"m.py", "hash mismatch"}},
		{"zip CRC-32 wrong", member{body: text, method: zip.Deflate, level: 6, badCRC: true}, false, []string{"m.py", "CRC-32"}},
		{"inflates past its declared size", member{body: text, method: zip.Deflate, level: 6, short: true}, false, []string{"m.py", "more than the size the zip declares"}},
		{"deflate stream cut short", member{body: text, method: zip.Deflate, level: 6, cut: true}, false, []string{"m.py", "corrupt deflate stream"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := c.m
			m.name = "evil/m.py"
			wheel := goWheel(t, "evil", []member{m})
			if c.tamper {
				// Same length, different byte: RECORD's size holds, its
				// hash does not.
				m2 := m
				m2.body = append([]byte{}, m.body...)
				m2.body[len(m2.body)/2] ^= 0xff
				good := goWheel(t, "evil", []member{m})
				bad := goWheel(t, "evil", []member{m2})
				wheel = swapRecord(t, bad, good)
			}
			lp := spliceLock(t, hostileArt{file: "evil-1.0-py3-none-any.whl", body: wheel, wheelName: "evil", wheelVer: "1.0"})
			assertRefused(t, lp, Limits{}, c.want...)
		})
	}
	t.Run("overlapping members", func(t *testing.T) {
		body := testutil.OverlappingZip(text, []string{"a/x.py", "a/y.py"})
		lp := spliceLock(t, hostileArt{file: "a-1.0-py3-none-any.whl", body: body, wheelName: "a", wheelVer: "1.0"})
		assertRefused(t, lp, Limits{}, "overlap")
	})
}

// swapRecord returns wheel bad with good's RECORD: members that no longer
// match it.
func swapRecord(t *testing.T, bad, good []byte) []byte {
	t.Helper()
	read := func(b []byte) *zip.Reader {
		zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		return zr
	}
	gr, br := read(good), read(bad)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range br.File {
		src := f
		if strings.HasSuffix(f.Name, "/RECORD") {
			for _, g := range gr.File {
				if g.Name == f.Name {
					src = g
				}
			}
		}
		if err := zw.Copy(src); err != nil {
			t.Fatal(err)
		}
	}
	zw.Close()
	return buf.Bytes()
}

// TestSplicedBuildIsTheClassicTar: a spliced image is reproducible and
// its wheel layer inflates to the classic build's tar.
func TestSplicedBuildIsTheClassicTar(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	wheel := goWheel(t, "pkg", randomMembers(rng, "pkg", 20))
	art := hostileArt{file: "pkg-1.0-py3-none-any.whl", body: wheel, wheelName: "pkg", wheelVer: "1.0"}
	classicLock, splicedLock := handLock(t, art), spliceLock(t, art)
	diffIDs := func(lp string) ([]string, string) {
		r, err := Build(t.Context(), opts(t, lp, t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		cf, _ := r.Image.ConfigFile()
		var ids []string
		for _, d := range cf.RootFS.DiffIDs {
			ids = append(ids, d.String())
		}
		return ids, r.Digest.String()
	}
	c, cd := diffIDs(classicLock)
	s1, sd1 := diffIDs(splicedLock)
	_, sd2 := diffIDs(splicedLock)
	if strings.Join(c, ",") != strings.Join(s1, ",") {
		t.Errorf("diffIDs differ: classic %v, spliced %v", c, s1)
	}
	if sd1 != sd2 {
		t.Errorf("two spliced builds: %s and %s", sd1, sd2)
	}
	if cd == sd1 {
		t.Error("the spliced build has the classic digest: nothing was spliced")
	}
}

// FuzzSplicedLayer feeds arbitrary zips through the installer and the
// spliced writer: it must never panic, must accept what the classic tar
// writer accepts, and what it writes must inflate to that tar.
func FuzzSplicedLayer(f *testing.F) {
	rng := rand.New(rand.NewSource(9))
	// Small seeds: one deflated and one stored member of a few hundred
	// bytes, so that the fuzzer's minimisation stays quick.
	ms := []member{
		{name: "pkg/a.py", body: wordText(rng, 300), method: zip.Deflate, level: 6},
		{name: "pkg/b.bin", body: wordText(rng, 200), method: zip.Store},
	}
	f.Add(goWheel(f, "pkg", ms))
	w := lockfile.Wheel{Name: "pkg", Version: "1.0", Filename: "pkg-1.0-py3-none-any.whl"}
	lay := layoutFor(testPython)
	cacheDir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		tr := newTree()
		if err := installWheel(tr, zr, w, lay); err != nil {
			return
		}
		var classic bytes.Buffer
		tw := tar.NewWriter(&classic)
		cerr := writeTar(tw, tr, 0)
		if cerr == nil {
			cerr = tw.Close()
		}
		c := &cas.Cache{Dir: cacheDir}
		si, serr := writeBlob(c, "", func(out *bufio.Writer) ([]byte, error) { return writeSpliced(out, tr, 0, splicedGzip) })
		if cerr == nil && serr != nil {
			t.Fatalf("the classic writer accepts this wheel, the spliced one says %v", serr)
		}
		if cerr != nil || serr != nil {
			return
		}
		p := c.Path(strings.TrimPrefix(si.Digest, "sha256:"))
		s := gunzip(t, p)
		os.Remove(p)
		if !bytes.Equal(classic.Bytes(), s) {
			t.Fatal("the spliced layer inflates to another tar")
		}
		if sum := sha256.Sum256(s); si.DiffID != fmt.Sprintf("sha256:%x", sum) {
			t.Fatalf("diffID %s is not the tar's", si.DiffID)
		}
	})
}

// BenchmarkWheelLayer writes one wheel's layer (32 MiB: word text and
// random members, deflated at level 6 as zipfile writes them) in the
// classic and the spliced layout; MB/s is of uncompressed content.
func BenchmarkWheelLayer(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	var ms []member
	for i, left := 0, 32<<20; left > 0; i++ {
		n := min(left, 4<<10+rng.Intn(1<<20))
		m := member{name: fmt.Sprintf("pkg/m%04d.py", i), body: wordText(rng, n), method: zip.Deflate, level: 6}
		if i%2 == 1 {
			rng.Read(m.body)
			m.name = fmt.Sprintf("pkg/lib%04d.so", i)
		}
		ms = append(ms, m)
		left -= n
	}
	p := filepath.Join(b.TempDir(), "pkg-1.0-py3-none-any.whl")
	if err := os.WriteFile(p, goWheel(b, "pkg", ms), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, comp := range []lockfile.Compression{classicGzip, splicedGzip} {
		name := "classic"
		if comp.Layout != "" {
			name = "spliced"
		}
		b.Run(name, func(b *testing.B) {
			zr, err := zip.OpenReader(p)
			if err != nil {
				b.Fatal(err)
			}
			defer zr.Close()
			zr.RegisterDecompressor(zip.Deflate, fastInflate)
			tr := newTree()
			if err := installWheel(tr, &zr.Reader, lockfile.Wheel{Name: "pkg", Version: "1.0", Filename: filepath.Base(p)}, layoutFor(testPython)); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(32 << 20)
			c := &cas.Cache{Dir: b.TempDir()}
			for b.Loop() {
				info, err := writeLayer(c, tr, 0, comp)
				if err != nil {
					b.Fatal(err)
				}
				os.Remove(c.Path(strings.TrimPrefix(info.Digest, "sha256:")))
			}
		})
	}
}

// TestSplicedMemoryIsBounded: a member far larger than the writer's
// buffers streams through them; what the spliced writer allocates does
// not grow with the member.
func TestSplicedMemoryIsBounded(t *testing.T) {
	const size = 96 << 20
	p := filepath.Join(t.TempDir(), "big-1.0-py3-none-any.whl")
	if err := os.WriteFile(p, goWheel(t, "big", []member{{name: "big/zeros.bin", body: make([]byte, size), method: zip.Deflate, level: 1, klaus: true}}), 0o644); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.OpenReader(p)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	tr := newTree()
	if err := installWheel(tr, &zr.Reader, lockfile.Wheel{Name: "big", Version: "1.0", Filename: filepath.Base(p)}, layoutFor(testPython)); err != nil {
		t.Fatal(err)
	}
	c := &cas.Cache{Dir: t.TempDir()}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	info, err := writeLayer(c, tr, 0, splicedGzip)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	got := after.TotalAlloc - before.TotalAlloc
	t.Logf("a %d MiB member: %.1f MiB allocated", size>>20, float64(got)/(1<<20))
	if got > 32<<20 {
		t.Errorf("writing a layer with a %d MiB member allocated %d MiB", size>>20, got>>20)
	}
	if info.Size > 1<<20 {
		t.Errorf("the zeros member was not carried compressed: layer of %d bytes", info.Size)
	}
}

// TestFastInflateSizePastEnd: a wheel whose last member's compressed size
// in the central directory runs past the file's end (the stream itself
// is whole) is read by archive/zip with compress/flate, by pip, and by
// klauspost's inflater that fastInflate used before; mlenv's inflater,
// asked for 256 KiB at a time, got a short read at the file's end and
// refused the member. Found by opening a stream with a size larger than
// its source in internal/deflate's tests.
func TestFastInflateSizePastEnd(t *testing.T) {
	content := wordText(rand.New(rand.NewSource(6)), 300000)
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	var comp bytes.Buffer
	fw, _ := flate.NewWriter(&comp, 6)
	fw.Write(content)
	fw.Close()
	// No data descriptor: archive/zip would look for one past the end.
	w, err := zw.CreateRaw(&zip.FileHeader{Name: "pkg/mod.py", Method: zip.Deflate, CRC32: crc32.ChecksumIEEE(content),
		CompressedSize64: uint64(comp.Len()), UncompressedSize64: uint64(len(content))})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(comp.Bytes())
	zw.Close()
	z := b.Bytes()
	cd := bytes.LastIndex(z, []byte("PK\x01\x02"))
	csize := binary.LittleEndian.Uint32(z[cd+20:])
	binary.LittleEndian.PutUint32(z[cd+20:], csize+5000) // past the end of the file
	for _, fast := range []bool{false, true} {
		zr, err := zip.NewReader(bytes.NewReader(z), int64(len(z)))
		if err != nil {
			t.Fatal(err)
		}
		if fast {
			zr.RegisterDecompressor(zip.Deflate, fastInflate)
		}
		rc, err := zr.File[0].Open()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, content) {
			t.Fatalf("fastInflate %v: %v (content equal %v)", fast, err, bytes.Equal(got, content))
		}
	}
}

// TestArtifactPathsConcurrently: layers ask for artifacts side by side;
// each is verified (once it passes, never again), a corrupt one fails
// every caller, and the maps are never touched unlocked (run with -race).
func TestArtifactPathsConcurrently(t *testing.T) {
	dir := t.TempDir()
	a := &artifacts{paths: map[string]string{}, uris: map[string]string{}, sizes: map[string]int64{},
		local: map[string]bool{}, downloaded: map[string]bool{}, verifying: map[string]*sync.Mutex{},
		files: map[string]*os.File{}, pol: localpath.Policy{Base: dir}}
	defer a.close()
	var sums []string
	for i := 0; i < 6; i++ {
		content := bytes.Repeat([]byte{byte(i)}, 100000+i)
		sum := fmt.Sprintf("%x", sha256.Sum256(content))
		p := filepath.Join(dir, sum)
		if i == 5 {
			content[0] ^= 1 // corrupt: the lock's hash is the good content's
		}
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
		a.paths[sum], a.sizes[sum], a.local[sum] = p, int64(len(content)), true
		sums = append(sums, sum)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for g := 0; g < 24; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 6; k++ {
				i := (g + k) % len(sums)
				sum := sums[i]
				f, err := a.file(sum, int64(100000+i))
				switch {
				case sum == sums[5] && err == nil:
					errs <- fmt.Errorf("corrupt artifact verified")
				case sum != sums[5] && (err != nil || f.Name() != filepath.Join(dir, sum)):
					errs <- fmt.Errorf("%s: %v, %v", sum, f, err)
				}
			}
			if _, err := a.file("0000", 0); err == nil {
				errs <- fmt.Errorf("an artifact never fetched was found")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestArtifactSwappedAfterVerifyIsNotRead: a local wheel replaced on disk
// after it was verified (someone writing to the project during the build)
// is not what the build reads: every layer gets the descriptor that was
// hashed, never the path opened again.
func TestArtifactSwappedAfterVerifyIsNotRead(t *testing.T) {
	dir := t.TempDir()
	good := bytes.Repeat([]byte("good"), 50000)
	sum := fmt.Sprintf("%x", sha256.Sum256(good))
	p := filepath.Join(dir, "pkg.whl")
	os.WriteFile(p, good, 0o644)
	a := &artifacts{paths: map[string]string{sum: p}, uris: map[string]string{}, sizes: map[string]int64{sum: int64(len(good))},
		local: map[string]bool{sum: true}, downloaded: map[string]bool{}, verifying: map[string]*sync.Mutex{},
		files: map[string]*os.File{}, pol: localpath.Policy{Base: dir}}
	defer a.close()
	f, err := a.file(sum, int64(len(good)))
	if err != nil {
		t.Fatal(err)
	}
	evil := filepath.Join(dir, "evil")
	os.WriteFile(evil, bytes.Repeat([]byte("evil"), 50000), 0o644)
	if err := os.Rename(evil, p); err != nil {
		t.Fatal(err)
	}
	again, err := a.file(sum, int64(len(good)))
	if err != nil || again != f {
		t.Fatalf("second request: %v, %v (want the verified descriptor)", again, err)
	}
	got, err := io.ReadAll(io.NewSectionReader(again, 0, int64(len(good))))
	if err != nil || !bytes.Equal(got, good) {
		t.Fatalf("read %d bytes, equal to the verified content: %v (%v)", len(got), bytes.Equal(got, good), err)
	}
}

// TestPooledInflaterAfterClose: once closed, a pooled inflater (whose
// Reader may already serve another member) reads nothing, and a second
// Close does not put it in the pool twice.
func TestPooledInflaterAfterClose(t *testing.T) {
	var comp bytes.Buffer
	fw, _ := flate.NewWriter(&comp, 6)
	fw.Write([]byte("hello hello hello"))
	fw.Close()
	rc := fastInflate(io.NewSectionReader(bytes.NewReader(comp.Bytes()), 0, int64(comp.Len())))
	if got, err := io.ReadAll(rc); err != nil || string(got) != "hello hello hello" {
		t.Fatalf("%q, %v", got, err)
	}
	rc.Close()
	rc.Close()
	if n, err := rc.Read(make([]byte, 10)); n != 0 || err == nil {
		t.Fatalf("read %d bytes, %v after Close", n, err)
	}
	a, b := inflaters.Get(), inflaters.Get()
	if a == b {
		t.Fatal("one inflater was put in the pool twice")
	}
}
