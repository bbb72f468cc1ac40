#!/usr/bin/env python3
"""Carry the pypa/packaging test vectors over as data for lockfile's PEP 440
and PEP 508 conformance tests (pep440_conformance_test.go).

Usage: extract.py PACKAGING_CHECKOUT > vectors.json

It reads tests/test_version.py, tests/test_specifiers.py and
tests/test_markers.py with the ast module and evaluates only the
@pytest.mark.parametrize argument lists (and module-level constant lists),
so the vectors stay exactly what packaging's own suite checks.
"""
import ast
import itertools
import json
import subprocess
import sys


class _Param:
    def __init__(self, *values, id=None, marks=None):
        self.values = values


class _Pytest:
    @staticmethod
    def param(*values, id=None, marks=None):
        return values


def source(repo, path):
    return subprocess.run(["git", "-C", repo, "show", "HEAD:" + path],
                          check=True, capture_output=True, text=True).stdout


def module_constants(tree, ns, src):
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name.isupper():
                try:
                    ns[name] = eval(compile(ast.Expression(node.value), "<const>", "eval"), ns)
                except Exception:
                    pass


def params(tree, ns, func):
    """The parametrize lists of the function (first found), outermost first."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == func:
            out = []
            for dec in node.decorator_list:
                if isinstance(dec, ast.Call) and getattr(dec.func, "attr", "") == "parametrize":
                    out.append(eval(compile(ast.Expression(dec.args[1]), func, "eval"), ns))
            return out
    raise SystemExit("no function " + func)


def main():
    repo = sys.argv[1]
    commit = subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], check=True,
                            capture_output=True, text=True).stdout.strip()
    out = {"source": "https://github.com/pypa/packaging at " + commit}

    ns = {"itertools": itertools, "pytest": _Pytest, "sys": sys}
    tv = ast.parse(source(repo, "tests/test_version.py"))
    module_constants(tv, ns, None)
    out["versions_sorted"] = ns["VERSIONS"]
    out["versions_invalid"] = params(tv, ns, "test_invalid_versions")[0]
    out["versions_normalized"] = params(tv, ns, "test_normalized_versions")[0]

    ts = ast.parse(source(repo, "tests/test_specifiers.py"))
    module_constants(ts, ns, None)
    out["specifiers_valid"] = ns["SPECIFIERS"]
    out["specifiers_invalid"] = params(ts, ns, "test_specifiers_invalid")[0]
    out["specifier_contains"] = params(ts, ns, "test_specifiers")[0]
    out["specifier_invalid_version"] = params(ts, ns, "test_invalid_version")[0]
    out["specifier_arbitrary"] = params(ts, ns, "test_arbitrary_equality")[0]

    tm = ast.parse(source(repo, "tests/test_markers.py"))

    class _OS:  # the vectors that use the host's os.name are evaluated on Linux
        name = "posix"
    ns["os"] = _OS
    module_constants(tm, ns, None)
    out["markers_valid"] = params(tm, ns, "test_parses_valid")[0] + params(tm, ns, "test_parses_pep345_valid")[0]
    out["markers_invalid"] = params(tm, ns, "test_parses_invalid")[0]
    out["markers_evaluate"] = (params(tm, ns, "test_evaluates")[0]
                               + params(tm, ns, "test_evaluate_pep345_markers")[0]
                               + params(tm, ns, "test_version_like_equality")[0])
    variables, cases = params(tm, ns, "test_extras_and_dependency_groups")
    # Evaluated with {variable: {"foo", "bar"}} (see the Go test).
    out["markers_sets"] = [[c[0].format(v), c[1]] for v in variables for c in cases]
    json.dump(out, sys.stdout, indent=0, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
