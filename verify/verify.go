// Package verify decides at deploy time whether an image may run: its
// signed statements (provenance, SBOM, training fingerprint) verified
// with cosign's own functions against trusted keys, a policy (built-in or
// YAML, with CEL rules), and, with a host fingerprint, "will it run" and
// "will it reproduce" on that host. It fails closed: anything it cannot
// check is an error, never an allow. It never writes to the terminal.
package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/mlenv/mlenv/attest"
	"github.com/mlenv/mlenv/fingerprint"
	"github.com/mlenv/mlenv/image"
	"github.com/mlenv/mlenv/internal/netx"
)

// ResultSchemaVersion versions the JSON of Result (README, "mlenv verify
// --output json").
const ResultSchemaVersion = 1

// Status of one check.
type Status string

const (
	Pass       Status = "PASS"
	WarnStatus Status = "WARN"
	Fail       Status = "FAIL"
)

// Check is one line of the verdict.
type Check struct {
	// Name is stable: statement.provenance, policy.lockDigest,
	// run.gpu.driver, reproduce.cpu.numericsFeatures.AVX512F, rule.<name>.
	Name string `json:"name"`
	// Group: statements, policy, rules, will-it-run, will-it-reproduce.
	Group    string `json:"group"`
	Status   Status `json:"status"`
	Expected string `json:"expected,omitempty"`
	Actual   string `json:"actual,omitempty"`
	Message  string `json:"message,omitempty"`
}

// Decision is the overall answer.
type Decision string

const (
	Allow Decision = "allow"
	Deny  Decision = "deny"
	// Error: could not check (exit 2); never an allow.
	Error Decision = "error"
)

// Result is the verdict for one image.
type Result struct {
	SchemaVersion int          `json:"schemaVersion"`
	Image         string       `json:"image"`
	Digest        string       `json:"digest,omitempty"`
	Policy        string       `json:"policy"`
	Decision      Decision     `json:"decision"`
	Checks        []Check      `json:"checks"`
	Statements    []*Statement `json:"statements,omitempty"`
	Error         string       `json:"error,omitempty"`
}

// Allowed is true only for an allow decision.
func (r *Result) Allowed() bool { return r.Decision == Allow }

// Failures are the checks that deny; Warnings those that warn.
func (r *Result) Failures() []Check { return r.filter(Fail) }

// Warnings are the checks that warn.
func (r *Result) Warnings() []Check { return r.filter(WarnStatus) }

func (r *Result) filter(s Status) []Check {
	var out []Check
	for _, c := range r.Checks {
		if c.Status == s {
			out = append(out, c)
		}
	}
	return out
}

// Verifier holds the trusted keys and the policy; it is safe for
// concurrent use (the webhook shares one).
type Verifier struct {
	keys   []Key
	pinned map[string][]Key
	policy *Policy
	rules  []compiledRule
	// transport is shared by every registry call of this verifier, so
	// that connections (and TLS sessions) to a registry are reused across
	// verifications and webhook requests instead of a new transport, and
	// a new connection, each time.
	transport http.RoundTripper
	// RemoteOptions are added to every registry call (tests: transports).
	RemoteOptions []remote.Option
	// Now is the clock for maxAge (default time.Now).
	Now func() time.Time
}

// NewVerifier prepares keys and policy (pinned keys loaded, CEL compiled).
func NewVerifier(keys []Key, p *Policy) (*Verifier, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("no trusted public key")
	}
	pinned, err := p.pinnedKeys()
	if err != nil {
		return nil, err
	}
	rules, err := compileRules(p.Rules)
	if err != nil {
		return nil, err
	}
	return &Verifier{keys: keys, pinned: pinned, policy: p, rules: rules, Now: time.Now, transport: netx.Transport(netx.Timeouts{})}, nil
}

// RemoteOptionsFor is the registry options of one call: the image
// package's (keychain, ctx), this verifier's shared bounded transport,
// then v.RemoteOptions (tests may replace the transport).
func (v *Verifier) RemoteOptionsFor(ctx context.Context) []remote.Option {
	return RemoteOptions(ctx, append([]remote.Option{remote.WithTransport(v.transport)}, v.RemoteOptions...)...)
}

// Policy is the verifier's policy.
func (v *Verifier) Policy() *Policy { return v.policy }

// Request is one verification.
type Request struct {
	// Image: a registry reference, oci:DIR or tar:FILE.
	Image string
	// BundlePath reads the statements from an mlenv bundle file instead of
	// the registry.
	BundlePath string
	// Host, when set, is this host's fingerprint: the --runtime checks run.
	Host *fingerprint.Fingerprint
}

