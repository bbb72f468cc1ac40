package diff

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// SchemaVersion is the version of Result's JSON form (`mlenv diff
// --output json`), documented in the README and diff/schema.json.
const SchemaVersion = 1

// Options selects what Compare does.
type Options struct {
	// Files compares images path by path (added, removed, changed size,
	// mode, owner, link target, content digest).
	Files bool
	// Sections, when not empty, limits the comparison to these sections
	// (--only); Ignore drops sections (--ignore). Unknown names are an
	// error.
	Sections []string
	Ignore   []string
}

// Side names one input in a Result.
type Side struct {
	Source string `json:"source"`
	Kind   string `json:"kind"`
	Digest string `json:"digest,omitempty"`
}

// Result is a whole comparison. Its JSON form is stable.
type Result struct {
	SchemaVersion int    `json:"schemaVersion"`
	A             Side   `json:"a"`
	B             Side   `json:"b"`
	Same          bool   `json:"same"`
	Summary       string `json:"summary"`
	// Compared lists the sections both inputs could speak to.
	Compared []string `json:"compared"`
	// Counts is the number of findings per section (sections without
	// findings are left out).
	Counts   map[string]int `json:"counts"`
	Findings []Finding      `json:"findings"`
}

// CheckSections validates section names given by a user.
func CheckSections(names []string) error {
	for _, n := range names {
		ok := false
		for _, s := range Sections {
			ok = ok || s == n
		}
		if !ok {
			return fmt.Errorf("unknown section %q: sections are %s", n, strings.Join(Sections, ", "))
		}
	}
	return nil
}

func (o Options) wants(section string) bool {
	for _, s := range o.Ignore {
		if s == section {
			return false
		}
	}
	if len(o.Sections) == 0 {
		return section != SectionFiles || o.Files
	}
	for _, s := range o.Sections {
		if s == section {
			return true // --only files implies --files
		}
	}
	return false
}

