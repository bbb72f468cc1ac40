package attest

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	packageurl "github.com/package-url/packageurl-go"
	"github.com/spdx/tools-golang/spdx"
	"github.com/spdx/tools-golang/spdx/v2/common"

	"github.com/mlenv/mlenv/cuda"
	"github.com/mlenv/mlenv/internal/cas"
	"github.com/mlenv/mlenv/lockfile"
)

// SPDXPredicateType is what cosign calls --type spdxjson.
const SPDXPredicateType = "https://spdx.dev/Document"

// CUDAAnnotationPrefix starts the SPDX annotation (on the image package)
// that carries the image's GPU code summary as JSON.
const CUDAAnnotationPrefix = "mlenv.cuda.v1: "

// SBOMInput is what the SBOM describes.
type SBOMInput struct {
	// ImageName is the repository (or a local name); Digest the image's.
	ImageName string
	Digest    string
	// Lock, when given, adds every locked artifact with its checksum.
	Lock *lockfile.Lock
	// Inventory is what the image's layers declare.
	Inventory *Inventory
	// CUDA, when given, is recorded as an annotation on the image.
	CUDA *cuda.ImageReport
	// Tool names the creator ("mlenv-<version>").
	Tool string
	Now  time.Time
}

// spdxLicense keeps a declared license only if it reads as an SPDX
// expression; free text becomes NOASSERTION rather than an invalid value.
var spdxLicenseRe = regexp.MustCompile(`^\(?[A-Za-z0-9.+-]+( (AND|OR|WITH) \(?[A-Za-z0-9.+-]+\)?)*\)?$`)

func spdxLicense(s string) string {
	s = strings.TrimSpace(s)
	if s == "" || !spdxLicenseRe.MatchString(s) || strings.EqualFold(s, "UNKNOWN") {
		return "NOASSERTION"
	}
	return s
}

var idUnsafe = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

