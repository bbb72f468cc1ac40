package lockfile

// Field validators shared by the intent and the lock. A hand-edited lock is
// input as much as mlenv.yaml is, and every value below ends up in a path
// inside the image, in a shell script, in a shebang or in the image config,
// so both files go through the same checks. Each validator returns a message
// without the field name; the caller adds file, line and field.

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// SupportedPlatforms are the os/arch pairs mlenv builds for: debs are
// matched by architecture and base image indexes by os/architecture.
var SupportedPlatforms = []string{"linux/amd64", "linux/arm64"}

// MaxEpoch is 9999-12-31T23:59:59Z: tar headers and the OCI config's
// RFC 3339 `created` field have no room for a five-digit year.
const MaxEpoch = 253402300799

var (
	platformFormRe = regexp.MustCompile(`^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$`)
	portRe         = regexp.MustCompile(`^([1-9][0-9]{0,4})(/(tcp|udp|sctp))?$`)
	pyVerRe        = regexp.MustCompile(`^3\.[0-9]{1,2}(\.[0-9]{1,2})?$`)
	libcRe         = regexp.MustCompile(`^(glibc|musl) [0-9]+\.[0-9]+$`)
	digestRe       = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
)

// hasControl reports a C0/C1 control character, DEL included (NUL, newline,
// tab, escape sequences...).
func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}

func checkEpoch(e int64) error {
	if e < 0 || e > MaxEpoch {
		return fmt.Errorf("%d is not seconds since 1970 between 0 and %d (year 9999)", e, int64(MaxEpoch))
	}
	return nil
}

// checkPlatform accepts os/arch[/variant] from SupportedPlatforms.
func checkPlatform(p string) error {
	if !platformFormRe.MatchString(p) {
		return fmt.Errorf("%q is not os/arch[/variant] like linux/amd64", p)
	}
	if contains(SupportedPlatforms, p) {
		return nil
	}
	return fmt.Errorf("%q is not supported: use one of %s", p, strings.Join(SupportedPlatforms, ", "))
}

// checkPlatforms checks each platform and that none is listed twice.
func checkPlatforms(ps []string, errAt func(i int, err error) error) error {
	seen := map[string]bool{}
	for i, p := range ps {
		if err := checkPlatform(p); err != nil {
			return errAt(i, err)
		}
		if seen[p] {
			return errAt(i, fmt.Errorf("%q is listed twice", p))
		}
		seen[p] = true
	}
	return nil
}

// checkName: the name is the image title annotation and appears in
// provenance and SBOM documents: one printable line.
func checkName(n string) error {
	switch {
	case !utf8.ValidString(n):
		return errors.New("is not valid UTF-8")
	case hasControl(n):
		return fmt.Errorf("%q has a control character (newline, tab, NUL...)", n)
	case strings.TrimSpace(n) != n:
		return fmt.Errorf("%q starts or ends with a space", n)
	case len(n) > 128:
		return fmt.Errorf("is %d bytes long; at most 128", len(n))
	}
	return nil
}

// checkEnvName accepts what the OCI config's "NAME=value" strings can carry
// unambiguously: a non-empty name of printable characters without "=" or
// white space. (POSIX shells only take [A-Za-z_][A-Za-z0-9_]*, but images
// may pass other names to programs that are not shells.)
func checkEnvName(name string) error {
	switch {
	case name == "":
		return errors.New("the variable name is empty")
	case strings.ContainsRune(name, '='):
		return fmt.Errorf("variable name %q contains \"=\"", name)
	case hasControl(name) || strings.IndexFunc(name, unicode.IsSpace) >= 0:
		return fmt.Errorf("variable name %q contains white space or a control character", name)
	case !utf8.ValidString(name):
		return fmt.Errorf("variable name %q is not valid UTF-8", name)
	}
	return nil
}

// checkEnvValue: a value may hold newlines, never NUL (the kernel's
// environment block ends each entry with one).
func checkEnvValue(name, value string) error {
	if strings.IndexByte(value, 0) >= 0 {
		return fmt.Errorf("the value of %s contains a NUL byte", name)
	}
	return nil
}

