package verify

// Lineage: verify a trained model against its signed training statement
// (https://mlenv.dev/training/v1): the statement is signed by a trusted
// key, names exactly the model's files (or manifest digest), the training
// image it names carries valid provenance and SBOM, the policy's lineage
// rules hold, and, with a serving image and a host, the serving side would
// reproduce the model's numerics.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sigstore/sigstore/pkg/signature/dsse"

	"github.com/mlenv/mlenv/attest"
	"github.com/mlenv/mlenv/diff"
	"github.com/mlenv/mlenv/fingerprint"
	"github.com/mlenv/mlenv/image"
	"github.com/mlenv/mlenv/internal/filedigest"
	"github.com/mlenv/mlenv/modelpack"
)

// GroupLineage is the check group of the lineage statement and the chain
// it names.
const GroupLineage = "lineage"

// LineagePolicy is the policy file's `lineage:` section.
type LineagePolicy struct {
	// AllowedDatasets: each dataset URI must equal one entry, or start
	// with an entry that ends in "*" ("s3://corp-data/*").
	AllowedDatasets []string `yaml:"allowedDatasets,omitempty" json:"allowedDatasets,omitempty"`
	// MaxAge bounds the run's age (its finishedOn).
	MaxAge Duration `yaml:"maxAge,omitempty" json:"maxAge,omitempty"`
	// RequiredMetrics must be keys of the recorded metrics file.
	RequiredMetrics []string `yaml:"requiredMetrics,omitempty" json:"requiredMetrics,omitempty"`
	// RequireCleanCode: the code must be a git checkout with no changes.
	RequireCleanCode bool `yaml:"requireCleanCode,omitempty" json:"requireCleanCode,omitempty"`
}

// ModelRequest is one model verification.
type ModelRequest struct {
	// Model: a local file or folder, or a registry reference to a
	// ModelPack artifact.
	Model string
	// BundlePath: the lineage bundle of a local model (default: beside
	// it, attest.BesideBundle).
	BundlePath string
	// TrainingImageBundle: read the training image's statements from this
	// mlenv bundle instead of its registry.
	TrainingImageBundle string
	// Serving, when set, is the serving image; with Host, the serving side
	// is compared with the training side.
	Serving       string
	ServingBundle string
	Host          *fingerprint.Fingerprint
}