// Compare says what differs between two loaded inputs. Mixed kinds compare
// what they share: a lock and an image their packages, base and config;
// an image's or bundle's fingerprint and a host fingerprint their hosts.
func Compare(a, b *Description, o Options) (*Result, error) {
	if err := CheckSections(append(append([]string(nil), o.Sections...), o.Ignore...)); err != nil {
		return nil, err
	}
	r := &Result{SchemaVersion: SchemaVersion, Counts: map[string]int{}, Findings: []Finding{}, Compared: []string{},
		A: Side{a.Source, a.Kind, a.Digest}, B: Side{b.Source, b.Kind, b.Digest}}
	compared := map[string]bool{}
	add := func(section string, fs []Finding) {
		compared[section] = true
		r.Findings = append(r.Findings, fs...)
	}
	sameImage := a.Digest != "" && a.Digest == b.Digest && a.Kind == KindImage && b.Kind == KindImage

	if o.wants(SectionBase) && (a.BaseRef != "" || a.BaseDigest != "") && (b.BaseRef != "" || b.BaseDigest != "") {
		var fs []Finding
		fs = appendChange(fs, SectionBase, "ref", a.BaseRef, b.BaseRef, "")
		fs = appendChange(fs, SectionBase, "digest", a.BaseDigest, b.BaseDigest, "")
		add(SectionBase, fs)
	}

	// Images are walked once for packages and files together; paths are
	// the walk's candidate paths, listed once for both.
	var st *stacks
	var paths []string
	if !sameImage && (o.wants(SectionPackages) || o.wants(SectionFiles)) {
		ia, ib := a.Image(), b.Image()
		var err error
		switch {
		case ia != nil && ib != nil:
			st, err = walkImages(ia, ib, o.wants(SectionFiles))
		case ia != nil && b.Packages != nil && o.wants(SectionPackages):
			st, err = walkImages(ia, nil, false)
		case ib != nil && a.Packages != nil && o.wants(SectionPackages):
			st, err = walkImages(ib, nil, false)
			if st != nil {
				st.a, st.b = st.b, st.a
			}
		}
		if err != nil {
			return nil, err
		}
		if st != nil {
			paths = st.candidates()
		}
	}

	if o.wants(SectionPackages) {
		pa, pb := a.Packages, b.Packages
		if st != nil {
			if a.Image() != nil {
				pa = st.packages(st.a, paths)
			}
			if b.Image() != nil {
				pb = st.packages(st.b, paths)
			}
		}
		if sameImage {
			pa, pb = []Package{}, []Package{}
		}
		if pa != nil && pb != nil {
			add(SectionPackages, Packages(pa, pb))
		}
	}

	if o.wants(SectionConfig) && a.Config != nil && b.Config != nil {
		fs := configs(a.Config, b.Config)
		if (a.Kind == KindLock) == (b.Kind == KindLock) {
			// Two images (or two locks) from different locks always differ
			// in the lock digest label: the other sections say how. It
			// only speaks when a lock meets an image: built from it or not.
			fs = Filter(fs, func(f Finding) bool { return f.Key != "labels."+labelLockDigest })
		}
		add(SectionConfig, fs)
	}

	// Statements (a bundle, an image's attached statements) carry the lock
	// digest in their provenance and have no config: compared here. Two
	// configs compare it as the label above.
	if o.wants(SectionConfig) && a.LockDigest != "" && b.LockDigest != "" && (a.Config == nil || b.Config == nil) {
		add(SectionConfig, appendChange(nil, SectionConfig, "lock.digest", a.LockDigest, b.LockDigest, "the mlenv.lock each was built from"))
	}

	if o.wants(SectionLayers) && a.Image() != nil && b.Image() != nil {
		la, err := a.Layers()
		if err != nil {
			return nil, err
		}
		lb, err := b.Layers()
		if err != nil {
			return nil, err
		}
		add(SectionLayers, layers(la, lb))
	}

	if o.wants(SectionFiles) {
		switch {
		case a.Image() != nil && b.Image() != nil:
			var fs []Finding
			if st != nil {
				fs = files(st, paths)
			}
			add(SectionFiles, fs)
		case a.LockFiles != nil && b.LockFiles != nil:
			var fs []Finding
			for _, k := range union(keys(a.LockFiles), keys(b.LockFiles)) {
				fs = appendChange(fs, SectionFiles, k, treeText(a.LockFiles[k]), treeText(b.LockFiles[k]), "file set")
			}
			add(SectionFiles, fs)
		}
	}

	if o.wants(SectionHost) && a.Host != nil && b.Host != nil {
		add(SectionHost, Hosts(a.Host, b.Host))
	}
	if a.Training != nil && b.Training != nil {
		if o.wants(SectionDatasets) {
			add(SectionDatasets, Datasets(a.Training.Datasets, b.Training.Datasets))
		}
		if o.wants(SectionRun) {
			add(SectionRun, Runs(a.Training, b.Training))
		}
	}

	for _, s := range Sections {
		if compared[s] {
			r.Compared = append(r.Compared, s)
		}
	}
	if len(r.Compared) == 0 {
		return nil, fmt.Errorf("nothing to compare: %s (%s) and %s (%s) share no section (with the sections chosen); a %s and a %s can be compared only where both say something",
			a.Source, a.Kind, b.Source, b.Kind, a.Kind, b.Kind)
	}
	for _, f := range r.Findings {
		r.Counts[f.Section]++
	}
	r.Same = len(r.Findings) == 0
	r.Summary = summary(r)
	return r, nil
}

func treeText(h string) string {
	if h == "" {
		return ""
	}
	return "tree-sha256:" + h
}

func summary(r *Result) string {
	if r.Same {
		return fmt.Sprintf("same: no differences in %s", strings.Join(r.Compared, ", "))
	}
	var parts []string
	for _, s := range Sections {
		if n := r.Counts[s]; n > 0 {
			parts = append(parts, plural(n, s))
		}
	}
	return "different: " + strings.Join(parts, ", ")
}

