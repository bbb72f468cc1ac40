package lockfile

import "testing"

// A version that parses must print in a form that parses to an equal one.
func FuzzParseVersion(f *testing.F) {
	for _, s := range []string{"1.0", "v1!2.3rc4.post5.dev6+ubuntu-1", "1.0-1", "1.0.POST", "٠١", "1" + string(make([]byte, 30))} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseVersion(s)
		if err != nil {
			return
		}
		w, err := ParseVersion(v.String())
		if err != nil || w.Compare(v) != 0 {
			t.Fatalf("%q normalised to %q, which reparses as %v, %v", s, v.String(), w, err)
		}
	})
}

// Any specifier that parses must answer Contains without panicking, and
// "==V" must contain V itself.
func FuzzParseSpecifier(f *testing.F) {
	for _, s := range []string{"==1.*", "~=2.2", "===x", ">=1.0+5", "!=1.0.*"} {
		f.Add(s, "1.0")
	}
	f.Fuzz(func(t *testing.T, spec, version string) {
		sp, err := ParseSpecifier(spec)
		if err != nil {
			return
		}
		sp.Contains(version)
		if sp.Op == "==" && !sp.Prefix && !sp.Contains(sp.Version) {
			t.Fatalf("%q does not contain its own version", spec)
		}
	})
}
