package attest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/mlenv/mlenv/internal/debpkg"
	"github.com/mlenv/mlenv/internal/dep5"
	"github.com/mlenv/mlenv/internal/layerwalk"
	"github.com/mlenv/mlenv/lockfile"
)

// FoundPackage is a package an image's layers declare through a package
// manager's metadata.
type FoundPackage struct {
	Type    string // "deb", "pypi", "conda"
	Name    string
	Version string
	Arch    string // debs
	License string // as declared, "" when not
	// LicenseIsSPDX says License is already an SPDX expression (read from
	// a machine-readable Debian copyright file), with LicenseTexts the
	// text of each LicenseRef- it uses.
	LicenseIsSPDX bool
	LicenseTexts  map[string]string
	// Layer is the index of the layer the metadata came from.
	Layer int
	// Path is the metadata file.
	Path string
}

// Inventory is what an image's layers say about their packages.
type Inventory struct {
	Packages []FoundPackage
	// DistroID and DistroVersionID are os-release's ID and VERSION_ID
	// (for deb package URLs), "" if unknown.
	DistroID, DistroVersionID string
}

// maxMetadata bounds the size of one metadata file read into memory.
const maxMetadata = 64 << 20

var (
	distInfoRe = regexp.MustCompile(`(^|/)[^/]+\.dist-info/METADATA$`)
	eggInfoRe  = regexp.MustCompile(`(^|/)[^/]+\.egg-info(/PKG-INFO)?$`)
	condaRe    = regexp.MustCompile(`(^|/)conda-meta/[^/]+\.json$`)
	// Debian's per-package copyright file; its package is the folder.
	copyrightRe = regexp.MustCompile(`^usr/share/doc/([^/]+)/copyright$`)
)

// ReadInventory streams the layers of img and reads only the package
// metadata files it needs (dpkg status and status.d, dist-info METADATA,
// egg-info, conda-meta, os-release, Debian copyright files): layers are never unpacked to disk, and other
// files are skipped without being buffered.
func ReadInventory(img v1.Image) (*Inventory, error) {
	v := NewInventoryVisitor()
	if err := layerwalk.Walk(img, v); err != nil {
		return nil, err
	}
	return v.Inventory(), nil
}

// InventoryVisitor is the layer visitor behind ReadInventory. A later
// layer's metadata file replaces an earlier one's, and whiteouts remove
// them, as in the running container.
type InventoryVisitor struct {
	byPath map[string][]FoundPackage
	order  []string
	// copyright holds each read copyright file's license by path; nil
	// for one that is not machine-readable, malformed or too large.
	copyright map[string]*dep5.License
	// paths indexes the paths of byPath and copyright by folder, for
	// whiteouts.
	paths                     layerwalk.Paths
	distroID, distroVersionID string
	etcOSRelease              bool // distro* came from /etc/os-release
}

// NewInventoryVisitor starts an empty inventory.
func NewInventoryVisitor() *InventoryVisitor {
	return &InventoryVisitor{byPath: map[string][]FoundPackage{}, copyright: map[string]*dep5.License{}}
}

// Inventory is what the walk found, in the order files first appeared.
func (v *InventoryVisitor) Inventory() *Inventory {
	inv := &Inventory{DistroID: v.distroID, DistroVersionID: v.distroVersionID}
	for _, p := range v.order {
		for _, f := range v.byPath[p] {
			// A deb's machine-readable copyright file is its license:
			// dpkg's status has no license field.
			if l := v.copyright["usr/share/doc/"+f.Name+"/copyright"]; f.Type == "deb" && l != nil {
				f.License, f.LicenseIsSPDX, f.LicenseTexts = l.Expression, true, l.Texts
			}
			inv.Packages = append(inv.Packages, f)
		}
	}
	return inv
}

func (v *InventoryVisitor) found(p string, pkgs []FoundPackage) {
	if _, seen := v.byPath[p]; !seen {
		v.order = append(v.order, p)
	}
	v.byPath[p] = pkgs
	v.paths.Add(p)
}