// BuildSBOM makes an SPDX 2.3 document: the image as the described
// package (purpose CONTAINER), every locked wheel, deb and file set, and
// every package the image's layers declare that the lock does not.
func BuildSBOM(in SBOMInput) (*spdx.Document, error) {
	hex, err := cas.ParseSHA256(in.Digest)
	if err != nil {
		return nil, fmt.Errorf("image digest: %w", err)
	}
	name := in.ImageName
	if name == "" {
		name = "image"
	}
	short := name[strings.LastIndex(name, "/")+1:]
	if i := strings.IndexAny(short, ":@"); i >= 0 {
		short = short[:i]
	}
	doc := &spdx.Document{
		SPDXVersion:       spdx.Version,
		DataLicense:       spdx.DataLicense,
		SPDXIdentifier:    "DOCUMENT",
		DocumentName:      name + "@sha256:" + hex,
		DocumentNamespace: "https://mlenv.dev/spdx/" + url.PathEscape(short) + "/sha256-" + hex,
		CreationInfo: &spdx.CreationInfo{
			Creators: []common.Creator{{CreatorType: "Tool", Creator: in.Tool}},
			Created:  in.Now.UTC().Format(time.RFC3339),
		},
	}
	root := &spdx.Package{
		PackageName:               name,
		PackageSPDXIdentifier:     "image",
		PackageVersion:            "sha256:" + hex,
		PackageDownloadLocation:   "NOASSERTION",
		FilesAnalyzed:             false,
		IsFilesAnalyzedTagPresent: true,
		PackageChecksums:          []common.Checksum{{Algorithm: common.SHA256, Value: hex}},
		PackageLicenseConcluded:   "NOASSERTION",
		PackageLicenseDeclared:    "NOASSERTION",
		PackageCopyrightText:      "NOASSERTION",
		PrimaryPackagePurpose:     "CONTAINER",
		PackageExternalReferences: []*spdx.PackageExternalReference{{
			Category: "PACKAGE-MANAGER", RefType: "purl",
			Locator: "pkg:oci/" + url.PathEscape(short) + "@sha256%3A" + hex,
		}},
	}
	if in.CUDA != nil {
		b, err := json.Marshal(struct {
			Summary     cuda.Summary   `json:"summary"`
			CUDARuntime []cuda.Runtime `json:"cudaRuntime"`
			CUDACompat  bool           `json:"cudaCompat"`
		}{in.CUDA.Summary, in.CUDA.CUDARuntime, in.CUDA.CUDACompat})
		if err != nil {
			return nil, err
		}
		root.Annotations = append(root.Annotations, spdx.Annotation{
			Annotator:      common.Annotator{AnnotatorType: "Tool", Annotator: in.Tool},
			AnnotationDate: in.Now.UTC().Format(time.RFC3339), AnnotationType: "OTHER",
			AnnotationComment: CUDAAnnotationPrefix + string(b),
		})
	}
	doc.Packages = append(doc.Packages, root)
	doc.Relationships = append(doc.Relationships, &spdx.Relationship{
		RefA: common.MakeDocElementID("", "DOCUMENT"), RefB: common.MakeDocElementID("", "image"), Relationship: "DESCRIBES"})

	ids := map[string]int{}
	add := func(p *spdx.Package, kind string) {
		id := idUnsafe.ReplaceAllString(kind+"-"+p.PackageName+"-"+p.PackageVersion, "-")
		ids[id]++
		if n := ids[id]; n > 1 {
			id = fmt.Sprintf("%s-%d", id, n)
		}
		p.PackageSPDXIdentifier = common.ElementID(id)
		if p.PackageDownloadLocation == "" {
			p.PackageDownloadLocation = "NOASSERTION"
		}
		if p.PackageLicenseConcluded == "" {
			p.PackageLicenseConcluded = "NOASSERTION"
		}
		if p.PackageLicenseDeclared == "" {
			p.PackageLicenseDeclared = "NOASSERTION"
		}
		p.PackageCopyrightText = "NOASSERTION"
		p.IsFilesAnalyzedTagPresent = true
		doc.Packages = append(doc.Packages, p)
		doc.Relationships = append(doc.Relationships, &spdx.Relationship{
			RefA: common.MakeDocElementID("", "image"), RefB: common.MakeDocElementID("", id), Relationship: "CONTAINS"})
	}

	// Deb purls: the namespace is the distribution (os-release's ID,
	// "debian" when unknown) and the distro qualifier its release
	// ("debian-12"), left out when the image has no os-release.
	distro, distroQual := "debian", ""
	var found []FoundPackage
	if in.Inventory != nil {
		found = in.Inventory.Packages
		if in.Inventory.DistroID != "" {
			distro = in.Inventory.DistroID
			if in.Inventory.DistroVersionID != "" {
				distroQual = in.Inventory.DistroID + "-" + in.Inventory.DistroVersionID
			}
		}
	}
	debPurl := func(name, version, arch string) string {
		q := map[string]string{}
		if arch != "" {
			q["arch"] = arch
		}
		if distroQual != "" {
			q["distro"] = distroQual
		}
		return purl(packageurl.TypeDebian, distro, name, version, q)
	}
	licenses := newLicenseSet()
	declared := func(f *FoundPackage) string {
		if f == nil {
			return "NOASSERTION"
		}
		if f.LicenseIsSPDX {
			return licenses.add(f.License, f.LicenseTexts)
		}
		return spdxLicense(f.License)
	}
	claimed := make([]bool, len(found))
	match := func(typ, name, version string) *FoundPackage {
		for i := range found {
			f := &found[i]
			if !claimed[i] && f.Type == typ && f.Version == version &&
				(f.Name == name || typ == "pypi" && lockfile.NormalizeName(f.Name) == lockfile.NormalizeName(name)) {
				claimed[i] = true
				return f
			}
		}
		return nil
	}
	download := func(uri string) string {
		if cas.IsRemote(uri) {
			return uri
		}
		return "NOASSERTION"
	}
	if l := in.Lock; l != nil {
		for _, w := range l.Wheels {
			add(&spdx.Package{
				PackageName: w.Name, PackageVersion: w.Version, PackageFileName: w.Filename,
				PackageDownloadLocation: download(w.URI),
				PackageChecksums:        []common.Checksum{{Algorithm: common.SHA256, Value: w.SHA256}},
				PackageLicenseDeclared:  declared(match("pypi", w.Name, w.Version)),
				PackageExternalReferences: []*spdx.PackageExternalReference{purlRef(
					purl(packageurl.TypePyPi, "", w.Name, w.Version, nil))},
				PackageComment: "locked in mlenv.lock",
			}, "pypi")
		}
		for _, d := range l.Debs {
			add(&spdx.Package{
				PackageName: d.Package, PackageVersion: d.Version,
				PackageDownloadLocation:   download(d.URI),
				PackageChecksums:          []common.Checksum{{Algorithm: common.SHA256, Value: d.SHA256}},
				PackageLicenseDeclared:    declared(match("deb", d.Package, d.Version)),
				PackageExternalReferences: []*spdx.PackageExternalReference{purlRef(debPurl(d.Package, d.Version, d.Architecture))},
				PackageComment:            "locked in mlenv.lock",
			}, "deb")
		}
		for _, fs := range l.Files {
			add(&spdx.Package{
				PackageName: fs.Dst, PackageVersion: "tree-sha256:" + fs.SHA256,
				PackageComment: fmt.Sprintf("local files from %s locked in mlenv.lock: %d files, %d bytes; the version is mlenv's tree hash of names, modes and contents", fs.Src, fs.Files, fs.Size),
			}, "files")
		}
	}
	// What the layers declare beyond the lock: the base image's packages.
	var rest []FoundPackage
	for i, f := range found {
		if !claimed[i] {
			rest = append(rest, f)
		}
	}
	sort.SliceStable(rest, func(i, j int) bool {
		if rest[i].Type != rest[j].Type {
			return rest[i].Type < rest[j].Type
		}
		return rest[i].Name < rest[j].Name
	})
	for i := range rest {
		f := &rest[i]
		var p string
		switch f.Type {
		case "deb":
			p = debPurl(f.Name, f.Version, f.Arch)
		case "pypi":
			p = purl(packageurl.TypePyPi, "", f.Name, f.Version, nil)
		case "conda":
			p = purl(packageurl.TypeConda, "", f.Name, f.Version, nil)
		}
		add(&spdx.Package{
			PackageName: f.Name, PackageVersion: f.Version,
			PackageLicenseDeclared:    declared(f),
			PackageExternalReferences: []*spdx.PackageExternalReference{purlRef(p)},
			PackageComment:            fmt.Sprintf("found in layer %d: %s", f.Layer, f.Path),
		}, f.Type)
	}
	doc.OtherLicenses = licenses.list
	return doc, nil
}

