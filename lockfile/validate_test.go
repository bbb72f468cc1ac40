package lockfile

import (
	"encoding/json"
	"path"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// Each case is a value reported as accepted by mlenv before validation
// existed, or one next to it; the error must name file, line and field.
func TestIntentRefusesHostileConfigValues(t *testing.T) {
	const py = "python:\n  version: \"3.11\"\n  wheels: [{path: a-1-py3-none-any.whl}]\n"
	cases := []struct {
		name, yaml string
		want       string // the error's start: file:line: field
	}{
		{"env without =", "base: scratch\nenv:\n  A: \"1\"\n  B: \"2\"\n  \"NO=EQ\": x\n", "mlenv.yaml:5: env[2]: "},
		{"env empty name", "base: scratch\nenv:\n  \"\": x\n", "mlenv.yaml:3: env[0]: "},
		{"env newline in name", "base: scratch\nenv:\n  \"A\\nB\": \"1\"\n", "mlenv.yaml:3: env[0]: "},
		{"env NUL in value", "base: scratch\nenv:\n  A: \"x\\0y\"\n", "mlenv.yaml:3: env[0]: "},
		{"user newline", "base: scratch\nuser: \"root\\n\"\n", "mlenv.yaml:2: user: "},
		{"user space", "base: scratch\nuser: \"ro ot\"\n", "mlenv.yaml:2: user: "},
		{"user two colons", "base: scratch\nuser: \"a:b:c\"\n", "mlenv.yaml:2: user: "},
		{"user uid too big", "base: scratch\nuser: \"4294967296\"\n", "mlenv.yaml:2: user: "},
		{"label empty key", "base: scratch\nlabels:\n  a: b\n  \"\": x\n", "mlenv.yaml:4: labels[1]: "},
		{"label control key", "base: scratch\nlabels:\n  \"a\\tb\": x\n", "mlenv.yaml:3: labels[0]: "},
		{"port path", "base: scratch\nports: [\"80\", \"x/../y\"]\n", "mlenv.yaml:2: ports[1]: "},
		{"port zero", "base: scratch\nports:\n  - \"0\"\n", "mlenv.yaml:3: ports[0]: "},
		{"port too big", "base: scratch\nports:\n  - \"65536/tcp\"\n", "mlenv.yaml:3: ports[0]: "},
		{"port twice", "base: scratch\nports:\n  - \"80\"\n  - \"80/tcp\"\n", "mlenv.yaml:4: ports[1]: "},
		{"workdir relative", "base: scratch\nworkdir: ../../x\n", "mlenv.yaml:2: workdir: "},
		{"workdir unclean", "base: scratch\nworkdir: /app/../etc\n", "mlenv.yaml:2: workdir: "},
		{"entrypoint NUL", "base: scratch\nentrypoint: [/bin/sh, \"a\\0b\"]\n", "mlenv.yaml:2: entrypoint[1]: "},
		{"cmd NUL", "base: scratch\ncmd:\n  - ok\n  - \"\\0\"\n", "mlenv.yaml:4: cmd[1]: "},
		{"name newline", "name: \"a\\nb\"\nbase: scratch\n", "mlenv.yaml:1: name: "},
		{"platform variant unknown", "base: scratch\nplatforms: [linux/arm64/v8]\n", "mlenv.yaml:2: platforms[0]: "},
		{"platform malformed", "base: scratch\nplatforms: [\"linux/../amd64\"]\n", "mlenv.yaml:2: platforms[0]: "},
		{"dst unclean", "base: scratch\nfiles:\n  - src: app\n    dst: /app/../../etc\n", "mlenv.yaml:4: files[0].dst: "},
		{"dst trailing slash", "base: scratch\nfiles:\n  - src: app\n    dst: /app/\n", "mlenv.yaml:4: files[0].dst: "},
		{"src NUL", "base: scratch\nfiles:\n  - src: \"a\\0\"\n    dst: /app\n", "mlenv.yaml:3: files[0].src: "},
		{"prefix quote", "base: scratch\n" + strings.Replace(py, "  wheels", "  prefix: \"/usr/x'y\"\n  wheels", 1), "mlenv.yaml:4: python.prefix: "},
		{"site-packages relative", "base: scratch\n" + strings.Replace(py, "  wheels", "  site-packages: lib/site\n  wheels", 1), "mlenv.yaml:4: python.site-packages: "},
		{"interpreter newline", "base: scratch\n" + strings.Replace(py, "  wheels", "  interpreter: \"/usr/bin/python\\nrm -rf /\"\n  wheels", 1), "mlenv.yaml:4: python.interpreter: "},
		{"interpreter dollar", "base: scratch\n" + strings.Replace(py, "  wheels", "  interpreter: \"/usr/$(x)/python\"\n  wheels", 1), "mlenv.yaml:4: python.interpreter: "},
		{"epoch too large", "base: scratch\nepoch: 253402300800\n", "mlenv.yaml:2: epoch: "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseIntent("mlenv.yaml", []byte(c.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("error %q, want it to start with %q", err, c.want)
			}
		})
	}
}

func TestIntentAcceptsOrdinaryConfigValues(t *testing.T) {
	in, err := ParseIntent("mlenv.yaml", []byte(`name: trainer v2
base: scratch
platforms: [linux/amd64, linux/arm64]
env: {PYTHONUNBUFFERED: "1", my.var: "a=b", MULTI: "line1\nline2", EMPTY: ""}
user: "1000:1000"
workdir: /
entrypoint: [/usr/local/bin/python3.11, /app/train.py]
cmd: [--epochs, "3", ""]
labels: {org.opencontainers.image.source: "https://example.com/repo", "with space": ""}
ports: ["8080", "53/udp", "9/sctp", "65535/tcp", "1"]
files: [{src: app, dst: /opt/my app}]
python:
  version: "3.11"
  prefix: /opt/py 3
  wheels: [{path: a-1-py3-none-any.whl}]
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"root", "0", "nobody:nogroup", "1000:0", "svc-user$", "4294967294"} {
		if err := checkUser(u); err != nil {
			t.Errorf("user %q: %v", u, err)
		}
	}
	if len(in.Env) != 4 {
		t.Errorf("env %v", in.Env)
	}
}

// The same rules hold in a hand-edited lock.
func TestLockRefusesHostileConfigValues(t *testing.T) {
	good := goodLockText(t)
	cases := []struct {
		name, old, new, want string
	}{
		{"env without =", `"A=multi\nline"`, `"NOEQ"`, "config.env[0]: "},
		{"env empty name", `"A=multi\nline"`, `"=x"`, "config.env[0]: "},
		{"env newline in name", `"A=multi\nline"`, `"A\nB=1"`, "config.env[0]: "},
		{"env NUL", `"A=multi\nline"`, `"A=\u0000"`, "config.env[0]: "},
		{"env twice", `"PYTHONUNBUFFERED=1"`, `"A=2"`, "config.env[1]: A is set twice"},
		{"user newline", `"1000:1000"`, `"root\n"`, "config.user: "},
		{"label empty key", `"org.opencontainers.image.source"`, `""`, "config.labels: "},
		{"port path", `"8080"`, `"x/../y"`, "config.exposedPorts[0]: "},
		{"workdir relative", `"workdir": "/app"`, `"workdir": "../../x"`, "config.workdir: "},
		{"entrypoint NUL", `"/usr/local/bin/python3.11"
    ]`, `"/usr/local/bin/python3.11\u0000"
    ]`, "config.entrypoint[0]: "},
		{"dst", `"dst": "/app"`, `"dst": "/app/../.."`, "files[0].dst: "},
		{"interpreter quote", `"interpreter": "/usr/local/bin/python3.11"`, `"interpreter": "/usr/bin/py'"`, "python.interpreter: "},
		{"site-packages relative", `"sitePackages": "/usr/local/lib/python3.11/site-packages"`, `"sitePackages": "site"`, "python.sitePackages: "},
		{"platform unknown", `"linux/arm64"
  ]`, `"linux/riscv64"
  ]`, "platforms[1]: "},
		{"platform twice", `"linux/arm64"
  ]`, `"linux/amd64"
  ]`, "platforms[1]: "},
		{"wheel platform not built", `"linux/arm64",`, `"linux/s390x",`, "wheels[0].platforms[0]: "},
		{"name control", `"name": "trainer"`, `"name": "a\u001b[2Jb"`, "name: "},
		{"epoch negative", `"epoch": 1700000000`, `"epoch": -1`, "epoch: "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(good, c.old) {
				t.Fatalf("fixture has no %s", c.old)
			}
			text := strings.Replace(good, c.old, c.new, 1)
			_, err := ParseLock("mlenv.lock", []byte(text))
			if err == nil {
				t.Fatal("accepted")
			}
			line := lineOf(text, c.new)
			if c.want == "config.labels: " {
				line = lineOf(text, `"labels"`) // labels are named as a whole: keys are the problem
			}
			if !strings.HasPrefix(err.Error(), "mlenv.lock:"+strconv.Itoa(line)+": ") {
				t.Errorf("error %q, want mlenv.lock:%d", err, line)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not name %q", err, c.want)
			}
		})
	}
}

// FuzzValidators checks each validator's promise on what it accepts.
func FuzzValidators(f *testing.F) {
	for _, s := range []string{"PATH=/bin", "NOEQ", "=x", "A\nB=1", "root\n", "1000:1000", "x/../y", "8080/tcp",
		"65536", "/app", "../../x", "/a/./b", "/usr/bin/py'", "linux/amd64", "linux/arm64/v8", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if checkEnvEntry(s) == nil {
			name, value, _ := strings.Cut(s, "=")
			if name == "" || strings.ContainsAny(name, "=\n\x00") || strings.Contains(value, "\x00") {
				t.Errorf("env %q accepted", s)
			}
		}
		if checkUser(s) == nil && (strings.Count(s, ":") > 1 || strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0) {
			t.Errorf("user %q accepted", s)
		}
		if checkLabel(s, "") == nil && (s == "" || hasControl(s)) {
			t.Errorf("label key %q accepted", s)
		}
		if norm, err := checkPort(s); err == nil {
			n, err := strconv.Atoi(strings.SplitN(s, "/", 2)[0])
			if err != nil || n < 1 || n > 65535 || !strings.HasPrefix(norm, strconv.Itoa(n)+"/") {
				t.Errorf("port %q accepted as %q", s, norm)
			}
		}
		if checkImagePath(s) == nil && (!path.IsAbs(s) || path.Clean(s) != s || strings.ContainsAny(s, "\x00\n")) {
			t.Errorf("image path %q accepted", s)
		}
		if checkScriptPath(s) == nil && strings.ContainsAny(s, "'\"`\\$\n") {
			t.Errorf("script path %q accepted", s)
		}
		if checkPlatform(s) == nil && s != "linux/amd64" && s != "linux/arm64" {
			t.Errorf("platform %q accepted", s)
		}
		if checkArgs([]string{s}, func(_ int, err error) error { return err }) == nil && strings.Contains(s, "\x00") {
			t.Errorf("argument %q accepted", s)
		}
		// A value accepted by the intent must also be accepted by the
		// lock built from it: both go through the same validators.
		if checkEnvName(s) == nil && checkEnvValue(s, s) == nil && checkEnvEntry(s+"="+s) != nil {
			t.Errorf("env %q passes in the intent, fails in the lock", s)
		}
	})
}

// FuzzLockConfig feeds arbitrary config values through a whole lock:
// whatever ParseLock accepts must hold no NUL in env, args or paths.
func FuzzLockConfig(f *testing.F) {
	f.Add("A=1", "root", "/app", "8080", "x")
	f.Add("A\nB=1", "root\n", "../../x", "x/../y", "\x00")
	f.Fuzz(func(t *testing.T, env, user, workdir, port, arg string) {
		l := goodLock()
		l.Config = ImageConfig{Env: []string{env}, User: user, Workdir: workdir, ExposedPorts: []string{port}, Cmd: []string{arg}}
		b, err := json.Marshal(l)
		if err != nil {
			return
		}
		got, err := ParseLock("mlenv.lock", b)
		if err != nil {
			return
		}
		c := got.Config
		if strings.Contains(c.Env[0], "\x00") || strings.ContainsAny(c.User, " \n\x00") || strings.Contains(c.Cmd[0], "\x00") ||
			(c.Workdir != "" && path.Clean(c.Workdir) != c.Workdir) {
			t.Errorf("accepted %+v", c)
		}
	})
}
