package builder

import (
	"archive/zip"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	kflate "github.com/klauspost/compress/flate"
	"io"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

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
		dest, isScript := lay.sitePackages+"/"+name, false
		if rest, ok := strings.CutPrefix(name, dataDir); ok {
			kind, sub, _ := strings.Cut(rest, "/")
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
		dest, err := cleanPath(owner, dest)
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
			open: func() (io.ReadCloser, error) { return zf.Open() }, check: check}); err != nil {
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

// shebang follows pypa/installer: a plain #! line unless the interpreter
// path is too long or has spaces, then the /bin/sh exec trick.
func shebang(interpreter string) string {
	if len(interpreter) <= 127 && !strings.ContainsAny(interpreter, " \t") {
		return "#!" + interpreter
	}
	return "#!/bin/sh\n'''exec' '" + interpreter + "' \"$0\" \"$@\"\n' '''"
}

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
		if !ok || mod == "" || attr == "" {
			return nil, fmt.Errorf("%s: entry_points.txt line %d: %q must be module:attr", owner, i+1, target)
		}
		if name == "" || strings.ContainsAny(name, "/\\") || name == "." || name == ".." {
			return nil, fmt.Errorf("%s: entry_points.txt line %d: bad script name %q", owner, i+1, name)
		}
		out = append(out, entryPoint{name: name, module: strings.TrimSpace(mod), attr: strings.TrimSpace(attr), gui: section == "gui_scripts"})
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

// fastInflate reads deflated zip members with klauspost's inflater
// through a 1 MiB buffer: the standard one reads the file 4 KiB at a time.
// Decompression is exact; the output does not depend on the reader.
func fastInflate(r io.Reader) io.ReadCloser {
	return kflate.NewReader(bufio.NewReaderSize(r, 1<<20))
}