// Visit implements layerwalk.Visitor; it reads (consumes) only metadata.
func (v *InventoryVisitor) Visit(layer int, name string, h *tar.Header, body io.Reader) (bool, error) {
	if removed, opaque, ok := layerwalk.Whiteout(name); ok {
		// The paths a whiteout removes are found through the folder
		// index: comparing each whiteout with every path read so far
		// took hours for 100,000 copyright files and as many whiteouts.
		var gone []string
		v.paths.Hidden(removed, opaque, func(p string) { gone = append(gone, p) })
		for _, p := range gone {
			if _, ok := v.byPath[p]; ok {
				v.byPath[p] = nil
			}
			delete(v.copyright, p)
			v.paths.Remove(p)
		}
		return false, nil
	}
	if h.Typeflag != tar.TypeReg || body == nil {
		return false, nil
	}
	kind := ""
	switch {
	case name == "var/lib/dpkg/status" || strings.HasPrefix(name, "var/lib/dpkg/status.d/") && !strings.HasSuffix(name, ".md5sums"):
		kind = "dpkg"
	case distInfoRe.MatchString(name):
		kind = "dist-info"
	case eggInfoRe.MatchString(name):
		kind = "egg-info"
	case condaRe.MatchString(name):
		kind = "conda"
	case name == "etc/os-release" || name == "usr/lib/os-release":
		kind = "os-release"
	case copyrightRe.MatchString(name):
		// A copyright file is a license, not the package list: one too
		// large to be real is left unread (the package's license stays
		// NOASSERTION) rather than failing the whole inventory.
		if h.Size > dep5.MaxSize {
			v.copyright[name] = nil
			v.paths.Add(name)
			return false, nil
		}
		kind = "copyright"
	default:
		return false, nil
	}
	if h.Size > maxMetadata {
		return false, fmt.Errorf("metadata file of %d bytes is implausibly large", h.Size)
	}
	b, err := io.ReadAll(io.LimitReader(body, maxMetadata))
	if err != nil {
		return true, err
	}
	switch kind {
	case "dpkg":
		v.found(name, parseDpkgStatus(b, layer, name))
	case "dist-info", "egg-info":
		if p, ok := parsePkgInfo(b); ok {
			p.Type, p.Layer, p.Path = "pypi", layer, name
			v.found(name, []FoundPackage{p})
		}
	case "conda":
		var meta struct {
			Name, Version, License string
		}
		if json.Unmarshal(b, &meta) == nil && meta.Name != "" {
			v.found(name, []FoundPackage{{Type: "conda", Name: meta.Name, Version: meta.Version, License: meta.License, Layer: layer, Path: name}})
		}
	case "copyright":
		// Free-text and malformed files leave the license unknown
		// (NOASSERTION): a guess would be a false statement.
		if l, err := dep5.Parse(b); err == nil {
			v.copyright[name] = &l
		} else {
			v.copyright[name] = nil
		}
		v.paths.Add(name)
	case "os-release":
		// /etc/os-release wins over /usr/lib/os-release whatever the
		// order in the layer (it is usually a symlink to the latter).
		if name == "etc/os-release" || !v.etcOSRelease {
			v.etcOSRelease = name == "etc/os-release"
			v.distroID, v.distroVersionID = "", ""
			for _, line := range strings.Split(string(b), "\n") {
				if id, ok := strings.CutPrefix(line, "ID="); ok {
					v.distroID = strings.Trim(id, `"'`)
				}
				if ver, ok := strings.CutPrefix(line, "VERSION_ID="); ok {
					v.distroVersionID = strings.Trim(ver, `"'`)
				}
			}
		}
	}
	return true, nil
}

// parseDpkgStatus reads installed packages from a status file (several
// paragraphs) or a status.d entry.
func parseDpkgStatus(b []byte, layer int, file string) []FoundPackage {
	var out []FoundPackage
	for _, para := range bytes.Split(b, []byte("\n\n")) {
		c, err := debpkg.ParseControl(para)
		if err != nil {
			continue
		}
		if st := c.Get("Status"); st != "" && !strings.HasSuffix(st, " installed") {
			continue
		}
		out = append(out, FoundPackage{Type: "deb", Name: c.Package(), Version: c.Version(), Arch: c.Architecture(), Layer: layer, Path: file})
	}
	return out
}

// parsePkgInfo reads the core metadata headers (METADATA / PKG-INFO).
func parsePkgInfo(b []byte) (FoundPackage, bool) {
	var p FoundPackage
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			break // the body (description) follows the headers
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Name":
			p.Name = v
		case "Version":
			p.Version = v
		case "License-Expression":
			p.License = v
		case "License":
			if p.License == "" {
				p.License = v
			}
		}
	}
	p.Name = lockfile.NormalizeName(p.Name)
	return p, p.Name != "" && p.Version != ""
}