// Verify answers for one image. An error means the image could not be
// checked (registry down, unreadable bundle): the caller must treat it as
// a denial (exit 2), never as an allow.
func (v *Verifier) Verify(ctx context.Context, req Request) (*Result, error) {
	res := &Result{SchemaVersion: ResultSchemaVersion, Image: req.Image, Policy: v.policy.Name, Checks: []Check{}}
	opts := v.RemoteOptionsFor(ctx)
	t, err := Resolve(ctx, req.Image, opts)
	if err != nil {
		return nil, err
	}
	res.Digest = t.Digest.String()
	var envs []attest.Envelope
	switch {
	case req.BundlePath != "":
		envs, err = bundleEnvelopes(req.BundlePath)
	case t.Ref == nil:
		err = fmt.Errorf("%s is not in a registry, so its statements cannot be read from one: pass --bundle FILE", req.Image)
	default:
		envs, err = attest.ReadAttached(*t.Ref, opts...)
	}
	if err != nil {
		return nil, err
	}
	ev := checkEnvelopes(ctx, envs, t.Digest, v.keys, v.pinned)
	for _, k := range []string{KindProvenance, KindSBOM, KindTraining} {
		if s := ev.Statements[k]; s != nil {
			res.Statements = append(res.Statements, s)
		}
	}
	res.Checks = append(res.Checks, v.statementChecks(ev)...)
	if v.policy.RequireImageSignature {
		res.Checks = append(res.Checks, v.signatureCheck(ctx, t, opts, req.BundlePath != ""))
	}
	res.Checks = append(res.Checks, v.policyChecks(t, ev)...)

	// The training predicate is read once (mlenv's shape or the bare
	// fingerprint cosign attest writes, its id checked against its
	// content), for will-it-reproduce and for the rules.
	var trainingPred *attest.FingerprintPredicate
	var training *fingerprint.Fingerprint
	if s := ev.Statements[KindTraining]; s != nil {
		p, err := attest.ReadFingerprintPredicate(s.Predicate)
		if err != nil {
			res.Checks = append(res.Checks, Check{Name: "statement.training.content", Group: "statements", Status: Fail,
				Expected: "a fingerprint whose id matches its content", Actual: "invalid", Message: err.Error()})
		} else {
			trainingPred, training = p, p.Fingerprint
		}
	}
	if req.Host != nil {
		var code *GPUCode
		sbom := ev.Statements[KindSBOM]
		if sbom != nil {
			if code, err = gpuCodeFromSBOM(sbom.Predicate); err != nil {
				res.Checks = append(res.Checks, Check{Name: "run.gpu", Group: GroupRun, Status: Fail, Message: err.Error()})
			}
		}
		if v.policy.Runtime.WillRun != Off && err == nil {
			res.Checks = append(res.Checks, willItRun(t, code, sbom != nil, req.Host, v.policy)...)
		}
		if v.policy.Runtime.WillReproduce != Off {
			res.Checks = append(res.Checks, willItReproduce(training, req.Host, v.policy)...)
		}
	}
	res.Checks = append(res.Checks, v.ruleChecks(ctx, t, ev, trainingPred, req.Host)...)
	res.Decision = Allow
	if len(res.Failures()) > 0 {
		res.Decision = Deny
	}
	return res, nil
}

func (v *Verifier) statementChecks(ev *Evidence) []Check {
	var out []Check
	for _, k := range []string{KindProvenance, KindSBOM, KindTraining} {
		required := slices.Contains(v.policy.Require, k)
		pt := PredicateTypes[k]
		if s := ev.Statements[k]; s != nil {
			out = append(out, Check{Name: "statement." + k, Group: "statements", Status: Pass, Expected: pt + " signed by a trusted key",
				Actual: "signed by " + s.KeySource, Message: "from " + s.Origin})
			continue
		}
		var reasons []string
		for _, r := range ev.Rejected {
			if r.PredicateType == pt {
				reasons = append(reasons, r.Reason)
			}
		}
		st := Fail
		if !required {
			if len(reasons) == 0 {
				continue
			}
			st = WarnStatus
		}
		actual, msg := "rejected", strings.Join(reasons, "; ")
		if len(reasons) == 0 {
			actual, msg = "none", fmt.Sprintf("no %s statement among the %d found", pt, ev.Found)
			if ev.Found == 0 {
				msg = "no attestations stored for this digest: the image is not attested (unsigned)"
			}
		}
		out = append(out, Check{Name: "statement." + k, Group: "statements", Status: st, Expected: pt + " signed by a trusted key", Actual: actual, Message: msg})
	}
	for _, r := range ev.Rejected {
		if kindOf(r.PredicateType) == "" {
			out = append(out, Check{Name: "statement.other", Group: "statements", Status: WarnStatus, Expected: "a verifiable statement",
				Actual: "rejected", Message: fmt.Sprintf("%s from %s: %s", orNone(r.PredicateType), r.Origin, r.Reason)})
		}
	}
	return out
}

func (v *Verifier) signatureCheck(ctx context.Context, t *Target, opts []remote.Option, fromBundle bool) Check {
	c := Check{Name: "signature", Group: "statements", Expected: "a cosign image signature by a trusted key"}
	if t.Ref == nil || fromBundle {
		c.Status, c.Actual, c.Message = Fail, "not checked", "the policy requires an image signature, which lives in a registry only"
		return c
	}
	found, by, err := imageSignature(ctx, t, v.keys, opts)
	switch {
	case by != nil:
		c.Status, c.Actual = Pass, "signed by "+by.Source
	case !found:
		c.Status, c.Actual, c.Message = Fail, "none", "no image signature stored for this digest (sign it with `mlenv sign`)"
	default:
		c.Status, c.Actual, c.Message = Fail, "rejected", err.Error()
	}
	return c
}