func plural(n int, section string) string {
	noun := map[string][2]string{
		SectionBase: {"base image field", "base image fields"}, SectionPackages: {"package", "packages"},
		SectionConfig: {"config field", "config fields"}, SectionLayers: {"layer", "layers"},
		SectionFiles: {"file", "files"}, SectionHost: {"host field", "host fields"},
	}[section]
	if n == 1 {
		return "1 " + noun[0]
	}
	return strconv.Itoa(n) + " " + noun[1]
}

// appendChange appends a finding when a and b differ ("" is absent).
func appendChange(fs []Finding, section, key, a, b, detail string) []Finding {
	if a == b {
		return fs
	}
	kind := Changed
	switch {
	case a == "":
		kind = Added
	case b == "":
		kind = Removed
	}
	return append(fs, Finding{Section: section, Key: key, Kind: kind, A: a, B: b, Detail: detail})
}

// appendConsequence is appendChange for a difference whose meaning is
// known: the finding carries its consequence and group.
func appendConsequence(fs []Finding, section, key, a, b, consequence string, g Group) []Finding {
	n := len(fs)
	fs = appendChange(fs, section, key, a, b, "")
	if len(fs) > n {
		fs[n].Consequence, fs[n].Group = consequence, g
	}
	return fs
}

// Packages compares two package lists by ecosystem and name: added,
// removed, version changed, and same version with another hash (a rebuilt
// wheel), the last only when both hashes are of the same kind.
func Packages(a, b []Package) []Finding {
	index := func(ps []Package) map[string]Package {
		m := map[string]Package{}
		for _, p := range ps {
			k := p.Ecosystem + "/" + p.Name
			if old, ok := m[k]; ok && old.Version != p.Version {
				p.Version = old.Version + ", " + p.Version
			}
			m[k] = p
		}
		return m
	}
	ma, mb := index(a), index(b)
	var fs []Finding
	for _, k := range union(keys(ma), keys(mb)) {
		pa, inA := ma[k]
		pb, inB := mb[k]
		switch {
		case inA && !inB:
			fs = append(fs, Finding{Section: SectionPackages, Key: k, Kind: Removed, A: pa.Version})
		case inB && !inA:
			fs = append(fs, Finding{Section: SectionPackages, Key: k, Kind: Added, B: pb.Version})
		case pa.Version != pb.Version:
			fs = append(fs, Finding{Section: SectionPackages, Key: k, Kind: Changed, A: pa.Version, B: pb.Version, Detail: "version"})
		case pa.HashKind == pb.HashKind && pa.Hash != "" && pb.Hash != "" && pa.Hash != pb.Hash:
			fs = append(fs, Finding{Section: SectionPackages, Key: k, Kind: Changed, A: pa.Version + " " + shortHash(pa.Hash), B: pb.Version + " " + shortHash(pb.Hash),
				Detail:      "same version, other " + pa.HashKind + " hash",
				Consequence: "a rebuilt package: same version, other content; results may differ", Group: GroupReproduce})
		}
	}
	sort.SliceStable(fs, func(i, j int) bool { return ecoRank(fs[i].Key) < ecoRank(fs[j].Key) })
	return fs
}

func ecoRank(key string) int {
	switch {
	case strings.HasPrefix(key, EcoPython+"/"):
		return 0
	case strings.HasPrefix(key, EcoDeb+"/"):
		return 1
	}
	return 2
}

func shortHash(h string) string {
	h = strings.TrimPrefix(h, "sha256:")
	if len(h) > 12 {
		h = h[:12]
	}
	return "sha256:" + h
}

