// Package scripts holds tests of the shell scripts beside it.
package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestFuzzShExitCodes runs fuzz.sh over a one-target tree with a stand-in
// for the go command that prints what Go would and exits as it would:
// only Go's bare -fuzztime race (golang/go#75804) may pass; a seed
// corpus entry failing with a message that merely mentions "context
// deadline exceeded", a package that does not build, or a go command
// that fails without a word must fail the script.
func TestFuzzShExitCodes(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash here")
	}
	script, err := os.ReadFile("fuzz.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		out    string
		rc     int
		wantOK bool
	}{
		{"pass", "fuzz: elapsed: 1s, execs: 10\nPASS\n", 0, true},
		{"bare race", "fuzz: elapsed: 5s, execs: 100 (0/sec)\n--- FAIL: FuzzX (5.02s)\n    context deadline exceeded\nFAIL\nexit status 1\nFAIL\tfz/p\t5.1s\n", 1, true},
		{"seed failure naming a deadline", "failure while testing seed corpus entry: FuzzX/seed#0\n--- FAIL: FuzzX (0.01s)\n    --- FAIL: FuzzX (0.00s)\n        p_test.go:8: context deadline exceeded\n    \nFAIL\nexit status 1\nFAIL\tfz/p\t0.009s\n", 1, false},
		{"fuzz failure naming a deadline", "--- FAIL: FuzzX (0.20s)\n    --- FAIL: FuzzX (0.00s)\n        p_test.go:8: fetch: context deadline exceeded\n    \n    Failing input written to testdata/fuzz/FuzzX/abc\nFAIL\n", 1, false},
		{"does not build", "# fz/p [fz/p.test]\np/p_test.go:3:2: undefined: nothing\nFAIL\tfz/p [build failed]\n", 1, false},
		{"go fails silently", "", 2, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			os.MkdirAll(filepath.Join(root, "scripts"), 0o755)
			os.MkdirAll(filepath.Join(root, "p"), 0o755)
			os.WriteFile(filepath.Join(root, "scripts", "fuzz.sh"), script, 0o755)
			os.WriteFile(filepath.Join(root, "p", "p_test.go"), []byte("package p\n\nimport \"testing\"\n\nfunc FuzzX(f *testing.F) {}\n"), 0o644)
			os.WriteFile(filepath.Join(root, "out"), []byte(c.out), 0o644)
			fakeGo := filepath.Join(root, "fakego")
			os.WriteFile(fakeGo, []byte("#!/usr/bin/env bash\ncat "+filepath.Join(root, "out")+"\nexit "+string(rune('0'+c.rc))+"\n"), 0o755)
			cmd := exec.Command("bash", filepath.Join(root, "scripts", "fuzz.sh"))
			cmd.Env = append(os.Environ(), "GO="+fakeGo, "FUZZTIME=1s")
			out, err := cmd.CombinedOutput()
			if ok := err == nil; ok != c.wantOK {
				t.Fatalf("fuzz.sh: %v (want success %v)\n%s", err, c.wantOK, out)
			}
			if c.name == "bare race" && !strings.Contains(string(out), "not counted as a failure") {
				t.Fatalf("the race was not reported as such:\n%s", out)
			}
		})
	}
}
