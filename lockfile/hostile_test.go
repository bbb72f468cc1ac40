package lockfile

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mlenv/mlenv/internal/testutil"
)

// aliasBomb is a billion-laughs document: levels of anchors, each listing
// the previous one fan times; decoded, the last expands to fan^levels
// strings. pad repeats filler anchors to make the file large.
func aliasBomb(levels, fan, pad int) []byte {
	var b bytes.Buffer
	b.WriteString("base: scratch\n")
	for i := 0; i < pad; i++ {
		fmt.Fprintf(&b, "p%d: &p%d [%s]\n", i, i, strings.Repeat("lol,", 20)+"lol")
	}
	b.WriteString("l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i < levels; i++ {
		refs := strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*l%d, ", i-1), fan), ", ")
		fmt.Fprintf(&b, "l%d: &l%d [%s]\n", i, i, refs)
	}
	fmt.Fprintf(&b, "cmd: *l%d\n", levels-1)
	return b.Bytes()
}

// bounded runs f and fails the test if it allocates more than maxAlloc
// bytes or runs longer than maxTime: an expansion would blow both.
func bounded(t *testing.T, maxAlloc uint64, maxTime time.Duration, f func()) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	f()
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	t.Logf("allocated %d KiB in %v", (after.TotalAlloc-before.TotalAlloc)>>10, took)
	if got := after.TotalAlloc - before.TotalAlloc; got > maxAlloc {
		t.Errorf("allocated %d MiB, want at most %d MiB", got>>20, maxAlloc>>20)
	}
	if took > maxTime {
		t.Errorf("took %v, want at most %v", took, maxTime)
	}
}

func TestIntentAliasBombFailsFast(t *testing.T) {
	for _, c := range []struct {
		name string
		data []byte
		line int
		want string
	}{
		// 10^12 strings if expanded, in under 2 KiB.
		{"small", aliasBomb(12, 10, 0), 2, "anchor &l0"},
		// Near the size cap, as in the report (filler anchors first).
		{"large", aliasBomb(12, 10, 9000), 2, "anchor &p0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if len(c.data) > MaxIntentSize {
				t.Fatalf("fixture is %d bytes, over the cap: it would test the cap instead", len(c.data))
			}
			var err error
			bounded(t, 256<<20, 5*time.Second, func() { _, err = ParseIntent("mlenv.yaml", c.data) })
			if err == nil {
				t.Fatal("accepted an alias bomb")
			}
			wantFieldError(t, err, c.line, c.want)
			if !strings.HasPrefix(err.Error(), fmt.Sprintf("mlenv.yaml:%d: ", c.line)) {
				t.Errorf("error %q does not start with mlenv.yaml:%d", err, c.line)
			}
		})
	}
}

func TestIntentRefusesAnchorsAliasesAndMergeKeys(t *testing.T) {
	for _, c := range []struct {
		name, yaml string
		line       int
		want       string
	}{
		// yaml.v3 refuses an alias without its anchor while parsing (no line).
		{"alias", "base: scratch\nentrypoint: [/bin/x]\ncmd:\n  - *nope\n", 0, "unknown anchor 'nope'"},
		{"anchor only", "base: scratch\nworkdir: &w /app\n", 2, "anchor &w"},
		{"merge", "base: scratch\nlabels:\n  a: b\nenv:\n  <<: {A: b}\n", 5, "merge key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseIntent("mlenv.yaml", []byte(c.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			wantFieldError(t, err, c.line, c.want)
		})
	}
}

func TestIntentAndLockSizeCaps(t *testing.T) {
	dir := t.TempDir()
	// Sparse files: the size is refused from Stat, nothing is read.
	for _, c := range []struct {
		name string
		max  int64
		load func(string) error
	}{
		{"mlenv.yaml", MaxIntentSize, func(p string) error { _, err := LoadIntent(p); return err }},
		{"mlenv.lock", MaxLockSize, func(p string) error { _, err := LoadLock(p); return err }},
	} {
		p := filepath.Join(dir, c.name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		f.Truncate(c.max + 1)
		f.Close()
		err = c.load(p)
		if err == nil || !strings.Contains(err.Error(), p+": ") || !strings.Contains(err.Error(), fmt.Sprintf("(%d MiB)", c.max>>20)) {
			t.Errorf("%s over the cap: %v", c.name, err)
		}
	}
	// A file without a size (a device, a pipe) is read only up to the cap.
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero to stand for an endless input")
	}
	var err error
	bounded(t, 64<<20, 5*time.Second, func() { _, err = LoadIntent("/dev/zero") })
	if err == nil || !strings.Contains(err.Error(), "larger than mlenv reads") {
		t.Errorf("endless intent: %v", err)
	}
}

