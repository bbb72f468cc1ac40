package debpkg

import (
	"fmt"
	"regexp"
	"strings"
)

// Debian policy 5.6.1 (Package), 5.6.12 (Version) and 5.6.8
// (Architecture). mlenv turns the package name into file names under
// /var/lib/dpkg, so these are checked before anything is built from them.
var (
	packageRe = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	// [epoch:]upstream[-revision]: epoch digits; upstream starts with a
	// digit and may hold "-" only when a revision follows (the last "-"
	// splits them); revision has no "-".
	epochRe    = regexp.MustCompile(`^[0-9]+$`)
	upstreamRe = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~-]*$`)
	revisionRe = regexp.MustCompile(`^[A-Za-z0-9.+~]+$`)
	archRe     = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
)

// ValidPackageName checks a package name against Debian policy 5.6.1.
func ValidPackageName(name string) error {
	if !packageRe.MatchString(name) {
		return fmt.Errorf("package name %q is not valid: Debian policy 5.6.1 allows [a-z0-9][a-z0-9+.-]+ only", name)
	}
	return nil
}

// ValidVersion checks a version against Debian policy 5.6.12.
func ValidVersion(v string) error {
	bad := func(why string) error {
		return fmt.Errorf("version %q is not valid (%s): Debian policy 5.6.12 wants [epoch:]upstream[-revision]", v, why)
	}
	rest := v
	if e, r, ok := strings.Cut(v, ":"); ok {
		if !epochRe.MatchString(e) {
			return bad("the epoch is not a number")
		}
		rest = r
	}
	upstream := rest
	if i := strings.LastIndexByte(rest, '-'); i >= 0 {
		upstream = rest[:i]
		if !revisionRe.MatchString(rest[i+1:]) {
			return bad("bad revision")
		}
	}
	if !upstreamRe.MatchString(upstream) {
		return bad("the upstream version must start with a digit and hold only A-Za-z0-9.+~-")
	}
	return nil
}

// ValidArchitecture checks a binary package's Architecture field.
func ValidArchitecture(a string) error {
	if !archRe.MatchString(a) {
		return fmt.Errorf("architecture %q is not valid: expected one word such as amd64, arm64 or all", a)
	}
	return nil
}

// Validate checks the identity fields (Package, Version, Architecture) by
// Debian policy.
func (c Control) Validate() error {
	if err := ValidPackageName(c.Package()); err != nil {
		return err
	}
	if err := ValidVersion(c.Version()); err != nil {
		return err
	}
	return ValidArchitecture(c.Architecture())
}
