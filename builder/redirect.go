package builder

import (
	"fmt"
	"path"
	"strings"

	"github.com/mlenv/mlenv/internal/canon"
)

// Many bases link whole folders: Debian and Ubuntu's merged /usr makes
// /lib a link to usr/lib, /bin to usr/bin, and so on. A deb built for such
// a system still ships lib/x86_64-linux-gnu/...; dpkg, installing it on a
// real system, writes through the link. A layer cannot: an explicit lib/
// folder would replace the base's link on extraction (breaking the base),
// and a layer-by-layer extractor that follows links could be led out of
// the root by one that points elsewhere. So mlenv resolves the base's
// links itself, inside the image root (as a chroot would: an absolute
// target starts at the image root, ".." stops there), and writes each
// entry at the path it resolves to. The layer then holds no entry under a
// linked folder, and no extractor has a link to follow.

// maxLinkHops bounds link chains, as the kernel's ELOOP does.
const maxLinkHops = 40

// redirector resolves paths through the base image's symlinks.
type redirector struct {
	links map[string]string // clean path -> link target, as in the base
}

func newRedirector(links map[string]string) *redirector {
	if len(links) == 0 {
		return nil
	}
	return &redirector{links: links}
}

// key identifies the links for the layer cache: the same entries laid on
// another base may land elsewhere.
func (r *redirector) key() (string, error) {
	if r == nil {
		return "", nil
	}
	return canon.SHA256(r.links)
}

// resolve returns where p lands in the image. Every folder above p is
// followed through the base's links; p itself is followed only when it is
// a folder (a file or link at a linked path replaces the link, as dpkg and
// every extractor do).
func (r *redirector) resolve(p string, isDir bool) (string, error) {
	if r == nil || p == "" {
		return p, nil
	}
	hops := 0
	parts := strings.Split(p, "/")
	for i := 0; i < len(parts); i++ {
		if i == len(parts)-1 && !isDir {
			break
		}
		prefix := strings.Join(parts[:i+1], "/")
		target, ok := r.links[prefix]
		if !ok {
			continue
		}
		if hops++; hops > maxLinkHops {
			return "", fmt.Errorf("%q: more than %d symlinks of the base image on the way (a loop?)", p, maxLinkHops)
		}
		resolved := resolveInRoot(prefix, target)
		rest := parts[i+1:]
		if resolved == "" {
			parts = rest
		} else {
			parts = append(strings.Split(resolved, "/"), rest...)
		}
		if len(parts) == 0 {
			return "", nil // the base links it to the image root
		}
		i = -1 // start over: the target may itself pass through links
	}
	return strings.Join(parts, "/"), nil
}

// resolveInRoot is where the link at linkPath points, relative to the image
// root, with the root as the ceiling.
func resolveInRoot(linkPath, target string) string {
	var abs string
	if strings.HasPrefix(target, "/") {
		abs = path.Clean(target)
	} else {
		abs = path.Clean("/" + path.Join(path.Dir(linkPath), target))
	}
	return strings.TrimPrefix(abs, "/")
}
