package verify

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// PolicyAPIVersion is the version of the policy file format (README,
// "Verify policy").
const PolicyAPIVersion = "mlenv.dev/v1"

// Mode says what a failing check group does.
type Mode string

const (
	Enforce Mode = "enforce" // a failure denies
	Warn    Mode = "warn"    // a failure is a warning
	Off     Mode = "off"     // not checked
)

// Policy is what an image must satisfy. The zero value is not usable;
// start from DefaultPolicy or LoadPolicy.
type Policy struct {
	APIVersion string `yaml:"apiVersion" json:"apiVersion"`
	Kind       string `yaml:"kind" json:"kind"`
	// Name is for messages ("default", "exact", or the file's).
	Name string `yaml:"name,omitempty" json:"name"`
	// Require lists the statement kinds that must be present and signed:
	// provenance, sbom, training.
	Require []string `yaml:"require" json:"require"`
	// RequireImageSignature also demands a cosign image signature (.sig).
	RequireImageSignature bool `yaml:"requireImageSignature,omitempty" json:"requireImageSignature,omitempty"`
	// BuilderIDs: the provenance's runDetails.builder.id must be one.
	BuilderIDs []string `yaml:"builderIds,omitempty" json:"builderIds,omitempty"`
	// LockDigest: the lock the image must be built from (provenance and
	// the image label dev.mlenv.lock.digest).
	LockDigest string `yaml:"lockDigest,omitempty" json:"lockDigest,omitempty"`
	// MaxAge bounds the provenance's age (finishedOn): "720h", "30d".
	MaxAge Duration `yaml:"maxAge,omitempty" json:"maxAge,omitempty"`
	// Keys pins the key files (relative to the policy file) that may sign
	// a statement kind; kinds not named accept any --key.
	Keys map[string][]string `yaml:"keys,omitempty" json:"keys,omitempty"`
	// Runtime says which --runtime groups deny and which warn.
	Runtime RuntimePolicy `yaml:"runtime" json:"runtime"`
	// Rules are custom CEL checks.
	Rules []Rule `yaml:"rules,omitempty" json:"rules,omitempty"`
	// Admission configures `mlenv verify serve`.
	Admission AdmissionPolicy `yaml:"admission" json:"admission"`
	// Lineage holds the rules for models (verify/lineage.go).
	Lineage LineagePolicy `yaml:"lineage,omitempty" json:"lineage,omitempty"`

	dir string // for relative key paths
}

// RuntimePolicy configures the two --runtime groups.
type RuntimePolicy struct {
	WillRun       Mode `yaml:"willRun" json:"willRun"`
	WillReproduce Mode `yaml:"willReproduce" json:"willReproduce"`
	// RequiredCPUFeatures are CPUID feature names (AVX2, AVX512F, ...)
	// the image needs: an image does not record them itself.
	RequiredCPUFeatures []string `yaml:"requiredCpuFeatures,omitempty" json:"requiredCpuFeatures,omitempty"`
}

// Rule is one CEL expression over image, provenance, sbom, training and
// runtime; it must evaluate to true.
type Rule struct {
	Name    string `yaml:"name" json:"name"`
	Expr    string `yaml:"expr" json:"expr"`
	Message string `yaml:"message,omitempty" json:"message,omitempty"`
	// Action is deny (default) or warn.
	Action string `yaml:"action,omitempty" json:"action,omitempty"`
}

// AdmissionPolicy configures the webhook.
type AdmissionPolicy struct {
	// AllowTags lets the webhook resolve an image given by tag (once, to
	// its digest); by default only images by digest are admitted.
	AllowTags bool `yaml:"allowTags,omitempty" json:"allowTags,omitempty"`
	// ExcludeNamespaces are never checked (kube-system, ...). Excluding
	// by label is the ValidatingWebhookConfiguration's namespaceSelector.
	ExcludeNamespaces []string `yaml:"excludeNamespaces,omitempty" json:"excludeNamespaces,omitempty"`
	// CacheTTL is how long a verdict for a digest is reused (default 5m).
	CacheTTL Duration `yaml:"cacheTTL,omitempty" json:"cacheTTL,omitempty"`
}

// Duration reads Go durations plus a "d" (days) suffix.
type Duration time.Duration

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// ParseDuration reads "90s", "12h", "30d".
func ParseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("duration %q: want like 30d, 12h or 90m", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("duration %q: want like 30d, 12h or 90m", s)
	}
	return v, nil
}