// purl writes a package URL the way the purl spec says (percent-encoded
// components, sorted qualifiers), e.g. version 1:2.3+dfsg-1 as
// 1:2.3%2Bdfsg-1 (the spec leaves ':' unencoded).
func purl(typ, namespace, name, version string, qualifiers map[string]string) string {
	var q packageurl.Qualifiers
	if len(qualifiers) > 0 {
		q = packageurl.QualifiersFromMap(qualifiers)
	}
	return packageurl.NewPackageURL(typ, namespace, name, version, q, "").ToString()
}

// licenseSet gathers the texts of the LicenseRef- ids that packages'
// expressions use, for hasExtractedLicensingInfos. Two packages may use
// the same id (LicenseRef-public-domain) with different texts: the later
// one is renamed (-2, -3, ...) in its expression so that each id has one
// text.
type licenseSet struct {
	text map[string]string
	list []*spdx.OtherLicense
}

func newLicenseSet() *licenseSet { return &licenseSet{text: map[string]string{}} }

// add records expr's LicenseRef texts and returns expr with any renamed ids.
func (s *licenseSet) add(expr string, texts map[string]string) string {
	ids := make([]string, 0, len(texts))
	for id := range texts {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		text, final := texts[id], id
		for n := 2; ; n++ {
			have, seen := s.text[final]
			if !seen {
				s.text[final] = text
				s.list = append(s.list, &spdx.OtherLicense{
					LicenseIdentifier: final, ExtractedText: text,
					LicenseName:    strings.TrimPrefix(id, "LicenseRef-"),
					LicenseComment: "from a Debian machine-readable copyright file",
				})
				break
			}
			if have == text {
				break
			}
			final = fmt.Sprintf("%s-%d", id, n)
		}
		if final != id {
			expr = regexp.MustCompile(`(^|[ (])`+regexp.QuoteMeta(id)+`($|[ )])`).ReplaceAllString(expr, "${1}"+final+"${2}")
		}
	}
	return expr
}

func purlRef(purl string) *spdx.PackageExternalReference {
	return &spdx.PackageExternalReference{Category: "PACKAGE-MANAGER", RefType: "purl", Locator: purl}
}
