package lockfile

import (
	"context"
	"sort"
	"strings"
	"testing"
)

// uvConflictLock is shaped as uv writes a project with conflicting extras
// (the PyTorch "cpu" / "cu124" pattern): uv encodes each extra of the
// workspace as "extra-<len(name)>-<name>-<extra>" and writes conflict
// markers on the forks and edges with it.
func uvConflictLock() string {
	h := `hash = "sha256:` + strings.Repeat("a", 64) + `", size = 1`
	return `version = 1
revision = 3
requires-python = ">=3.11"
resolution-markers = [
    "extra != 'extra-7-trainer-cpu' and extra == 'extra-7-trainer-cu124'",
    "extra == 'extra-7-trainer-cpu' and extra != 'extra-7-trainer-cu124'",
    "extra != 'extra-7-trainer-cpu' and extra != 'extra-7-trainer-cu124'",
]
conflicts = [[
    { package = "trainer", extra = "cpu" },
    { package = "trainer", extra = "cu124" },
]]

[[package]]
name = "nvidia-cublas-cu12"
version = "12.4.5.8"
source = { registry = "https://pypi.org/simple" }
wheels = [{ url = "https://example.invalid/nvidia_cublas_cu12-12.4.5.8-py3-none-manylinux2014_x86_64.whl", ` + h + ` }]

[[package]]
name = "torch"
version = "2.5.1+cpu"
source = { registry = "https://download.pytorch.org/whl/cpu" }
resolution-markers = [
    "extra == 'extra-7-trainer-cpu' and extra != 'extra-7-trainer-cu124'",
]
wheels = [{ url = "https://example.invalid/torch-2.5.1%2Bcpu-py3-none-any.whl", ` + h + ` }]

[[package]]
name = "torch"
version = "2.5.1+cu124"
source = { registry = "https://download.pytorch.org/whl/cu124" }
resolution-markers = [
    "extra != 'extra-7-trainer-cpu' and extra == 'extra-7-trainer-cu124'",
]
dependencies = [
    { name = "nvidia-cublas-cu12", marker = "(platform_machine == 'x86_64' and sys_platform == 'linux' and extra == 'extra-7-trainer-cu124') or (platform_machine == 'x86_64' and sys_platform == 'linux' and extra != 'extra-7-trainer-cpu')" },
]
wheels = [{ url = "https://example.invalid/torch-2.5.1%2Bcu124-py3-none-any.whl", ` + h + ` }]

[[package]]
name = "trainer"
version = "0.1.0"
source = { editable = "." }

[package.optional-dependencies]
cpu = [
    { name = "torch", version = "2.5.1+cpu", source = { registry = "https://download.pytorch.org/whl/cpu" }, marker = "extra == 'extra-7-trainer-cpu'" },
]
cu124 = [
    { name = "torch", version = "2.5.1+cu124", source = { registry = "https://download.pytorch.org/whl/cu124" }, marker = "extra == 'extra-7-trainer-cu124'" },
]
`
}

// With python.extras [cu124], uv sync --extra cu124 installs torch+cu124
// and, on x86_64, cuBLAS; mlenv read "extra" as the empty string, so every
// conflict marker `extra == 'extra-7-trainer-cu124'` was false and torch
// was dropped without an error (only --explain said "marker is false").
func TestUVLockConflictMarkersFollowTheSelectedExtras(t *testing.T) {
	u, err := ParseUVLock("uv.lock", []byte(uvConflictLock()), ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		extras   []string
		platform string
		want     string
	}{
		{[]string{"cu124"}, "linux/amd64", "nvidia-cublas-cu12 12.4.5.8, torch 2.5.1+cu124"},
		{[]string{"cu124"}, "linux/arm64", "torch 2.5.1+cu124"},
		{[]string{"cpu"}, "linux/amd64", "torch 2.5.1+cpu"},
		{nil, "linux/amd64", ""},
	} {
		tg := Target{PythonVersion: "3.11", Implementation: "cp", Libc: "glibc 2.36", Platform: c.platform}
		pkgs, _, err := u.selectFor(context.Background(), newPySelect(&PythonIntent{Extras: c.extras}, tg, nil))
		if err != nil {
			t.Fatalf("extras %v on %s: %v", c.extras, c.platform, err)
		}
		var got []string
		for _, p := range pkgs {
			got = append(got, p.Name+" "+p.Version)
		}
		sort.Strings(got)
		if strings.Join(got, ", ") != c.want {
			t.Errorf("extras %v on %s: installs [%s], want [%s]", c.extras, c.platform, strings.Join(got, ", "), c.want)
		}
	}
}
