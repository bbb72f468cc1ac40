package builder

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/mlenv/mlenv/internal/atomicfile"
	"github.com/mlenv/mlenv/internal/layerwalk"
)

// A layer-by-layer extractor follows symlinks that lower layers left: if
// the deb layer makes usr/local a link to /elsewhere, the wheel layer's
// usr/local/lib/... lands in /elsewhere on the extracting host. mlenv
// refuses such an image instead of resolving links inside it: every folder
// a layer of ours holds (our layers list every parent folder explicitly)
// must not be a symlink in any layer below, the base image's included.

// linkIndex is what the check needs from one layer.
type linkIndex struct {
	// Dirs maps each folder to the package that brought it.
	Dirs map[string]string `json:"dirs"`
	// Links maps each symlink to its target and owner.
	Links map[string]linkRef `json:"links"`
}

type linkRef struct {
	Target string `json:"target"`
	Owner  string `json:"owner"`
}

func indexOf(t *tree) *linkIndex {
	ix := &linkIndex{Dirs: map[string]string{}, Links: map[string]linkRef{}}
	for p, e := range t.entries {
		switch e.kind {
		case kindDir:
			ix.Dirs[p] = e.owner
		case kindSymlink:
			ix.Links[p] = linkRef{e.link, e.owner}
		}
	}
	return ix
}

// baseSymlinks is the base image's symlinks as its layers leave them,
// applied in order the way an extractor applies them: a later layer's
// link replaces an earlier one at the same path; a later file or folder
// at a link's path replaces the link; a later layer's whiteout (.wh.NAME,
// or an opaque .wh..wh..opq) removes the links it hides. The result is
// cached by the base image's digest.
func baseSymlinks(o Options, base v1.Image) (map[string]string, error) {
	links := map[string]string{}
	baseLayers, err := base.Layers()
	if err != nil {
		return nil, fmt.Errorf("base %s: %w", o.Lock.Base.Ref, err)
	}
	if len(baseLayers) == 0 {
		return links, nil // scratch
	}
	d, err := base.Digest()
	if err != nil {
		return nil, fmt.Errorf("base %s: %w", o.Lock.Base.Ref, err)
	}
	meta := filepath.Join(o.LayerCache.Dir, "layers", "baselinks-v3-"+d.Hex+".json") // v3: v2 kept a link a later entry of its own layer replaced
	if b, err := os.ReadFile(meta); err == nil {
		var m map[string]string
		if json.Unmarshal(b, &m) == nil && m != nil {
			return m, nil
		}
	}
	for _, l := range baseLayers {
		if err := applyLayerLinks(links, l); err != nil {
			return nil, err
		}
	}
	b, _ := json.Marshal(links)
	if err := atomicfile.Write(meta, b, 0o644); err != nil {
		return nil, err
	}
	return links, nil
}

// checkAcrossLayers refuses a folder of ours that a lower layer made a
// symlink, naming both packages. Entries under the base image's links were
// already written at the paths the links resolve to (see redirect.go), so
// this catches links between mlenv's own layers, which are built in
// parallel and never resolved through each other.
func checkAcrossLayers(o Options, base map[string]string, ours []*cachedLayer) error {
	links := map[string]linkRef{}
	for p, t := range base {
		links[p] = linkRef{Target: t, Owner: "the base image " + o.Lock.Base.Ref}
	}
	for _, l := range ours {
		if l.index == nil {
			return fmt.Errorf("layer %s has no index: internal error", l.info.Digest)
		}
		if len(links) > 0 {
			dirs := make([]string, 0, len(l.index.Dirs))
			for d := range l.index.Dirs {
				dirs = append(dirs, d)
			}
			sort.Strings(dirs) // the first offender, deterministically
			for _, d := range dirs {
				if ln, ok := links[d]; ok {
					return fmt.Errorf("%s installs under /%s, but %s made /%s a symlink (-> %q) in a lower layer: refused, since an extractor would follow the link and could write outside the image root; install the files at the link's target instead",
						l.index.Dirs[d], d, ln.Owner, d, ln.Target)
				}
			}
		}
		for p, ln := range l.index.Links {
			links[p] = ln
		}
	}
	return nil
}

// applyLayerLinks updates links (the layers below l) with l's entries.
func applyLayerLinks(links map[string]string, l v1.Layer) error {
	d, err := l.Digest()
	if err != nil {
		return err
	}
	rc, err := l.Uncompressed()
	if err != nil {
		return fmt.Errorf("base layer %s: %w", d, err)
	}
	defer rc.Close()
	// A whiteout hides what is below this layer, not this layer's own
	// entries, which may come before or after it in the tar: this
	// layer's links are kept apart until its whiteouts are applied.
	var hidden layerwalk.Whiteouts
	own := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("base layer %s: %w", d, err)
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		if removed, opaque, ok := layerwalk.Whiteout(name); ok {
			hidden.Add(removed, opaque)
			continue
		}
		if h.Typeflag == tar.TypeSymlink {
			own[name] = h.Linkname
			continue
		}
		// A file or folder where a link was: one of a lower layer, or
		// one this layer put earlier in its tar (the later entry is
		// what an extractor leaves).
		delete(links, name)
		delete(own, name)
	}
	if hidden.Len() > 0 {
		for p := range links {
			if hidden.Removes(p) {
				delete(links, p)
			}
		}
	}
	for p, t := range own {
		links[p] = t
	}
	return nil
}
