package main

import (
	"bytes"
	"strings"
	"testing"
)

const run = `{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"pass","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:9: no GPU here\n"}
{"Action":"output","Package":"p","Test":"TestB","Output":"--- SKIP: TestB (0.00s)\n"}
{"Action":"skip","Package":"p","Test":"TestB"}
{"Action":"output","Package":"q","Test":"TestC","Output":"    c_test.go:3: got 1, want 2\n"}
{"Action":"fail","Package":"q","Test":"TestC"}
{"Action":"fail","Package":"q"}
{"Action":"pass","Package":"p"}
`

func TestReportListsFailuresSkipsAndCounts(t *testing.T) {
	var out bytes.Buffer
	failed, err := report(strings.NewReader(run), &out)
	if err != nil || !failed {
		t.Fatalf("failed=%v err=%v", failed, err)
	}
	s := out.String()
	for _, want := range []string{
		"--- FAIL: q TestC\n    c_test.go:3: got 1, want 2\n",
		"Skipped tests (1):\n  p TestB: b_test.go:9: no GPU here\n",
		"\n1 passed, 1 failed, 1 skipped\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "--- FAIL: q\n") {
		t.Errorf("package q listed besides its failed test:\n%s", s)
	}
}

func TestBuildFailureFails(t *testing.T) {
	in := `{"ImportPath":"r","Action":"build-output","Output":"r/x.go:1: syntax error\n"}
{"ImportPath":"r","Action":"build-fail"}
{"Action":"fail","Package":"r"}
`
	var out bytes.Buffer
	failed, _ := report(strings.NewReader(in), &out)
	if !failed || strings.Count(out.String(), "syntax error") != 1 {
		t.Errorf("failed=%v\n%s", failed, out.String())
	}
	if failed, _ := report(strings.NewReader(`{"Action":"pass","Package":"p","Test":"T"}`+"\n"), &out); failed {
		t.Error("a passing run was reported failed")
	}
}
