package builder

import (
	"archive/zip"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	kflate "github.com/klauspost/compress/flate"

	"github.com/mlenv/mlenv/internal/deflate"
	"github.com/mlenv/mlenv/lockfile"
)

// wheelLayout is where a wheel's parts go inside the image.
type wheelLayout struct {
	sitePackages string // purelib and platlib
	scripts      string // prefix/bin
	headers      string // prefix/include/pythonX.Y
	data         string // prefix
	interpreter  string // for shebangs
}

func layoutFor(py *lockfile.Python) wheelLayout {
	mm := py.Version
	if parts := strings.Split(mm, "."); len(parts) > 2 {
		mm = parts[0] + "." + parts[1]
	}
	return wheelLayout{
		sitePackages: strings.TrimPrefix(py.SitePackages, "/"),
		scripts:      strings.TrimPrefix(path.Join(py.Prefix, "bin"), "/"),
		headers:      strings.TrimPrefix(path.Join(py.Prefix, "include", "python"+mm), "/"),
		data:         strings.TrimPrefix(py.Prefix, "/"),
		interpreter:  py.Interpreter,
	}
}

// recordHash is the RECORD file's hash encoding: urlsafe base64, no padding.
func recordHash(sum []byte) string {
	return "sha256=" + base64.RawURLEncoding.EncodeToString(sum)
}

type recordEntry struct {
	hash string
	size int64
}