// VerifyModel answers for one model. An error means it could not be
// checked at all (the caller denies, exit 2).
func (v *Verifier) VerifyModel(ctx context.Context, req ModelRequest) (*Result, error) {
	res := &Result{SchemaVersion: ResultSchemaVersion, Image: req.Model, Policy: v.policy.Name, Checks: []Check{}}
	opts := RemoteOptions(ctx, v.RemoteOptions...)
	local := attest.IsLocalModel(req.Model)

	var envs []attest.Envelope
	var modelDigest *name.Digest
	var err error
	bundle := req.BundlePath
	if local {
		if bundle == "" {
			bundle = attest.BesideBundle(req.Model)
		}
		envs, err = bundleEnvelopes(bundle)
		if err != nil {
			return nil, fmt.Errorf("reading the lineage bundle of %s: %w (record one with `mlenv attest --model`)", req.Model, err)
		}
	} else {
		ref, err := image.Parse(req.Model)
		if err != nil || ref.Kind != image.Registry || attest.LooksLikePath(req.Model) {
			return nil, fmt.Errorf("model %s: no such file or folder, and not a registry reference", req.Model)
		}
		r, err := image.Resolve(ctx, ref, image.Options{Remote: opts})
		if err != nil {
			return nil, err
		}
		if err := modelpack.CheckModel(r); err != nil {
			return nil, fmt.Errorf("model %s: %w", req.Model, err)
		}
		d, _ := r.DigestRef()
		modelDigest = &d
		res.Digest = d.DigestStr()
		envs, err = attest.ReadAttached(d, opts...)
		if err != nil {
			return nil, err
		}
	}

	st, statementCheck := v.lineageStatement(envs)
	res.Checks = append(res.Checks, statementCheck)
	if st == nil {
		res.Decision = Deny
		return res, nil
	}
	var pred attest.TrainingPredicate
	if err := json.Unmarshal(st.Predicate, &pred); err != nil || pred.SchemaVersion != attest.TrainingSchemaVersion {
		res.Checks = append(res.Checks, Check{Name: "lineage.content", Group: GroupLineage, Status: Fail,
			Expected: fmt.Sprintf("a version-%d training predicate", attest.TrainingSchemaVersion), Actual: "unreadable", Message: fmt.Sprint(err)})
		res.Decision = Deny
		return res, nil
	}
	res.Statements = append(res.Statements, &Statement{Kind: "lineage", PredicateType: attest.TrainingPredicateType, Predicate: st.Predicate, KeyID: st.key.ID, KeySource: st.key.Source, Origin: st.origin})

	if local {
		c, err := localSubjects(ctx, req.Model, bundle, st.subjects)
		if err != nil {
			return nil, err
		}
		res.Checks = append(res.Checks, c)
		res.Digest = "sha256:" + pred.Model.TreeSHA256
	} else {
		res.Checks = append(res.Checks, registrySubject(*modelDigest, st.subjects))
	}
	imageChecks, trainSBOM := v.trainingImageChecks(ctx, &pred, req.TrainingImageBundle)
	res.Checks = append(res.Checks, imageChecks...)
	var trainingHost *fingerprint.Fingerprint
	if pred.Host != nil {
		c := Check{Name: "lineage.host", Group: GroupLineage, Expected: "a fingerprint whose id matches its content"}
		switch {
		case pred.Host.Fingerprint == nil:
			c.Status, c.Actual = Fail, "no fingerprint"
		case pred.Host.Fingerprint.ComputeID() != pred.Host.ID || pred.Host.Fingerprint.ID != pred.Host.ID:
			c.Status, c.Actual, c.Message = Fail, pred.Host.ID, "the training host's id does not match its content (edited after capture?)"
		default:
			c.Status, c.Actual = Pass, pred.Host.ID
			trainingHost = pred.Host.Fingerprint
		}
		res.Checks = append(res.Checks, c)
	}
	res.Checks = append(res.Checks, v.lineagePolicyChecks(&pred)...)
	if req.Serving != "" {
		res.Checks = append(res.Checks, v.servingChecks(ctx, trainSBOM, trainingHost, req)...)
	}
	res.Decision = Allow
	if len(res.Failures()) > 0 {
		res.Decision = Deny
	}
	return res, nil
}

// verifiedLineage is the training statement that verified.
type verifiedLineage struct {
	Predicate json.RawMessage
	subjects  []attest.Subject
	key       Key
	origin    string
}

// lineageStatement finds the training statement signed by a trusted key.
// Every envelope is checked: DSSE signature over the exact payload, then
// the payload read.
func (v *Verifier) lineageStatement(envs []attest.Envelope) (*verifiedLineage, Check) {
	c := Check{Name: "lineage.statement", Group: GroupLineage, Expected: attest.TrainingPredicateType + " signed by a trusted key"}
	var reasons []string
	for _, e := range envs {
		h, err := attest.DecodeEnvelope(e.Raw)
		if err != nil {
			reasons = append(reasons, err.Error())
			continue
		}
		if h.PredicateType != attest.TrainingPredicateType {
			continue
		}
		var by *Key
		for i := range v.keys {
			if dsse.WrapVerifier(v.keys[i].Verifier).VerifySignature(bytes.NewReader(e.Raw), nil) == nil {
				by = &v.keys[i]
				break
			}
		}
		if by == nil {
			reasons = append(reasons, "signature does not verify with "+keyList(v.keys, "", nil))
			continue
		}
		if !knownStatementTypes[h.Type] {
			reasons = append(reasons, fmt.Sprintf("statement _type %q is not in-toto Statement v1", h.Type))
			continue
		}
		if len(h.Subject) == 0 {
			reasons = append(reasons, "the statement has no subjects")
			continue
		}
		c.Status, c.Actual, c.Message = Pass, "signed by "+by.Source, "from "+e.Origin
		return &verifiedLineage{Predicate: h.Predicate, subjects: h.Subject, key: *by, origin: e.Origin}, c
	}
	c.Status = Fail
	if len(reasons) == 0 {
		c.Actual, c.Message = "none", fmt.Sprintf("no lineage statement among the %d found: record one with `mlenv attest --model`", len(envs))
	} else {
		c.Actual, c.Message = "rejected", strings.Join(reasons, "; ")
	}
	return nil, c
}