// checkEnvEntry checks a lock's "NAME=value" string.
func checkEnvEntry(kv string) error {
	name, value, ok := strings.Cut(kv, "=")
	if !ok {
		return fmt.Errorf("%q is not NAME=value", kv)
	}
	if err := checkEnvName(name); err != nil {
		return err
	}
	return checkEnvValue(name, value)
}

// checkUser accepts name|uid[:group|gid], what the OCI config's User holds.
func checkUser(u string) error {
	if u == "" {
		return nil
	}
	parts := strings.Split(u, ":")
	if len(parts) > 2 {
		return fmt.Errorf("%q has more than one \":\": write user, uid, user:group or uid:gid", u)
	}
	for _, p := range parts {
		switch {
		case p == "":
			return fmt.Errorf("%q has an empty user or group: write user, uid, user:group or uid:gid", u)
		case hasControl(p) || strings.IndexFunc(p, unicode.IsSpace) >= 0 || strings.ContainsRune(p, '/'):
			return fmt.Errorf("%q contains white space, a control character or \"/\"", u)
		case len(p) > 256:
			return fmt.Errorf("%q is too long", u)
		}
		if p[0] >= '0' && p[0] <= '9' {
			if id, err := strconv.ParseUint(p, 10, 32); err == nil && id < 1<<32-1 {
				continue
			}
			if strings.Trim(p, "0123456789") == "" {
				return fmt.Errorf("%q: id %s is out of range (0 to 4294967294)", u, p)
			}
		}
	}
	return nil
}

func checkLabel(key, value string) error {
	switch {
	case key == "":
		return errors.New("the label key is empty")
	case hasControl(key) || !utf8.ValidString(key):
		return fmt.Errorf("label key %q contains a control character or invalid UTF-8", key)
	case strings.IndexByte(value, 0) >= 0:
		return fmt.Errorf("the value of label %q contains a NUL byte", key)
	}
	return nil
}

// checkPort accepts N[/tcp|/udp|/sctp] with 1 <= N <= 65535 and returns the
// OCI form (N/proto, tcp by default) to find duplicates.
func checkPort(p string) (string, error) {
	m := portRe.FindStringSubmatch(p)
	if m == nil {
		return "", fmt.Errorf("%q is not a port like \"8080\", \"8080/tcp\", \"53/udp\" or \"9/sctp\"", p)
	}
	n, _ := strconv.Atoi(m[1])
	if n > 65535 {
		return "", fmt.Errorf("%q: port %d is above 65535", p, n)
	}
	proto := m[3]
	if proto == "" {
		proto = "tcp"
	}
	return m[1] + "/" + proto, nil
}

func checkPorts(ps []string, errAt func(i int, err error) error) error {
	seen := map[string]bool{}
	for i, p := range ps {
		norm, err := checkPort(p)
		if err != nil {
			return errAt(i, err)
		}
		if seen[norm] {
			return errAt(i, fmt.Errorf("%q is listed twice (as %s)", p, norm))
		}
		seen[norm] = true
	}
	return nil
}

// checkImagePath accepts an absolute, clean path inside the image ("/app",
// not "app", "/app/", "/a/../b" or "/a//b").
func checkImagePath(p string) error {
	switch {
	case hasControl(p):
		return fmt.Errorf("%q contains a control character (newline, NUL...)", p)
	case !utf8.ValidString(p):
		return fmt.Errorf("%q is not valid UTF-8", p)
	case !path.IsAbs(p):
		return fmt.Errorf("must be an absolute path inside the image, got %q", p)
	case path.Clean(p) != p:
		return fmt.Errorf("%q is not a clean path: write %q", p, path.Clean(p))
	}
	return nil
}

// checkScriptPath is checkImagePath for paths that mlenv writes into
// shebangs and the /bin/sh launcher of console scripts: quotes, backslashes,
// "$" and backquotes would change what the shell runs.
func checkScriptPath(p string) error {
	if err := checkImagePath(p); err != nil {
		return err
	}
	if strings.ContainsAny(p, "'\"`\\$") {
		return fmt.Errorf("%q contains a quote, backslash, \"$\" or backquote, which scripts cannot carry safely", p)
	}
	return nil
}