// installWheel adds a wheel to t as pip would install it, without Python:
// files unpacked into site-packages, .data/ moved to its places, #!python
// shebangs rewritten, console and gui scripts generated, INSTALLER added and
// RECORD rewritten for the installed paths. Every file is checked against
// the wheel's RECORD while it is written. zr must stay open until the
// layer is written.
func installWheel(t *tree, zr *zip.Reader, w lockfile.Wheel, lay wheelLayout) error {
	owner := w.Filename
	wn, err := lockfile.ParseWheelFilename(w.Filename)
	if err != nil {
		return err
	}
	// Name and version become folder names (dist-info, headers).
	if !wheelNameRe.MatchString(wn.Distribution) {
		return fmt.Errorf("%s: distribution name %q is not valid (PEP 427: letters, digits, \"_\" and \".\")", owner, wn.Distribution)
	}
	if !wheelVersionRe.MatchString(wn.Version) {
		return fmt.Errorf("%s: version %q is not a valid version (PEP 440)", owner, wn.Version)
	}
	if err := checkInterpreter(lay.interpreter); err != nil {
		return err
	}
	bud := t.archiveBudget(owner)
	if err := checkZipLayout(owner, zr, bud); err != nil {
		return err
	}
	files := map[string]*zip.File{}
	distInfo := ""
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/") {
			continue
		}
		if _, err := cleanPath(owner, f.Name); err != nil {
			return err
		}
		if strings.Contains(f.Name, "\\") {
			return &PathError{owner, f.Name, "contains a backslash"}
		}
		if _, dup := files[f.Name]; dup {
			return &PathError{owner, f.Name, "appears twice in the archive"}
		}
		if f.Mode()&fs.ModeSymlink != 0 {
			return &PathError{owner, f.Name, "is a symlink; wheels may not contain links"}
		}
		files[f.Name] = f
		top := strings.SplitN(f.Name, "/", 2)[0]
		if strings.HasSuffix(top, ".dist-info") && lockfile.NormalizeName(strings.TrimSuffix(top, ".dist-info")) == lockfile.NormalizeName(wn.Distribution+"-"+wn.Version) {
			distInfo = top
		}
	}
	if distInfo == "" {
		return fmt.Errorf("%s: no %s-%s.dist-info folder: not a valid wheel", owner, wn.Distribution, wn.Version)
	}
	readSmall := func(name string) ([]byte, error) {
		f, ok := files[name]
		if !ok {
			return nil, fmt.Errorf("%s: %s is missing", owner, name)
		}
		if f.UncompressedSize64 > 16<<20 {
			return nil, fmt.Errorf("%s: %s is too large", owner, name)
		}
		rc, err := f.Open()
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}
	// Root-Is-Purelib decides between purelib and platlib, which are the
	// same folder in mlenv's layout; WHEEL must still be there.
	if _, err := readSmall(distInfo + "/WHEEL"); err != nil {
		return err
	}
	recordRaw, err := readSmall(distInfo + "/RECORD")
	if err != nil {
		return err
	}
	record, err := parseRecord(owner, recordRaw)
	if err != nil {
		return err
	}

	dataDir := distInfo[:len(distInfo)-len(".dist-info")] + ".data/"
	installed := map[string]recordEntry{} // image path -> RECORD entry
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		f := files[name]
		if name == distInfo+"/RECORD" || name == distInfo+"/RECORD.jws" || name == distInfo+"/RECORD.p7s" {
			continue
		}
		rec, ok := record[name]
		if !ok || rec.hash == "" {
			return fmt.Errorf("%s: %s is not listed with a hash in RECORD: refusing an unverifiable file", owner, name)
		}
		if rec.size >= 0 && uint64(rec.size) != f.UncompressedSize64 {
			return fmt.Errorf("%s: %s is %d bytes but RECORD says %d: refused", owner, name, f.UncompressedSize64, rec.size)
		}
		dest, isScript := lay.sitePackages+"/"+name, false
		if rest, ok := strings.CutPrefix(name, dataDir); ok {
			kind, sub, _ := strings.Cut(rest, "/")
			if sub == "" {
				return fmt.Errorf("%s: %s: a .data member must lie inside one of its folders", owner, name)
			}
			switch kind {
			case "purelib", "platlib":
				dest = lay.sitePackages + "/" + sub
			case "scripts":
				dest, isScript = lay.scripts+"/"+sub, true
			case "headers":
				dest = lay.headers + "/" + wn.Distribution + "/" + sub
			case "data":
				dest = lay.data + "/" + sub
			default:
				return fmt.Errorf("%s: %s: unknown .data folder %q", owner, name, kind)
			}
		}
		dest, err := composedPath(owner, dest)
		if err != nil {
			return err
		}
		mode := int64(0o644)
		if f.Mode()&0o111 != 0 || isScript {
			mode = 0o755
		}
		check := hashingCheck(owner+": "+name, sha256.New, rec.hash, recordHash)
		if isScript {
			// Scripts are small; read, verify, rewrite the shebang.
			raw, err := readSmall(name)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(raw)
			if recordHash(sum[:]) != rec.hash {
				return fmt.Errorf("%s: %s: hash mismatch with RECORD", owner, name)
			}
			if rewritten, ok := rewriteShebang(raw, lay.interpreter); ok {
				raw = rewritten
			}
			if err := t.addData(owner, dest, mode, raw); err != nil {
				return err
			}
			s := sha256.Sum256(raw)
			installed[dest] = recordEntry{recordHash(s[:]), int64(len(raw))}
			continue
		}
		zf := f
		if err := t.add(&entry{path: dest, kind: kindFile, mode: mode, size: int64(f.UncompressedSize64), owner: owner,
			open: func() (io.ReadCloser, error) { return zf.Open() }, check: check, member: zf}); err != nil {
			return err
		}
		installed[dest] = recordEntry{rec.hash, int64(f.UncompressedSize64)}
	}

	// Entry points become scripts, as pypa/installer writes them.
	if _, ok := files[distInfo+"/entry_points.txt"]; ok {
		raw, err := readSmall(distInfo + "/entry_points.txt")
		if err != nil {
			return err
		}
		scripts, err := parseEntryPoints(owner, raw)
		if err != nil {
			return err
		}
		for _, s := range scripts {
			dest := lay.scripts + "/" + s.name
			body := scriptFor(lay.interpreter, s)
			if err := t.addData(owner, dest, 0o755, body); err != nil {
				return err
			}
			sum := sha256.Sum256(body)
			installed[dest] = recordEntry{recordHash(sum[:]), int64(len(body))}
		}
	}
	installer := []byte("mlenv\n")
	instPath := lay.sitePackages + "/" + distInfo + "/INSTALLER"
	if err := t.addData(owner, instPath, 0o644, installer); err != nil {
		return err
	}
	sum := sha256.Sum256(installer)
	installed[instPath] = recordEntry{recordHash(sum[:]), int64(len(installer))}

	recPath := lay.sitePackages + "/" + distInfo + "/RECORD"
	return t.addData(owner, recPath, 0o644, buildRecord(lay.sitePackages, recPath, installed))
}

// parseRecord reads RECORD (CSV: path,hash,size).
func parseRecord(owner string, raw []byte) (map[string]recordEntry, error) {
	out := map[string]recordEntry{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if text == "" {
			continue
		}
		fields, err := splitCSV(text)
		if err != nil || len(fields) != 3 {
			return nil, fmt.Errorf("%s: RECORD line %d: expected path,hash,size", owner, line)
		}
		var size int64 = -1
		if fields[2] != "" {
			if size, err = strconv.ParseInt(fields[2], 10, 64); err != nil {
				return nil, fmt.Errorf("%s: RECORD line %d: bad size %q", owner, line, fields[2])
			}
		}
		if fields[1] != "" && !strings.HasPrefix(fields[1], "sha256=") {
			return nil, fmt.Errorf("%s: RECORD line %d: only sha256 hashes are accepted, got %q", owner, line, fields[1])
		}
		out[fields[0]] = recordEntry{hash: fields[1], size: size}
	}
	return out, sc.Err()
}

