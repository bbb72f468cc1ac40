// Package testutil makes fixtures (wheels, debs) from their formats, so
// that tests and examples need nothing downloaded, and runs an in-process
// registry on 127.0.0.1.
package testutil

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// fixedTime keeps generated fixtures byte-identical from run to run.
var fixedTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// ZipEntry is one member of a generated zip.
type ZipEntry struct {
	Name string
	Body []byte
	Mode uint32 // unix mode, 0 = 0644
}

// Zip writes entries in order, deterministically.
func Zip(entries []ZipEntry) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.Name, Method: zip.Deflate, Modified: fixedTime}
		mode := e.Mode
		if mode == 0 {
			mode = 0o100644
		}
		h.CreatorVersion = 3 << 8 // unix, so the mode is honoured
		h.ExternalAttrs = mode << 16
		w, err := zw.CreateHeader(h)
		if err != nil {
			panic(err)
		}
		w.Write(e.Body)
	}
	if err := zw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// Wheel describes a wheel to generate.
type Wheel struct {
	Name, Version string
	// Files maps archive paths (relative to the wheel root) to contents.
	Files map[string]string
	// EntryPoints is the text of entry_points.txt ("" for none).
	EntryPoints string
	Tag         string // default py3-none-any
	// Mutate may change the entries before RECORD is computed (nil: none);
	// MutateAfter after (to make RECORD lie).
	MutateAfter func([]ZipEntry) []ZipEntry
}

// Filename is the wheel's file name.
func (w Wheel) Filename() string {
	tag := w.Tag
	if tag == "" {
		tag = "py3-none-any"
	}
	return fmt.Sprintf("%s-%s-%s.whl", w.Name, w.Version, tag)
}

// Bytes builds the wheel with a correct RECORD.
func (w Wheel) Bytes() []byte {
	tag := w.Tag
	if tag == "" {
		tag = "py3-none-any"
	}
	di := w.Name + "-" + w.Version + ".dist-info"
	files := map[string]string{}
	for k, v := range w.Files {
		files[k] = v
	}
	files[di+"/METADATA"] = fmt.Sprintf("Metadata-Version: 2.1\nName: %s\nVersion: %s\nLicense: MIT\n", w.Name, w.Version)
	files[di+"/WHEEL"] = fmt.Sprintf("Wheel-Version: 1.0\nGenerator: mlenv-testutil\nRoot-Is-Purelib: true\nTag: %s\n", tag)
	if w.EntryPoints != "" {
		files[di+"/entry_points.txt"] = w.EntryPoints
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var entries []ZipEntry
	var record strings.Builder
	for _, n := range names {
		body := []byte(files[n])
		mode := uint32(0)
		if strings.Contains(n, ".data/scripts/") {
			mode = 0o100755
		}
		entries = append(entries, ZipEntry{Name: n, Body: body, Mode: mode})
		sum := sha256.Sum256(body)
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", n, base64.RawURLEncoding.EncodeToString(sum[:]), len(body))
	}
	fmt.Fprintf(&record, "%s/RECORD,,\n", di)
	entries = append(entries, ZipEntry{Name: di + "/RECORD", Body: []byte(record.String())})
	if w.MutateAfter != nil {
		entries = w.MutateAfter(entries)
	}
	return Zip(entries)
}

// TarEntry is one member of a generated tar.
type TarEntry struct {
	Name     string
	Body     string
	Mode     int64
	Type     byte // tar.TypeReg by default
	Linkname string
}

// Tar writes entries in the given order with fixed metadata.
func Tar(entries []TarEntry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.Type
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.Mode
		if mode == 0 {
			mode = 0o644
			if typ == tar.TypeDir {
				mode = 0o755
			}
		}
		h := &tar.Header{Name: e.Name, Mode: mode, Typeflag: typ, Linkname: e.Linkname, ModTime: fixedTime, Format: tar.FormatGNU}
		if typ == tar.TypeReg {
			h.Size = int64(len(e.Body))
		}
		if err := tw.WriteHeader(h); err != nil {
			panic(err)
		}
		if typ == tar.TypeReg {
			tw.Write([]byte(e.Body))
		}
	}
	tw.Close()
	return buf.Bytes()
}

// Deb describes a Debian package to generate.
type Deb struct {
	Package, Version, Arch string
	Depends                string
	Files                  []TarEntry
	// Compression of data.tar: "gz" (default), "xz" or "zst".
	Compression string
	// Control replaces the generated control file when set (hostile
	// fields); ControlMembers are added to control.tar.
	Control        string
	ControlMembers []TarEntry
	// Data replaces data.tar.* (already compressed as Compression says).
	Data []byte
}

// Filename is the conventional file name.
func (d Deb) Filename() string { return fmt.Sprintf("%s_%s_%s.deb", d.Package, d.Version, d.Arch) }