// DefaultPolicy is what verify checks without --policy: signed provenance
// and SBOM about the digest; at --runtime, "will it run" denies and "will
// it reproduce" warns.
func DefaultPolicy() *Policy {
	return &Policy{
		APIVersion: PolicyAPIVersion, Kind: "VerifyPolicy", Name: "default",
		Require:   []string{KindProvenance, KindSBOM},
		Runtime:   RuntimePolicy{WillRun: Enforce, WillReproduce: Warn},
		Admission: AdmissionPolicy{CacheTTL: Duration(5 * time.Minute)},
	}
}

// ExactPolicy is the built-in "exact": also the training fingerprint,
// and at --runtime every "will it reproduce" difference denies.
func ExactPolicy() *Policy {
	p := DefaultPolicy()
	p.Name = "exact"
	p.Require = []string{KindProvenance, KindSBOM, KindTraining}
	p.Runtime.WillReproduce = Enforce
	return p
}

// maxPolicyBytes bounds a policy file.
const maxPolicyBytes = 1 << 20

// LoadPolicy reads --policy: "default", "exact" or a YAML file. Unknown
// fields are errors (a typo must not silently weaken a policy).
func LoadPolicy(src string) (*Policy, error) {
	switch src {
	case "", "default":
		return DefaultPolicy(), nil
	case "exact":
		return ExactPolicy(), nil
	}
	fi, err := os.Stat(src)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if fi.Size() > maxPolicyBytes {
		return nil, fmt.Errorf("policy %s: %d bytes, over the %d-byte limit", src, fi.Size(), maxPolicyBytes)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	p, err := ParsePolicy(b)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", src, err)
	}
	p.dir = filepath.Dir(src)
	if p.Name == "" {
		p.Name = src
	}
	return p, nil
}

// ParsePolicy reads and validates a policy document; fields left out take
// the default policy's values.
func ParsePolicy(b []byte) (*Policy, error) {
	p := DefaultPolicy()
	p.Name = ""
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(p); err != nil {
		return nil, fmt.Errorf("not a valid policy: %w", err)
	}
	if p.APIVersion != PolicyAPIVersion || p.Kind != "VerifyPolicy" {
		return nil, fmt.Errorf("apiVersion %q kind %q: want apiVersion %s, kind VerifyPolicy", p.APIVersion, p.Kind, PolicyAPIVersion)
	}
	return p, p.validate()
}

func (p *Policy) validate() error {
	for _, k := range p.Require {
		if _, ok := PredicateTypes[k]; !ok {
			return fmt.Errorf("require: %q is not one of provenance, sbom, training", k)
		}
	}
	for k := range p.Keys {
		if _, ok := PredicateTypes[k]; !ok {
			return fmt.Errorf("keys: %q is not one of provenance, sbom, training", k)
		}
	}
	for _, m := range []struct {
		name string
		v    *Mode
	}{{"runtime.willRun", &p.Runtime.WillRun}, {"runtime.willReproduce", &p.Runtime.WillReproduce}} {
		switch *m.v {
		case Enforce, Warn, Off:
		default:
			return fmt.Errorf("%s: %q is not enforce, warn or off", m.name, *m.v)
		}
	}
	if p.LockDigest != "" && !strings.HasPrefix(p.LockDigest, "sha256:") {
		return fmt.Errorf("lockDigest %q: want sha256:<hex> (the `digest` of mlenv.lock)", p.LockDigest)
	}
	names := map[string]bool{}
	for i, r := range p.Rules {
		if r.Name == "" || r.Expr == "" {
			return fmt.Errorf("rules[%d]: needs a name and an expr", i)
		}
		if names[r.Name] {
			return fmt.Errorf("rules: %q is named twice", r.Name)
		}
		names[r.Name] = true
		if r.Action != "" && r.Action != "deny" && r.Action != "warn" {
			return fmt.Errorf("rule %q: action %q is not deny or warn", r.Name, r.Action)
		}
	}
	if _, err := compileRules(p.Rules); err != nil {
		return err
	}
	return nil
}

// pinnedKeys loads the keys the policy pins per statement kind.
func (p *Policy) pinnedKeys() (map[string][]Key, error) {
	out := map[string][]Key{}
	kinds := make([]string, 0, len(p.Keys))
	for k := range p.Keys {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, kind := range kinds {
		var paths []string
		for _, f := range p.Keys[kind] {
			if !filepath.IsAbs(f) && p.dir != "" {
				f = filepath.Join(p.dir, f)
			}
			paths = append(paths, f)
		}
		ks, err := LoadKeys(paths)
		if err != nil {
			return nil, fmt.Errorf("policy keys.%s: %w", kind, err)
		}
		out[kind] = ks
	}
	return out, nil
}

func (d Duration) String() string { return time.Duration(d).String() }