// splitCSV splits one RECORD line; paths with commas are quoted.
func splitCSV(s string) ([]string, error) {
	var out []string
	for {
		if strings.HasPrefix(s, "\"") {
			end := strings.Index(s[1:], "\"")
			for end >= 0 && end+2 < len(s) && s[end+2] == '"' {
				next := strings.Index(s[end+3:], "\"")
				if next < 0 {
					end = -1
					break
				}
				end += next + 2
			}
			if end < 0 {
				return nil, fmt.Errorf("unterminated quote")
			}
			out = append(out, strings.ReplaceAll(s[1:end+1], "\"\"", "\""))
			s = s[end+2:]
			if s == "" {
				return out, nil
			}
			if s[0] != ',' {
				return nil, fmt.Errorf("bad quoting")
			}
			s = s[1:]
			continue
		}
		field, rest, more := strings.Cut(s, ",")
		out = append(out, field)
		if !more {
			return out, nil
		}
		s = rest
	}
}

// buildRecord writes the installed RECORD, paths relative to site-packages,
// sorted for determinism.
func buildRecord(site, recPath string, installed map[string]recordEntry) []byte {
	type row struct{ rel, hash, size string }
	var rows []row
	for p, e := range installed {
		rows = append(rows, row{relTo(site, p), e.hash, strconv.FormatInt(e.size, 10)})
	}
	rows = append(rows, row{relTo(site, recPath), "", ""})
	sort.Slice(rows, func(i, j int) bool { return rows[i].rel < rows[j].rel })
	var b bytes.Buffer
	for _, r := range rows {
		rel := r.rel
		if strings.ContainsAny(rel, ",\"") {
			rel = "\"" + strings.ReplaceAll(rel, "\"", "\"\"") + "\""
		}
		fmt.Fprintf(&b, "%s,%s,%s\n", rel, r.hash, r.size)
	}
	return b.Bytes()
}

// relTo is target relative to base (both clean, slash-separated, relative to /).
func relTo(base, target string) string {
	bp, tp := strings.Split(base, "/"), strings.Split(target, "/")
	i := 0
	for i < len(bp) && i < len(tp) && bp[i] == tp[i] {
		i++
	}
	parts := make([]string, 0, len(bp)-i+len(tp)-i)
	for j := i; j < len(bp); j++ {
		parts = append(parts, "..")
	}
	parts = append(parts, tp[i:]...)
	return strings.Join(parts, "/")
}

// rewriteShebang replaces "#!python" (and "#!pythonw") as the wheel spec asks.
func rewriteShebang(raw []byte, interpreter string) ([]byte, bool) {
	for _, magic := range []string{"#!pythonw", "#!python"} {
		if bytes.HasPrefix(raw, []byte(magic)) {
			rest := raw[len(magic):]
			if len(rest) > 0 && rest[0] != '\n' && rest[0] != '\r' && rest[0] != ' ' {
				continue
			}
			return append([]byte(shebang(interpreter)), rest...), true
		}
	}
	return raw, false
}

// shebang follows pypa/installer's _build_shebang: a plain #! line unless
// the interpreter path is longer than 127 bytes or has a space, then the
// /bin/sh exec trick with the path shell-quoted (shlex.quote).
func shebang(interpreter string) string {
	if len(interpreter) <= 127 && !strings.ContainsAny(interpreter, " \t") {
		return "#!" + interpreter
	}
	return "#!/bin/sh\n'''exec' " + shellQuote(interpreter) + " \"$0\" \"$@\"\n' '''"
}

// shellQuote is Python's shlex.quote.
func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	if shellSafeRe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

// checkInterpreter refuses an interpreter path that cannot sit in a
// shebang line: it comes from the lock, and a newline in it would end the
// line and run the rest as code.
func checkInterpreter(p string) error {
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\x00\n\r") {
		return fmt.Errorf("python interpreter %q must be an absolute path on one line", p)
	}
	return nil
}