func configs(a, b *Config) []Finding {
	var fs []Finding
	for _, k := range union(keys(a.Env), keys(b.Env)) {
		va, okA := a.Env[k]
		vb, okB := b.Env[k]
		switch {
		case okA && !okB:
			fs = append(fs, Finding{Section: SectionConfig, Key: "env." + k, Kind: Removed, A: va})
		case okB && !okA:
			fs = append(fs, Finding{Section: SectionConfig, Key: "env." + k, Kind: Added, B: vb})
		case va != vb:
			fs = append(fs, Finding{Section: SectionConfig, Key: "env." + k, Kind: Changed, A: va, B: vb})
		}
	}
	fs = appendChange(fs, SectionConfig, "entrypoint", argv(a.Entrypoint), argv(b.Entrypoint), "")
	fs = appendChange(fs, SectionConfig, "cmd", argv(a.Cmd), argv(b.Cmd), "")
	fs = appendChange(fs, SectionConfig, "workdir", a.Workdir, b.Workdir, "")
	fs = appendChange(fs, SectionConfig, "user", a.User, b.User, "")
	for _, k := range union(keys(a.Labels), keys(b.Labels)) {
		fs = appendChange(fs, SectionConfig, "labels."+k, a.Labels[k], b.Labels[k], "")
	}
	return fs
}

func argv(s []string) string {
	if len(s) == 0 {
		return ""
	}
	q := make([]string, len(s))
	for i, a := range s {
		q[i] = strconv.Quote(a)
	}
	return "[" + strings.Join(q, " ") + "]"
}

func layers(a, b []Layer) []Finding {
	var fs []Finding
	text := func(l Layer) string {
		return fmt.Sprintf("%s (%s)", shortHash(l.Digest), humanSize(l.Size))
	}
	for i := 0; i < max(len(a), len(b)); i++ {
		key := fmt.Sprintf("layer %d", i)
		switch {
		case i >= len(a):
			fs = append(fs, Finding{Section: SectionLayers, Key: key, Kind: Added, B: text(b[i]), Detail: b[i].CreatedBy})
		case i >= len(b):
			fs = append(fs, Finding{Section: SectionLayers, Key: key, Kind: Removed, A: text(a[i]), Detail: a[i].CreatedBy})
		case a[i].Digest != b[i].Digest:
			fs = append(fs, Finding{Section: SectionLayers, Key: key, Kind: Changed, A: text(a[i]), B: text(b[i]), Detail: firstNonEmpty(b[i].CreatedBy, a[i].CreatedBy)})
		}
	}
	return fs
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// files compares the final state of every path the unshared layers touch
// (s.candidates()).
func files(s *stacks, paths []string) []Finding {
	var fs []Finding
	for _, p := range paths {
		ea, eb := s.final(s.a, p), s.final(s.b, p)
		key := "/" + p
		switch {
		case ea == nil && eb == nil:
		case ea == nil:
			fs = append(fs, Finding{Section: SectionFiles, Key: key, Kind: Added, B: entryText(eb)})
		case eb == nil:
			fs = append(fs, Finding{Section: SectionFiles, Key: key, Kind: Removed, A: entryText(ea)})
		default:
			if d := entryDiff(ea, eb); d != "" {
				fs = append(fs, Finding{Section: SectionFiles, Key: key, Kind: Changed, A: entryText(ea), B: entryText(eb), Detail: d})
			}
		}
	}
	return fs
}

var typeNames = map[byte]string{'0': "file", '1': "hardlink", '2': "symlink", '3': "chardev", '4': "blockdev", '5': "dir", '6': "fifo"}

func entryText(e *entry) string {
	t := typeNames[e.typ]
	if t == "" {
		t = "type " + string(e.typ)
	}
	s := fmt.Sprintf("%s %04o %d:%d", t, e.mode, e.uid, e.gid)
	if e.typ == '0' {
		s += " " + humanSize(e.size)
		if e.digest != "" {
			s += " " + shortHash(e.digest)
		}
	}
	if e.link != "" {
		s += " -> " + e.link
	}
	return s
}

// entryDiff names the attributes that differ ("" when none).
func entryDiff(a, b *entry) string {
	var d []string
	if a.typ != b.typ {
		d = append(d, "type")
	}
	if a.size != b.size {
		d = append(d, "size")
	}
	if a.mode != b.mode {
		d = append(d, "mode")
	}
	if a.uid != b.uid || a.gid != b.gid {
		d = append(d, "owner")
	}
	if a.link != b.link {
		d = append(d, "link target")
	}
	if a.digest != b.digest {
		d = append(d, "content")
	}
	return strings.Join(d, ", ")
}