// localSubjects re-hashes the model and compares it with the signed list:
// every file named with its digest, no file more, no file less.
func localSubjects(ctx context.Context, model, bundle string, subs []attest.Subject) (Check, error) {
	c := Check{Name: "lineage.subjects", Group: GroupLineage, Expected: fmt.Sprintf("the %d files the statement names, with their sha256", len(subs))}
	files, err := attest.ModelFiles(ctx, model, bundle, 0)
	if err != nil {
		return c, fmt.Errorf("reading model %s: %w", model, err)
	}
	problems := compareFiles(files, subs)
	if len(problems) == 0 {
		c.Status, c.Actual = Pass, fmt.Sprintf("%d files, every digest matches", len(files))
		return c, nil
	}
	c.Status, c.Actual, c.Message = Fail, fmt.Sprintf("%d difference(s)", len(problems)), strings.Join(problems, "; ")
	return c, nil
}

// compareFiles lists what differs between files on disk and a signed
// list: other digests, files not listed, listed files missing.
func compareFiles(files []filedigest.File, subs []attest.Subject) []string {
	want := map[string]string{}
	for _, s := range subs {
		want[s.Name] = s.Digest["sha256"]
	}
	var problems []string
	have := map[string]bool{}
	for _, f := range files {
		have[f.Name] = true
		w, ok := want[f.Name]
		switch {
		case !ok:
			problems = append(problems, f.Name+": not in the statement (unsigned file)")
		case w != f.SHA256:
			problems = append(problems, fmt.Sprintf("%s: sha256 %s, the statement says %s", f.Name, short(f.SHA256), short(w)))
		}
	}
	for _, s := range subs {
		if !have[s.Name] {
			problems = append(problems, s.Name+": missing")
		}
	}
	sort.Strings(problems)
	return problems
}

