package diff

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/mlenv/mlenv/attest"
)

// SBOMPackages reads the packages of an SPDX document the way diff
// compares them (verify's lineage check compares a training and a
// serving image's SBOMs with it).
func SBOMPackages(doc json.RawMessage) ([]Package, error) { return sbomPackages(doc) }

// numericsPrefixes are the packages that compute a model's numbers:
// frameworks, their kernels and math libraries, CUDA libraries. A change
// in any of them can change results; other packages (web servers, CLI
// tools) do not.
var numericsPrefixes = []string{
	EcoPython + "/torch", EcoPython + "/jax", EcoPython + "/tensorflow", EcoPython + "/numpy", EcoPython + "/scipy",
	EcoPython + "/triton", EcoPython + "/onnxruntime", EcoPython + "/nvidia-", EcoPython + "/xformers", EcoPython + "/flash-attn",
	EcoPython + "/mkl", EcoPython + "/intel-openmp", EcoPython + "/cupy",
	EcoDeb + "/libcudnn", EcoDeb + "/libcublas", EcoDeb + "/libnccl", EcoDeb + "/cuda-", EcoDeb + "/libcufft", EcoDeb + "/libcurand",
	EcoDeb + "/libcusolver", EcoDeb + "/libcusparse", EcoDeb + "/libopenblas", EcoDeb + "/libblas", EcoDeb + "/liblapack", EcoDeb + "/libmkl",
}