var (
	shellSafeRe = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)
	// PEP 427 file names escape "-" to "_"; PEP 503 names otherwise.
	wheelNameRe    = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._]*[A-Za-z0-9])?$`)
	wheelVersionRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.!+_]*$`)
	// Entry points: "module.sub:attr.sub", dotted Python identifiers.
	dottedIdentRe = regexp.MustCompile(`^[\p{L}_][\p{L}\p{N}_]*(\.[\p{L}_][\p{L}\p{N}_]*)*$`)
	// Script names become file names in bin/ and text in a Python file.
	scriptNameRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._+-]*$`)
)

type entryPoint struct {
	name, module, attr string
	gui                bool
}

// parseEntryPoints reads [console_scripts] and [gui_scripts].
func parseEntryPoints(owner string, raw []byte) ([]entryPoint, error) {
	var out []entryPoint
	section := ""
	for i, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = strings.TrimSpace(line[1 : len(line)-1])
			continue
		}
		if section != "console_scripts" && section != "gui_scripts" {
			continue
		}
		name, target, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s: entry_points.txt line %d: expected name = module:attr", owner, i+1)
		}
		name = strings.TrimSpace(name)
		target = strings.TrimSpace(target)
		if j := strings.Index(target, "["); j >= 0 {
			target = strings.TrimSpace(target[:j]) // extras do not change the script
		}
		mod, attr, ok := strings.Cut(target, ":")
		mod, attr = strings.TrimSpace(mod), strings.TrimSpace(attr)
		if !ok || !dottedIdentRe.MatchString(mod) || !dottedIdentRe.MatchString(attr) {
			return nil, fmt.Errorf("%s: entry_points.txt line %d: %q must be module:attr, both dotted Python identifiers", owner, i+1, target)
		}
		if !scriptNameRe.MatchString(name) || len(name) > 255 {
			return nil, fmt.Errorf("%s: entry_points.txt line %d: bad script name %q (letters, digits, . _ + - only)", owner, i+1, name)
		}
		out = append(out, entryPoint{name: name, module: mod, attr: attr, gui: section == "gui_scripts"})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// scriptFor is pypa/installer's launcher script.
func scriptFor(interpreter string, ep entryPoint) []byte {
	importName := strings.SplitN(ep.attr, ".", 2)[0]
	return []byte(fmt.Sprintf(`%s
# -*- coding: utf-8 -*-
import re
import sys
from %s import %s
if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\.pyw|\.exe)?$", "", sys.argv[0])
    sys.exit(%s())
`, shebang(interpreter), ep.module, importName, ep.attr))
}

// checkZipLayout refuses a zip whose members overlap (several
// central-directory records pointing into one stream: a small file that
// unpacks many times over) and charges every member's declared size to
// the budget. archive/zip enforces declared sizes while reading, so a
// member that inflates past its size fails then.
func checkZipLayout(owner string, zr *zip.Reader, bud *archiveBudget) error {
	if err := bud.add(int64(len(zr.File)), 0); err != nil {
		return err
	}
	type span struct {
		start, end int64
		name       string
	}
	spans := make([]span, 0, len(zr.File))
	for _, f := range zr.File {
		if err := bud.add(0, int64(min(f.UncompressedSize64, 1<<62))); err != nil {
			return err
		}
		off, err := f.DataOffset()
		if err != nil {
			return fmt.Errorf("%s: %s: corrupt zip member: %w", owner, f.Name, err)
		}
		if f.CompressedSize64 > 1<<62 {
			return fmt.Errorf("%s: %s: corrupt zip member size", owner, f.Name)
		}
		spans = append(spans, span{off, off + int64(f.CompressedSize64), f.Name})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	for i := 1; i < len(spans); i++ {
		// A member's local header (30 bytes at least) lies before its data.
		if spans[i].start-30 < spans[i-1].end {
			return fmt.Errorf("%s: zip members %q and %q overlap in the file: refused (a zip bomb, or a corrupt wheel)", owner, spans[i-1].name, spans[i].name)
		}
	}
	return nil
}

// fastInflate reads deflated zip members with mlenv's own inflater
// (internal/deflate, faster than klauspost's and the standard one on
// Python-like text: `go test ./internal/deflate -bench Inflate`, figures in
// README's make bench section), its buffers pooled: archive/zip hands it
// the member as an *io.SectionReader, read at offsets in large pieces.
// Anything else goes through klauspost's inflater behind a 1 MiB buffer.
// Decompression is exact; the output does not depend on the reader.
func fastInflate(r io.Reader) io.ReadCloser {
	if sr, ok := r.(*io.SectionReader); ok {
		d := inflaters.Get().(*deflate.Reader)
		d.Reset(sr, sr.Size())
		return &pooledInflater{d: d}
	}
	return kflate.NewReader(bufio.NewReaderSize(r, 1<<20))
}

var inflaters = sync.Pool{New: func() any { return deflate.NewReader(nil, 0) }}

// pooledInflater gives its inflater back on Close.
type pooledInflater struct{ d *deflate.Reader }

func (p *pooledInflater) Read(b []byte) (int, error) {
	if p.d == nil {
		return 0, errors.New("read from a closed inflater")
	}
	return p.d.Read(b)
}

func (p *pooledInflater) Close() error {
	if p.d != nil {
		inflaters.Put(p.d)
		p.d = nil
	}
	return nil
}
