package verify

import (
	"context"
	"fmt"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
)

// celCostLimit bounds one rule's evaluation (CEL's abstract cost units):
// a rule cannot loop for long over a large SBOM.
const celCostLimit = 10_000_000

// celVars are the documents a rule sees (README, "Custom rules"):
// image {name, digest, labels, created}, provenance and sbom (the
// predicates as JSON), training (the fingerprint predicate) and runtime
// (this host's fingerprint under --runtime, else null).
var celVars = []string{"image", "provenance", "sbom", "training", "runtime"}

type compiledRule struct {
	Rule
	prg cel.Program
}

var celEnv = func() *cel.Env {
	var opts []cel.EnvOption
	for _, v := range celVars {
		opts = append(opts, cel.Variable(v, cel.DynType))
	}
	env, err := cel.NewEnv(opts...)
	if err != nil {
		panic(err)
	}
	return env
}()

// compileRules type-checks every rule once, at policy load.
func compileRules(rules []Rule) ([]compiledRule, error) {
	var out []compiledRule
	for _, r := range rules {
		ast, iss := celEnv.Compile(r.Expr)
		if iss.Err() != nil {
			return nil, fmt.Errorf("rule %q: %w", r.Name, iss.Err())
		}
		if ast.OutputType() != cel.BoolType && ast.OutputType() != cel.DynType {
			return nil, fmt.Errorf("rule %q: the expression gives %s; it must give a bool", r.Name, ast.OutputType())
		}
		prg, err := celEnv.Program(ast, cel.CostLimit(celCostLimit), cel.InterruptCheckFrequency(100))
		if err != nil {
			return nil, fmt.Errorf("rule %q: %w", r.Name, err)
		}
		out = append(out, compiledRule{Rule: r, prg: prg})
	}
	return out, nil
}

// eval runs one rule; an error (a missing field, a cost overrun) is a
// failure of the rule, never a pass.
func (r compiledRule) eval(ctx context.Context, vars map[string]any) (bool, error) {
	out, _, err := r.prg.ContextEval(ctx, vars)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("gave %v (%s), not a bool", out, out.Type())
	}
	return bool(b), nil
}