// Bytes builds the .deb: ar with debian-binary, control.tar.gz, data.tar.*.
func (d Deb) Bytes() []byte {
	control := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: %s\nMaintainer: mlenv tests <tests@example.invalid>\n", d.Package, d.Version, d.Arch)
	if d.Depends != "" {
		control += "Depends: " + d.Depends + "\n"
	}
	control += "Description: test package\n generated by mlenv's test fixtures\n"
	if d.Control != "" {
		control = d.Control
	}
	ctl := gz(Tar(append([]TarEntry{{Name: "./", Type: tar.TypeDir}, {Name: "./control", Body: control}}, d.ControlMembers...)))
	name := "data.tar." + d.Compression
	if d.Compression == "" {
		name = "data.tar.gz"
	}
	data := d.Data
	if data == nil {
		data = compress(d.Compression, Tar(d.Files))
	}
	return Ar([]ArMember{{"debian-binary", []byte("2.0\n")}, {"control.tar.gz", ctl}, {name, data}})
}

// compress compresses b as one gz, xz or zst stream.
func compress(comp string, b []byte) []byte {
	switch comp {
	case "xz":
		var buf bytes.Buffer
		w, _ := xz.NewWriter(&buf)
		w.Write(b)
		w.Close()
		return buf.Bytes()
	case "zst":
		enc, _ := zstd.NewWriter(nil)
		return enc.EncodeAll(b, nil)
	}
	return gz(b)
}

// ZeroBombData is a compressed data.tar of files regular files of size
// bytes of zeros each (e.g. 160 x 64 MiB = 10 GiB) that stays small: xz,
// zstd and gzip all accept concatenated streams, so one compressed chunk
// of zeros is repeated instead of compressing gigabytes.
func ZeroBombData(comp string, files int, size int64) []byte {
	const chunk = 16 << 20
	if size%chunk != 0 {
		panic("ZeroBombData: size must be a multiple of 16 MiB")
	}
	zeros := compress(comp, make([]byte, chunk))
	var out bytes.Buffer
	for i := 0; i < files; i++ {
		var hdr bytes.Buffer
		tw := tar.NewWriter(&hdr)
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("./zeros-%04d", i), Mode: 0o644, Size: size, Typeflag: tar.TypeReg, ModTime: fixedTime, Format: tar.FormatGNU})
		tw.Flush()
		out.Write(compress(comp, hdr.Bytes()))
		for n := int64(0); n < size; n += chunk {
			out.Write(zeros)
		}
	}
	out.Write(compress(comp, make([]byte, 1024))) // end of archive
	return out.Bytes()
}

// OverlappingZip writes one deflated member and n central-directory
// records (names[i]) that all point at it: each record unpacks the same
// stream again, so a small file unpacks n times over. Each record claims
// the member's true sizes and CRC.
func OverlappingZip(body []byte, names []string) []byte {
	one := Zip([]ZipEntry{{Name: names[0], Body: body}})
	zr, err := zip.NewReader(bytes.NewReader(one), int64(len(one)))
	if err != nil {
		panic(err)
	}
	f := zr.File[0]
	off, _ := f.DataOffset()
	local := one[:off+int64(f.CompressedSize64)]
	var b bytes.Buffer
	b.Write(local)
	cdStart := b.Len()
	le := func(v any) { binary.Write(&b, binary.LittleEndian, v) }
	for _, n := range names {
		le(uint32(0x02014b50))
		le(uint16(3<<8 | 20)) // made by unix
		le(uint16(20))
		le(uint16(0x800)) // UTF-8 names
		le(uint16(zip.Deflate))
		le(uint16(0))
		le(uint16(0x21))
		le(f.CRC32)
		le(uint32(f.CompressedSize64))
		le(uint32(f.UncompressedSize64))
		le(uint16(len(n)))
		le(uint16(0))
		le(uint16(0))
		le(uint16(0))
		le(uint16(0))
		le(uint32(0o100644 << 16))
		le(uint32(0)) // every record: the one local header at offset 0
		b.WriteString(n)
	}
	cdLen := b.Len() - cdStart
	le(uint32(0x06054b50))
	le(uint16(0))
	le(uint16(0))
	le(uint16(len(names)))
	le(uint16(len(names)))
	le(uint32(cdLen))
	le(uint32(cdStart))
	le(uint16(0))
	return b.Bytes()
}

// ArMember is one member of an ar archive.
type ArMember struct {
	Name string
	Body []byte
}

// Ar writes a System V ar archive as dpkg-deb does.
func Ar(members []ArMember) []byte {
	var b bytes.Buffer
	b.WriteString("!<arch>\n")
	for _, m := range members {
		fmt.Fprintf(&b, "%-16s%-12d%-6d%-6d%-8o%-10d`\n", m.Name, 0, 0, 0, 0o100644, len(m.Body))
		b.Write(m.Body)
		if len(m.Body)%2 == 1 {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// CopyDir copies a folder of regular files, keeping their modes.
func CopyDir(src, dst string) error {
	return filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, fi.Mode())
	})
}