func registrySubject(d name.Digest, subs []attest.Subject) Check {
	c := Check{Name: "lineage.subjects", Group: GroupLineage, Expected: d.DigestStr()}
	var got []string
	for _, s := range subs {
		if "sha256:"+s.Digest["sha256"] == d.DigestStr() {
			c.Status, c.Actual = Pass, d.DigestStr()
			return c
		}
		got = append(got, "sha256:"+s.Digest["sha256"])
	}
	c.Status, c.Actual = Fail, strings.Join(got, ", ")
	c.Message = "the statement is about another model, not this manifest (copied from elsewhere?)"
	return c
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// trainingImageRef names the recorded training image by digest.
func trainingImageRef(p *attest.TrainingPredicate) (string, error) {
	if p.TrainingImage.Digest == "" || p.TrainingImage.Name == "" {
		return "", fmt.Errorf("the statement names no training image")
	}
	r, err := name.NewRepository(p.TrainingImage.Name)
	if err != nil {
		return "", fmt.Errorf("training image %q is not a registry repository, so its statements cannot be fetched: pass its bundle", p.TrainingImage.Name)
	}
	return r.Digest(p.TrainingImage.Digest).String(), nil
}

// trainingImageChecks verifies the training image the statement names
// with this verifier: its provenance and SBOM must be signed by a
// trusted key and be about that digest; the lock it records must be the
// one its provenance names. It also returns the training image's verified
// SBOM (nil when there is none), which the serving comparison reads.
func (v *Verifier) trainingImageChecks(ctx context.Context, p *attest.TrainingPredicate, bundle string) ([]Check, json.RawMessage) {
	c := Check{Name: "lineage.trainingImage", Group: GroupLineage, Expected: "provenance and SBOM signed by a trusted key"}
	ref, err := trainingImageRef(p)
	if err != nil {
		c.Status, c.Actual, c.Message = Fail, "not checked", err.Error()
		return []Check{c}, nil
	}
	sub, err := v.Verify(ctx, Request{Image: ref, BundlePath: bundle})
	if err != nil {
		c.Status, c.Actual, c.Message = Fail, "not checked", "could not read the training image "+ref+": "+err.Error()
		return []Check{c}, nil
	}
	sbom := statementOf(sub, KindSBOM)
	var missing []string
	var prov *Statement
	for _, k := range []string{KindProvenance, KindSBOM} {
		var s *Statement
		for _, x := range sub.Statements {
			if x.Kind == k {
				s = x
			}
		}
		if s == nil {
			why := ""
			for _, ch := range sub.Checks {
				if ch.Name == "statement."+k {
					why = ch.Message
				}
			}
			missing = append(missing, k+" ("+orNone(why)+")")
		}
		if k == KindProvenance {
			prov = s
		}
	}
	out := []Check{}
	if len(missing) > 0 {
		c.Status, c.Actual, c.Message = Fail, "missing or invalid: "+strings.Join(missing, ", "), ref
		return append(out, c), sbom
	}
	c.Status, c.Actual, c.Message = Pass, "provenance and SBOM verified", ref
	out = append(out, c)
	if p.TrainingImage.LockDigest != "" && prov != nil {
		// An unreadable predicate records no lock: the check fails with "none".
		var got string
		if pv, err := attest.ReadProvenance(prov.Predicate); err == nil {
			got = pv.LockDigest()
		}
		st := Pass
		if got != p.TrainingImage.LockDigest {
			st = Fail
		}
		out = append(out, Check{Name: "lineage.trainingImage.lock", Group: GroupLineage, Status: st, Expected: p.TrainingImage.LockDigest, Actual: orNone(got),
			Message: "the lock the lineage statement records vs the one the image's provenance names"})
	}
	return out, sbom
}

func (v *Verifier) lineagePolicyChecks(p *attest.TrainingPredicate) []Check {
	lp := v.policy.Lineage
	var out []Check
	add := func(name string, ok bool, exp, act, msg string) {
		out = append(out, policyCheck(name, ok, exp, act, msg))
	}
	if len(lp.AllowedDatasets) > 0 {
		exp := "one of " + strings.Join(lp.AllowedDatasets, ", ")
		if len(p.Datasets) == 0 {
			add("policy.lineage.datasets", false, exp, "none", "the statement records no dataset")
		}
		for _, d := range p.Datasets {
			add("policy.lineage.datasets."+d.URI, datasetAllowed(d.URI, lp.AllowedDatasets), exp, d.URI, "dataset "+d.URI+" (tree "+short(d.TreeSHA256)+")")
		}
	}
	if lp.MaxAge > 0 {
		exp := "at most " + time.Duration(lp.MaxAge).String() + " old"
		if p.FinishedOn == nil {
			add("policy.lineage.maxAge", false, exp, "unknown", "the statement has no finishedOn")
		} else {
			age := v.Now().Sub(*p.FinishedOn)
			add("policy.lineage.maxAge", age <= time.Duration(lp.MaxAge), exp, age.Round(time.Second).String()+" old", "since finishedOn "+p.FinishedOn.Format(time.RFC3339))
		}
	}
	for _, m := range lp.RequiredMetrics {
		ok := false
		if p.Metrics != nil {
			_, ok = p.Metrics.Values[m]
		}
		add("policy.lineage.metrics."+m, ok, "metric "+m+" recorded", map[bool]string{true: "present", false: "absent"}[ok], "")
	}
	if lp.RequireCleanCode {
		ok := p.Code != nil && p.Code.Git != nil && p.Code.Git.Dirty != nil && !*p.Code.Git.Dirty
		act := "no git checkout recorded"
		if p.Code != nil && p.Code.Git != nil {
			act = "commit " + orNone(p.Code.Git.Commit)
			if p.Code.Git.Dirty == nil {
				act += ", dirty unknown: " + p.Code.Git.DirtyUnknown
			} else if *p.Code.Git.Dirty {
				act += ", with uncommitted changes"
			}
		}
		add("policy.lineage.cleanCode", ok, "a git commit with no uncommitted changes", act, "")
	}
	return out
}

func datasetAllowed(uri string, allow []string) bool {
	for _, a := range allow {
		if prefix, ok := strings.CutSuffix(a, "*"); ok && strings.HasPrefix(uri, prefix) {
			return true
		}
		if a == uri {
			return true
		}
	}
	return false
}

// servingChecks verifies the serving image (its statements, and with a
// host "will it run") and compares it with the training side: numerics
// packages and CUDA runtime in the two SBOMs (trainSBOM: the training
// image's verified one, nil when none), and the training host with this
// host.
func (v *Verifier) servingChecks(ctx context.Context, trainSBOM json.RawMessage, trainingHost *fingerprint.Fingerprint, req ModelRequest) []Check {
	var out []Check
	serving, err := v.Verify(ctx, Request{Image: req.Serving, BundlePath: req.ServingBundle, Host: req.Host})
	if err != nil {
		return []Check{{Name: "serving", Group: GroupLineage, Status: Fail, Actual: "not checked", Message: "could not check the serving image " + req.Serving + ": " + err.Error()}}
	}
	for _, c := range serving.Checks {
		if c.Group == GroupReproduce {
			continue // the serving image's own training host is not this model's
		}
		c.Name = "serving." + c.Name
		out = append(out, c)
	}
	bad := modeStatus(v.policy.Runtime.WillReproduce)
	serveSBOM := statementOf(serving, KindSBOM)
	if trainSBOM == nil || serveSBOM == nil {
		out = append(out, Check{Name: "reproduce.packages", Group: GroupReproduce, Status: bad, Expected: "both images' SBOMs", Actual: "missing",
			Message: "the framework and CUDA versions cannot be compared without a verified SBOM of each image"})
	} else {
		out = append(out, comparePackages(trainSBOM, serveSBOM, bad)...)
	}
	if req.Host != nil {
		if v.policy.Runtime.WillReproduce != Off {
			out = append(out, willItReproduce(trainingHost, req.Host, v.policy)...)
		}
	}
	return out
}

func statementOf(r *Result, kind string) json.RawMessage {
	for _, s := range r.Statements {
		if s.Kind == kind {
			return s.Predicate
		}
	}
	return nil
}

// comparePackages: the packages that decide numerics (frameworks, math
// libraries, CUDA libraries) and the CUDA runtime, training vs serving.
func comparePackages(train, serve json.RawMessage, bad Status) []Check {
	var out []Check
	pa, errA := diff.SBOMPackages(train)
	pb, errB := diff.SBOMPackages(serve)
	if errA != nil || errB != nil {
		return []Check{{Name: "reproduce.packages", Group: GroupReproduce, Status: bad, Message: fmt.Sprint("unreadable SBOM: ", errA, errB)}}
	}
	fs := diff.Filter(diff.Packages(pa, pb), func(f diff.Finding) bool { return diff.NumericsPackage(f.Key) })
	for _, f := range fs {
		out = append(out, Check{Name: "reproduce.packages." + f.Key, Group: GroupReproduce, Status: bad, Expected: orNone(f.A), Actual: orNone(f.B),
			Message: "training image vs serving image: another version of a package that computes the model's numbers"})
	}
	ga, _ := gpuCodeFromSBOM(train)
	gb, _ := gpuCodeFromSBOM(serve)
	var ra, rb string
	if ga != nil {
		if r, ok := newestRuntime(ga.CUDARuntime); ok {
			ra = r.Version
		}
	}
	if gb != nil {
		if r, ok := newestRuntime(gb.CUDARuntime); ok {
			rb = r.Version
		}
	}
	if ra != rb {
		out = append(out, Check{Name: "reproduce.cudaRuntime", Group: GroupReproduce, Status: bad, Expected: orNone(ra), Actual: orNone(rb),
			Message: "another CUDA runtime in the serving image than in the training image: other kernels, other results"})
	}
	if len(out) == 0 {
		out = append(out, Check{Name: "reproduce.packages", Group: GroupReproduce, Status: Pass, Expected: "same framework, math and CUDA packages as training",
			Actual: "same", Message: "CUDA runtime " + orNone(ra)})
	}
	return out
}