func TestLockIsStrictJSON(t *testing.T) {
	good := goodLockText(t)
	for _, c := range []struct {
		name, text string
		line       int
		want       string
	}{
		{"yaml alias bomb", "lockVersion: 1\na: &a [x, x]\nb: [*a, *a]\n", 1, "not valid JSON"},
		{"yaml", "lockVersion: 1\n", 1, "not valid JSON"},
		{"trailing object", good + "{}\n", strings.Count(good, "\n") + 1, "after the lock's closing brace"},
		{"unknown nested field", strings.Replace(good, `"workdir": "/app"`, `"workdir": "/app",
    "volumes": ["/data"]`, 1), lineOf(good, `"workdir"`) + 1, `config.volumes: unknown field "volumes"`},
		{"wrong type", strings.Replace(good, `"epoch": 1700000000`, `"epoch": "soon"`, 1), lineOf(good, `"epoch"`), "epoch: a JSON string where a whole number belongs"},
		{"truncated", good[:len(good)/2], 0, "truncated"},
		{"empty", "  \n", 0, "empty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var err error
			bounded(t, 16<<20, 2*time.Second, func() { _, err = ParseLock("mlenv.lock", []byte(c.text)) })
			if err == nil {
				t.Fatal("accepted")
			}
			wantFieldError(t, err, c.line, c.want)
		})
	}
}

// goodLockText is a valid lock with every config field set, as mlenv writes it.
func goodLockText(t *testing.T) string {
	t.Helper()
	b, err := goodLock().Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseLock("mlenv.lock", b); err != nil {
		t.Fatalf("the good lock is refused: %v", err)
	}
	return string(b)
}

func goodLock() *Lock {
	return &Lock{LockVersion: 1, Name: "trainer", Epoch: 1700000000, Platforms: []string{"linux/amd64", "linux/arm64"}, Base: Base{Ref: "scratch"},
		Python: &Python{Version: "3.11", Prefix: "/usr/local", SitePackages: "/usr/local/lib/python3.11/site-packages", Interpreter: "/usr/local/bin/python3.11", Libc: "glibc 2.36"},
		Wheels: []Wheel{
			{Name: "zeta", Version: "1", Filename: "zeta-1-py3-none-any.whl", Platforms: []string{"linux/amd64"}, Artifact: Artifact{URI: "z.whl", SHA256: strings.Repeat("a", 64), Size: 3}},
			{Name: "alpha", Version: "1", Filename: "alpha-1-py3-none-any.whl", Platforms: []string{"linux/arm64", "linux/amd64"}, Artifact: Artifact{URI: "a.whl", SHA256: strings.Repeat("b", 64), Size: 4}},
		},
		Debs: []Deb{
			{Package: "zlib", Version: "1", Architecture: "all", Platforms: []string{"linux/amd64"}, Artifact: Artifact{URI: "z.deb", SHA256: strings.Repeat("c", 64), Size: 5}},
			{Package: "abc", Version: "1", Architecture: "all", Platforms: []string{"linux/amd64"}, Artifact: Artifact{URI: "a.deb", SHA256: strings.Repeat("d", 64), Size: 6}},
		},
		Files: []FileSet{{Src: "app", Dst: "/app", SHA256: strings.Repeat("e", 64), Size: 1, Files: 1}},
		Config: ImageConfig{Env: []string{"PYTHONUNBUFFERED=1", "A=multi\nline"}, Workdir: "/app", User: "1000:1000",
			Entrypoint: []string{"/usr/local/bin/python3.11"}, Cmd: []string{"--epochs", "3"},
			Labels: map[string]string{"org.opencontainers.image.source": "https://example.com/repo"}, ExposedPorts: []string{"9/sctp", "8080"}},
		Compression: Compression{Algorithm: "gzip", Level: 1}}
}