// policyCheck is one policy rule's result: Pass when ok, else Fail.
func policyCheck(name string, ok bool, exp, act, msg string) Check {
	st := Pass
	if !ok {
		st = Fail
	}
	return Check{Name: name, Group: "policy", Status: st, Expected: exp, Actual: act, Message: msg}
}

func (v *Verifier) policyChecks(t *Target, ev *Evidence) []Check {
	p := v.policy
	if len(p.BuilderIDs) == 0 && p.LockDigest == "" && p.MaxAge == 0 {
		return nil
	}
	var out []Check
	var prov *attest.ProvenanceView
	var provErr string
	if s := ev.Statements[KindProvenance]; s != nil {
		var err error
		if prov, err = attest.ReadProvenance(s.Predicate); err != nil {
			provErr = err.Error()
		}
	} else {
		provErr = "no verified provenance to read it from"
	}
	add := func(name string, ok bool, exp, act, msg string) {
		out = append(out, policyCheck(name, ok, exp, act, msg))
	}
	if len(p.BuilderIDs) > 0 {
		exp := strings.Join(p.BuilderIDs, " or ")
		if prov == nil {
			add("policy.builderId", false, exp, "unknown", provErr)
		} else {
			id := prov.RunDetails.Builder.ID
			add("policy.builderId", slices.Contains(p.BuilderIDs, id), exp, orNone(id), "provenance runDetails.builder.id")
		}
	}
	if p.LockDigest != "" {
		if prov == nil {
			add("policy.lockDigest", false, p.LockDigest, "unknown", provErr)
		} else {
			got := prov.LockDigest()
			add("policy.lockDigest", got == p.LockDigest, p.LockDigest, orNone(got), "provenance externalParameters.lock.digest")
		}
		label := t.Labels[image.LabelLockDigest]
		add("policy.lockDigest.label", label == p.LockDigest, p.LockDigest, orNone(label), "image label "+image.LabelLockDigest)
	}
	if p.MaxAge > 0 {
		exp := "at most " + time.Duration(p.MaxAge).String() + " old"
		switch {
		case prov == nil:
			add("policy.maxAge", false, exp, "unknown", provErr)
		case prov.RunDetails.Metadata.FinishedOn == nil:
			add("policy.maxAge", false, exp, "unknown", "the provenance has no runDetails.metadata.finishedOn")
		default:
			age := v.Now().Sub(*prov.RunDetails.Metadata.FinishedOn)
			add("policy.maxAge", age <= time.Duration(p.MaxAge), exp, age.Round(time.Second).String()+" old",
				"since provenance finishedOn "+prov.RunDetails.Metadata.FinishedOn.UTC().Format(time.RFC3339))
		}
	}
	return out
}

// ruleChecks evaluates the policy's rules; training is the verified
// training predicate, nil when there is none or it did not read.
func (v *Verifier) ruleChecks(ctx context.Context, t *Target, ev *Evidence, training *attest.FingerprintPredicate, host *fingerprint.Fingerprint) []Check {
	if len(v.rules) == 0 {
		return nil
	}
	vars := map[string]any{
		"image": map[string]any{"name": t.Name, "digest": t.Digest.String(), "labels": anyMap(t.Labels),
			"created": t.Created, "architecture": t.Arch},
		"provenance": predicateValue(ev, KindProvenance),
		"sbom":       predicateValue(ev, KindSBOM),
		"training":   trainingValue(training),
		"runtime":    nil,
	}
	if host != nil {
		vars["runtime"] = jsonValue(host)
	}
	var out []Check
	for _, r := range v.rules {
		c := Check{Name: "rule." + r.Name, Group: "rules", Expected: r.Expr}
		ok, err := r.eval(ctx, vars)
		switch {
		case err != nil:
			c.Status, c.Actual, c.Message = Fail, "error", "could not evaluate: "+err.Error()
		case ok:
			c.Status, c.Actual = Pass, "true"
		default:
			c.Status, c.Actual, c.Message = Fail, "false", r.Message
			if r.Action == "warn" {
				c.Status = WarnStatus
			}
		}
		out = append(out, c)
	}
	return out
}

func predicateValue(ev *Evidence, kind string) any {
	s := ev.Statements[kind]
	if s == nil {
		return nil
	}
	var v any
	if json.Unmarshal(s.Predicate, &v) != nil {
		return nil
	}
	return v
}

// trainingValue is the training predicate as rules see it: always
// {role, fingerprint}, whether mlenv or `cosign attest` (a bare
// fingerprint) wrote it, so that one rule reads both.
func trainingValue(p *attest.FingerprintPredicate) any {
	if p == nil {
		return nil
	}
	return jsonValue(p)
}

func jsonValue(x any) any {
	b, err := json.Marshal(x)
	if err != nil {
		return nil
	}
	var v any
	json.Unmarshal(b, &v)
	return v
}

func anyMap(m map[string]string) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	return out
}