// NumericsPackage says whether a package key ("python/torch") names a
// package that computes a model's numbers.
func NumericsPackage(key string) bool {
	for _, p := range numericsPrefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// loadModelLineage: a local model (file or folder) with its lineage
// bundle beside it (attest.BesideBundle) is described by that bundle.
func loadModelLineage(arg string) (*Description, bool, error) {
	if strings.HasSuffix(arg, attest.BundleSuffix) || !attest.IsLocalModel(arg) {
		return nil, false, nil
	}
	bundle := attest.BesideBundle(arg)
	fi, err := os.Stat(bundle)
	if err != nil {
		return nil, false, nil
	}
	if fi.Size() > maxInputFile {
		return nil, true, fmt.Errorf("%s: %d bytes, over the %d-byte limit for a bundle", bundle, fi.Size(), maxInputFile)
	}
	b, err := os.ReadFile(bundle)
	if err != nil {
		return nil, true, err
	}
	d, err := Parse(bundle, b)
	if err == nil && d.Training == nil {
		err = fmt.Errorf("%s holds no lineage statement", bundle)
	}
	return d, true, err
}

func loadTraining(d *Description, pred json.RawMessage) error {
	var p attest.TrainingPredicate
	if err := json.Unmarshal(pred, &p); err != nil {
		return fmt.Errorf("unreadable training predicate: %w", err)
	}
	if p.SchemaVersion != attest.TrainingSchemaVersion {
		return fmt.Errorf("training predicate schemaVersion %d, this mlenv reads %d", p.SchemaVersion, attest.TrainingSchemaVersion)
	}
	d.Training = &p
	if p.Host != nil && p.Host.Fingerprint != nil {
		d.Host = p.Host.Fingerprint
	}
	return nil
}

// Datasets compares two runs' datasets by URI: added, removed, other
// content; where both list their files, file by file.
func Datasets(a, b []attest.Dataset) []Finding {
	index := func(ds []attest.Dataset) map[string]attest.Dataset {
		m := map[string]attest.Dataset{}
		for _, d := range ds {
			m[d.URI] = d
		}
		return m
	}
	ma, mb := index(a), index(b)
	var fs []Finding
	const why = "other training data: the model is not the same model"
	for _, uri := range union(keys(ma), keys(mb)) {
		da, inA := ma[uri]
		db, inB := mb[uri]
		switch {
		case !inB:
			fs = append(fs, Finding{Section: SectionDatasets, Key: uri, Kind: Removed, A: treeText(da.TreeSHA256), Consequence: why, Group: GroupReproduce})
		case !inA:
			fs = append(fs, Finding{Section: SectionDatasets, Key: uri, Kind: Added, B: treeText(db.TreeSHA256), Consequence: why, Group: GroupReproduce})
		case da.TreeSHA256 == db.TreeSHA256:
		case da.Files != nil && db.Files != nil:
			fa, fb := map[string]string{}, map[string]string{}
			for _, f := range da.Files {
				fa[f.Name] = f.SHA256
			}
			for _, f := range db.Files {
				fb[f.Name] = f.SHA256
			}
			for _, n := range union(keys(fa), keys(fb)) {
				fs = appendConsequence(fs, SectionDatasets, uri+"/"+n, shaText(fa[n]), shaText(fb[n]), why, GroupReproduce)
			}
		default:
			fs = append(fs, Finding{Section: SectionDatasets, Key: uri, Kind: Changed, A: treeText(da.TreeSHA256), B: treeText(db.TreeSHA256),
				Detail: "other content (file lists not recorded)", Consequence: why, Group: GroupReproduce})
		}
	}
	return fs
}

func shaText(h string) string {
	if h == "" {
		return ""
	}
	return "sha256:" + h
}

// Runs compares what else made two models: config values key by key,
// seeds, code, command, training image and lock.
func Runs(a, b *attest.TrainingPredicate) []Finding {
	var fs []Finding
	change := func(key, va, vb, consequence string, g Group) {
		fs = appendConsequence(fs, SectionRun, key, va, vb, consequence, g)
	}
	// Configs by file name; parsed ones key by key.
	ca, cb := map[string]attest.ConfigFile{}, map[string]attest.ConfigFile{}
	for _, c := range a.Configs {
		ca[c.Name] = c
	}
	for _, c := range b.Configs {
		cb[c.Name] = c
	}
	for _, n := range union(keys(ca), keys(cb)) {
		x, inA := ca[n]
		y, inB := cb[n]
		switch {
		case !inA || !inB:
			change("config/"+n, shaText(x.SHA256), shaText(y.SHA256), "another configuration file", GroupReproduce)
		case x.SHA256 == y.SHA256:
		case x.Content != nil && y.Content != nil:
			fa, fb := map[string]string{}, map[string]string{}
			flatten("", x.Content, fa)
			flatten("", y.Content, fb)
			for _, k := range union(keys(fa), keys(fb)) {
				change("config/"+n+":"+k, fa[k], fb[k], "another training configuration value", GroupReproduce)
			}
		default:
			change("config/"+n, shaText(x.SHA256), shaText(y.SHA256), "another configuration file (too large or not JSON/YAML: compared by digest)", GroupReproduce)
		}
	}
	sa, sb := a.Seeds, b.Seeds
	for _, k := range union(keys(sa), keys(sb)) {
		change("seed."+k, sa[k], sb[k], "another random seed: other initialisation and data order", GroupReproduce)
	}
	codeTree := func(c *attest.Code) (tree, commit, dirty string) {
		if c == nil {
			return
		}
		tree = treeText(c.TreeSHA256)
		if c.Git != nil {
			commit = c.Git.Commit
			if c.Git.Dirty != nil {
				dirty = strconv.FormatBool(*c.Git.Dirty)
			}
		}
		return
	}
	ta, ga, da := codeTree(a.Code)
	tb, gb, db := codeTree(b.Code)
	change("code.tree", ta, tb, "other training code", GroupReproduce)
	change("code.git.commit", ga, gb, "", GroupInfo)
	change("code.git.dirty", da, db, "", GroupInfo)
	change("command", argv(a.Command), argv(b.Command), "another command line", GroupReproduce)
	change("trainingImage.digest", a.TrainingImage.Digest, b.TrainingImage.Digest, "another training image: compare the two images with `mlenv diff` for the packages", GroupReproduce)
	change("trainingImage.lockDigest", a.TrainingImage.LockDigest, b.TrainingImage.LockDigest, "built from another lock", GroupReproduce)
	return fs
}

// flatten turns a parsed JSON/YAML value into dotted keys ("optimizer.
// betas[1]") and canonical JSON values, so one changed value is one
// finding.
func flatten(prefix string, v any, out map[string]string) {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 {
			out[prefix] = "{}"
		}
		for k, e := range x {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			flatten(p, e, out)
		}
	case []any:
		if len(x) == 0 {
			out[prefix] = "[]"
		}
		for i, e := range x {
			flatten(fmt.Sprintf("%s[%d]", prefix, i), e, out)
		}
	default:
		b, _ := json.Marshal(x)
		out[prefix] = string(b)
	}
}
