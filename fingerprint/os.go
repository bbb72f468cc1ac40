package fingerprint

import (
	"bufio"
	"bytes"
	"debug/elf"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// OS describes the kernel, the distribution and the C library.
type OS struct {
	Kernel       string       `json:"kernel,omitempty"`
	Distribution Distribution `json:"distribution"`
	// Glibc is the GNU C library version ("" when not glibc or unreadable).
	Glibc     string    `json:"glibc,omitempty"`
	Container Container `json:"container"`
}

// Distribution is read from os-release.
type Distribution struct {
	ID         string `json:"id,omitempty"`
	VersionID  string `json:"versionId,omitempty"`
	PrettyName string `json:"prettyName,omitempty"`
}

// Container says whether this runs in a container or Kubernetes pod.
type Container struct {
	InContainer bool   `json:"inContainer"`
	Kubernetes  bool   `json:"kubernetes"`
	Runtime     string `json:"runtime,omitempty"`
	Cgroup      string `json:"cgroup,omitempty"`
}

func captureOS(o Options) OS {
	var out OS
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		out.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		if b, err := os.ReadFile(filepath.Join(o.Root, p)); err == nil {
			out.Distribution = ParseOSRelease(b)
			break
		}
	}
	out.Glibc = glibcVersion(o.Root)
	out.Container = containerHints(o)
	return out
}

// ParseOSRelease reads the os-release format (shell-like KEY=value).
func ParseOSRelease(b []byte) Distribution {
	var d Distribution
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		} else {
			v = strings.Trim(v, `"'`)
		}
		switch k {
		case "ID":
			d.ID = v
		case "VERSION_ID":
			d.VersionID = v
		case "PRETTY_NAME":
			d.PrettyName = v
		}
	}
	return d
}

var glibcRe = regexp.MustCompile(`GNU C Library [^\n]*release version (\d+\.\d+)`)

// glibcVersion reads the version string that glibc embeds in libc.so.6
// (no subprocess, no cgo): only its .rodata section is read.
func glibcVersion(root string) string {
	for _, p := range []string{
		"lib/x86_64-linux-gnu/libc.so.6", "lib/aarch64-linux-gnu/libc.so.6",
		"usr/lib/x86_64-linux-gnu/libc.so.6", "usr/lib/aarch64-linux-gnu/libc.so.6",
		"lib64/libc.so.6", "usr/lib64/libc.so.6", "lib/libc.so.6", "usr/lib/libc.so.6",
	} {
		if v := glibcFromFile(filepath.Join(root, p)); v != "" {
			return v
		}
	}
	return ""
}

func glibcFromFile(p string) string {
	f, err := elf.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	sec := f.Section(".rodata")
	if sec == nil || sec.Size > 64<<20 {
		return ""
	}
	b, err := io.ReadAll(sec.Open())
	if err != nil {
		return ""
	}
	if m := glibcRe.FindSubmatch(b); m != nil {
		return string(m[1])
	}
	return ""
}

func containerHints(o Options) Container {
	var c Container
	if o.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		c.Kubernetes, c.InContainer = true, true
	}
	if _, err := os.Stat(filepath.Join(o.Root, ".dockerenv")); err == nil {
		c.InContainer, c.Runtime = true, "docker"
	}
	if _, err := os.Stat(filepath.Join(o.Root, "run/.containerenv")); err == nil {
		c.InContainer, c.Runtime = true, "podman"
	}
	if b, err := os.ReadFile(filepath.Join(o.Root, "proc/self/cgroup")); err == nil {
		cg := strings.TrimSpace(string(b))
		if i := strings.IndexByte(cg, '\n'); i >= 0 {
			cg = cg[:i]
		}
		c.Cgroup = cg
		for _, marker := range []string{"docker", "kubepods", "containerd", "crio", "libpod"} {
			if strings.Contains(cg, marker) {
				c.InContainer = true
				if c.Runtime == "" {
					c.Runtime = marker
				}
			}
		}
	}
	return c
}
