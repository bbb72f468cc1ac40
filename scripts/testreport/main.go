// Command testreport reads `go test -json` on stdin and prints what CI
// needs to see: the full output of every failed test (and of packages
// that did not build), then every skipped test with its reason, then one
// closing line "N passed, N failed, N skipped". It exits 1 when anything
// failed, so that `make test` fails with it.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string // build-output / build-fail
}

type key struct{ pkg, test string }

func main() {
	failed, err := report(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}

// report writes the summary to w and says whether anything failed.
func report(r io.Reader, w io.Writer) (bool, error) {
	output := map[key][]string{}
	var fails, skips []key
	passed := 0
	anyFail := false
	seenFail := map[key]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil {
			// go test prints some errors (e.g. a bad package pattern)
			// outside JSON: show them as they are.
			fmt.Fprintln(w, string(line))
			anyFail = true
			continue
		}
		pkg := e.Package
		if pkg == "" {
			pkg = e.ImportPath
		}
		k := key{pkg, e.Test}
		switch e.Action {
		case "output", "build-output":
			output[k] = append(output[k], e.Output)
		case "pass":
			if e.Test != "" {
				passed++
			}
		case "skip":
			if e.Test != "" {
				skips = append(skips, k)
			}
		case "fail", "build-fail":
			anyFail = true
			// A package fails along with its tests; list it on its own
			// only when no test of it failed (a build error, a panic in
			// TestMain, a timeout).
			if !seenFail[k] {
				seenFail[k] = true
				fails = append(fails, k)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return true, err
	}
	nfailed := 0
	for _, k := range fails {
		if k.test == "" && hasFailedTest(fails, k.pkg) {
			continue
		}
		if k.test != "" {
			nfailed++
		}
		name := k.pkg
		if k.test != "" {
			name += " " + k.test
		}
		fmt.Fprintf(w, "\n--- FAIL: %s\n%s", name, strings.Join(output[k], ""))
	}
	if len(skips) > 0 {
		sort.Slice(skips, func(i, j int) bool {
			if skips[i].pkg != skips[j].pkg {
				return skips[i].pkg < skips[j].pkg
			}
			return skips[i].test < skips[j].test
		})
		fmt.Fprintf(w, "\nSkipped tests (%d):\n", len(skips))
		for _, k := range skips {
			fmt.Fprintf(w, "  %s %s: %s\n", k.pkg, k.test, skipReason(output[k]))
		}
	}
	fmt.Fprintf(w, "\n%d passed, %d failed, %d skipped\n", passed, nfailed, len(skips))
	return anyFail, nil
}

func hasFailedTest(fails []key, pkg string) bool {
	for _, k := range fails {
		if k.pkg == pkg && k.test != "" {
			return true
		}
	}
	return false
}

// skipReason is what the test logged, without go test's own markers.
func skipReason(lines []string) string {
	var parts []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		parts = append(parts, t)
	}
	if len(parts) == 0 {
		return "(no reason given)"
	}
	return strings.Join(parts, " / ")
}