func lineOf(text, sub string) int {
	return 1 + strings.Count(text[:strings.Index(text, sub)], "\n")
}

func TestEncodeLeavesTheLockUnchanged(t *testing.T) {
	l := goodLock()
	before := deepCopy(t, l)
	if !reflect.DeepEqual(l, before) {
		t.Fatal("the copy is not deep-equal to start with")
	}
	if _, err := l.Encode(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Digest(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(l, before) {
		t.Errorf("Encode changed its receiver:\n%+v\nwant\n%+v", l, before)
	}
}

func deepCopy(t *testing.T, l *Lock) *Lock {
	t.Helper()
	b, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	var c Lock
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return &c
}

// A package that no target installs (uv.lock, a Windows-only edge) is left
// out with or without a Warn callback: the callback only reports.
func TestResolverDecisionDoesNotDependOnWarn(t *testing.T) {
	w := testutil.Wheel{Name: "dep", Version: "1.0", Files: map[string]string{"dep.py": ""}}
	b := w.Bytes()
	uv := fmt.Sprintf(`version = 1
revision = 3
requires-python = ">=3.11"

[[package]]
name = "proj"
version = "0.1.0"
source = { virtual = "." }
dependencies = [
    { name = "dep" },
    { name = "pywin32", marker = "sys_platform == 'win32'" },
]

[[package]]
name = "dep"
version = "1.0"
source = { registry = "https://pypi.org/simple" }
wheels = [{ path = "%s", hash = "sha256:%s", size = %d }]

[[package]]
name = "pywin32"
version = "306"
source = { registry = "https://pypi.org/simple" }
wheels = [{ url = "https://files.example.invalid/pywin32-306-cp311-cp311-win_amd64.whl", hash = "sha256:%s", size = 1 }]
`, w.Filename(), sha(b), len(b), strings.Repeat("c", 64))
	in := project(t, "base: scratch\npython:\n  version: \"3.11\"\n  uv-lock: uv.lock\n", map[string][]byte{"uv.lock": []byte(uv), w.Filename(): b})
	var warnings []string
	withWarn, err := (&Resolver{Warn: func(s string) { warnings = append(warnings, s) }}).Resolve(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	withoutWarn, err := (&Resolver{}).Resolve(context.Background(), in)
	if err != nil {
		t.Fatalf("without Warn: %v", err)
	}
	if !reflect.DeepEqual(withWarn, withoutWarn) {
		t.Errorf("the lock depends on Warn:\n%+v\n%+v", withWarn, withoutWarn)
	}
	named := false
	for _, w := range warnings {
		named = named || strings.Contains(w, "pywin32")
	}
	if !named {
		t.Errorf("warnings %v should name the skipped pywin32", warnings)
	}
	for _, wh := range withWarn.Wheels {
		if wh.Name == "pywin32" {
			t.Errorf("pywin32 was locked for linux: %+v", wh)
		}
	}
}

func TestSourceDateEpochValues(t *testing.T) {
	for v, want := range map[string]int64{"0": 0, "1700000000": 1700000000, "253402300799": MaxEpoch} {
		if got, err := ParseSourceDateEpoch(v); err != nil || got != want {
			t.Errorf("%q: %d, %v; want %d", v, got, err, want)
		}
	}
	for _, v := range []string{"soon", "-1", "1.5", " 1", "1 ", "+1", "0x10", "253402300800", "99999999999999999999"} {
		if _, err := ParseSourceDateEpoch(v); err == nil || !strings.Contains(err.Error(), "SOURCE_DATE_EPOCH") {
			t.Errorf("%q: %v, want an error naming SOURCE_DATE_EPOCH", v, err)
		}
	}
}

func TestResolverEpochOverridesTheIntent(t *testing.T) {
	in := project(t, "base: scratch\nepoch: 100\n", nil)
	e := int64(200)
	l, err := (&Resolver{Epoch: &e}).Resolve(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if l.Epoch != 200 {
		t.Errorf("epoch %d, want the override 200", l.Epoch)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "300") // the library never reads it
	if l, _ = (&Resolver{}).Resolve(context.Background(), in); l.Epoch != 100 {
		t.Errorf("epoch %d, want the intent's 100", l.Epoch)
	}
}