// checkArgs: entrypoint and cmd are passed to execve, which ends every
// argument at a NUL byte.
func checkArgs(args []string, errAt func(i int, err error) error) error {
	for i, a := range args {
		if strings.IndexByte(a, 0) >= 0 {
			return errAt(i, fmt.Errorf("%q contains a NUL byte", a))
		}
	}
	return nil
}

// checkSrc: a file set's source is a path next to the intent; NUL and
// control characters never name a real file and would garble messages.
func checkSrc(src string) error {
	switch {
	case src == "":
		return errors.New("is required: a file or folder next to mlenv.yaml")
	case hasControl(src):
		return fmt.Errorf("%q contains a control character", src)
	}
	return nil
}

// checkPythonPaths checks the paths that end up in scripts and shebangs;
// fields names them in the caller's file (python.site-packages in the intent,
// python.sitePackages in the lock). Empty site-packages and interpreter
// are allowed: they default from the prefix.
func checkPythonPaths(fields, values [3]string, errAt func(field string, err error) error) error {
	for i, v := range values {
		if v == "" && i > 0 {
			continue
		}
		if err := checkScriptPath(v); err != nil {
			return errAt(fields[i], err)
		}
	}
	return nil
}

// validateConfig checks what the intent puts into the image config. Env and
// labels are YAML maps: errors name the entry by its position in the file
// (env[2]), since the key itself may be what is wrong.
func (in *Intent) validateConfig() error {
	l := in.loc
	for i, k := range l.mapKeys("env", in.Env) {
		if err := checkEnvName(k); err != nil {
			return l.errf(fmt.Sprintf("env[%d]", i), "%v", err)
		}
		if err := checkEnvValue(k, in.Env[k]); err != nil {
			return l.errf(fmt.Sprintf("env[%d]", i), "%v", err)
		}
	}
	if err := checkUser(in.User); err != nil {
		return l.errf("user", "%v", err)
	}
	for i, k := range l.mapKeys("labels", in.Labels) {
		if err := checkLabel(k, in.Labels[k]); err != nil {
			return l.errf(fmt.Sprintf("labels[%d]", i), "%v", err)
		}
	}
	if err := checkPorts(in.Ports, l.indexed("ports")); err != nil {
		return err
	}
	if in.Workdir != "" {
		if err := checkImagePath(in.Workdir); err != nil {
			return l.errf("workdir", "%v", err)
		}
	}
	if err := checkArgs(in.Entrypoint, l.indexed("entrypoint")); err != nil {
		return err
	}
	return checkArgs(in.Cmd, l.indexed("cmd"))
}

// validate checks a lock's image config with the intent's rules.
func (c *ImageConfig) validate(l locator) error {
	seen := map[string]bool{}
	for i, kv := range c.Env {
		if err := checkEnvEntry(kv); err != nil {
			return l.errf(fmt.Sprintf("config.env[%d]", i), "%v", err)
		}
		name, _, _ := strings.Cut(kv, "=")
		if seen[name] {
			return l.errf(fmt.Sprintf("config.env[%d]", i), "%s is set twice", name)
		}
		seen[name] = true
	}
	if err := checkUser(c.User); err != nil {
		return l.errf("config.user", "%v", err)
	}
	for _, k := range l.mapKeys("config.labels", c.Labels) {
		if err := checkLabel(k, c.Labels[k]); err != nil {
			return l.errf("config.labels", "%v", err)
		}
	}
	if err := checkPorts(c.ExposedPorts, l.indexed("config.exposedPorts")); err != nil {
		return err
	}
	if c.Workdir != "" {
		if err := checkImagePath(c.Workdir); err != nil {
			return l.errf("config.workdir", "%v", err)
		}
	}
	if err := checkArgs(c.Entrypoint, l.indexed("config.entrypoint")); err != nil {
		return err
	}
	return checkArgs(c.Cmd, l.indexed("config.cmd"))
}
