package lockfile

import "testing"

// The parsers must reject bad input with an error, never a panic.

func FuzzParseIntent(f *testing.F) {
	f.Add([]byte("base: scratch\npython:\n  version: \"3.11\"\n  wheels: [{path: a-1-py3-none-any.whl}]\ndebs: [{url: https://x/a.deb, sha256: \"" + string(make([]byte, 0)) + "\"}]\n"))
	f.Add([]byte("base: oci:./x\nplatforms: [linux/amd64, linux/arm64]\nfiles: [{src: a, dst: /a}]\nenv: {A: b}\n"))
	f.Add([]byte("{]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := ParseIntent("mlenv.yaml", data)
		if err == nil && in.Base == "" {
			t.Fatal("accepted an intent without base")
		}
	})
}

func FuzzParseLock(f *testing.F) {
	f.Add([]byte(`{"lockVersion":1,"platforms":["linux/amd64"],"base":{"ref":"scratch"},"compression":{"algorithm":"gzip","level":1},"config":{}}`))
	f.Add([]byte(`{"lockVersion":1,"wheels":[{"filename":"a-1-py3-none-any.whl","sha256":"00"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseLock("mlenv.lock", data)
		if err != nil {
			return
		}
		// Whatever parses must encode and parse again.
		b, err := l.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseLock("mlenv.lock", b); err != nil {
			t.Fatalf("re-parse of an accepted lock failed: %v", err)
		}
	})
}

func FuzzParsePylock(f *testing.F) {
	f.Add([]byte("lock-version = \"1.0\"\n[[packages]]\nname = \"a\"\nversion = \"1\"\n[[packages.wheels]]\nurl = \"https://x/a-1-py3-none-any.whl\"\nhashes = {sha256 = \"00\"}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ParsePylock("pylock.toml", data, ".")
		ParseUVLock("uv.lock", data, ".")
	})
}

func FuzzParseRequirements(f *testing.F) {
	f.Add([]byte("a==1 --hash=sha256:0000000000000000000000000000000000000000000000000000000000000000 ; python_version > '3'\n"))
	f.Add([]byte("b==2 \\\n  --hash=sha256:x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ParseRequirements("requirements.txt", data)
	})
}

func FuzzEvalMarker(f *testing.F) {
	f.Add(`python_version >= "3.8" and (sys_platform == 'linux' or extra == "x")`)
	f.Add(`platform_machine ~= "1.2"`)
	t := Target{PythonVersion: "3.11", Implementation: "cp", Libc: "glibc 2.36", Platform: "linux/amd64"}
	f.Fuzz(func(_ *testing.T, m string) {
		t.EvalMarker(m)
	})
}
