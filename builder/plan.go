package builder

import (
	"archive/zip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mlenv/mlenv/internal/atomicfile"
	"github.com/mlenv/mlenv/internal/canon"
	"github.com/mlenv/mlenv/internal/cas"
	"github.com/mlenv/mlenv/lockfile"
)

// layerPlan is one layer to produce: a cache key that identifies its
// bytes, and how to fill its tree on a cache miss.
type layerPlan struct {
	key       string
	createdBy string
	fill      func(t *tree) (finish func() error, cleanup func(), err error)
}

// groupBySize puts each artifact of largeArtifact bytes or more in a group
// of its own, in lock order, and all smaller ones in one last group.
func groupBySize[T any](items []T, size func(T) int64) [][]T {
	var groups [][]T
	var small []T
	for _, it := range items {
		if size(it) >= largeArtifact {
			groups = append(groups, []T{it})
			continue
		}
		small = append(small, it)
	}
	if len(small) > 0 {
		groups = append(groups, small)
	}
	return groups
}

func planLayers(o Options, platform string, arts *artifacts, redirect *redirector) ([]layerPlan, error) {
	l := o.Lock
	var plans []layerPlan
	linksKey, err := redirect.key()
	if err != nil {
		return nil, err
	}
	// One budget for every archive of this image (see Limits).
	bud := newBudget(o.Limits)
	keyOf := func(kind string, inputs any) (string, error) {
		k := map[string]any{"format": layerFormat, "kind": kind, "epoch": Epoch(l).Unix(),
			"compression": l.Compression, "inputs": inputs}
		if linksKey != "" {
			k["baseLinks"] = linksKey // entries land elsewhere on another base
		}
		return canon.SHA256(k)
	}
	// Debs, then wheels: large ones alone, the rest together.
	addDebLayer := func(debs []lockfile.Deb) error {
		var ids, names []string
		for _, d := range debs {
			ids = append(ids, d.SHA256)
			names = append(names, d.Package)
		}
		key, err := keyOf("debs", ids)
		if err != nil {
			return err
		}
		plans = append(plans, layerPlan{key: key, createdBy: "mlenv: debs " + strings.Join(names, " "),
			fill: func(t *tree) (func() error, func(), error) {
				t.budget = bud
				for _, d := range debs {
					f, err := arts.file(d.SHA256, d.Size)
					if err != nil {
						return nil, nil, fmt.Errorf("%s: %w", d.Package, err)
					}
					if err := installDeb(t, f, d); err != nil {
						return nil, nil, err
					}
				}
				return nil, nil, nil
			}})
		return nil
	}
	for _, g := range groupBySize(l.DebsFor(platform), func(d lockfile.Deb) int64 { return d.Size }) {
		if err := addDebLayer(g); err != nil {
			return nil, err
		}
	}
	if l.Python != nil {
		lay := layoutFor(l.Python)
		addWheelLayer := func(wheels []lockfile.Wheel) error {
			var ids, names []string
			for _, w := range wheels {
				ids = append(ids, w.SHA256)
				names = append(names, w.Name)
			}
			key, err := keyOf("wheels", map[string]any{"wheels": ids, "python": l.Python})
			if err != nil {
				return err
			}
			plans = append(plans, layerPlan{key: key, createdBy: "mlenv: wheels " + strings.Join(names, " "),
				fill: func(t *tree) (func() error, func(), error) {
					t.budget = bud
					for _, w := range wheels {
						// Read from the descriptor that was verified;
						// the build closes it.
						f, err := arts.file(w.SHA256, w.Size)
						if err != nil {
							return nil, nil, fmt.Errorf("%s: %w", w.Filename, err)
						}
						zr, err := zip.NewReader(f, w.Size)
						if err != nil {
							return nil, nil, fmt.Errorf("%s: not a valid wheel (zip): %w", w.Filename, err)
						}
						zr.RegisterDecompressor(zip.Deflate, fastInflate)
						if err := installWheel(t, zr, w, lay); err != nil {
							return nil, nil, err
						}
					}
					return nil, nil, nil
				}})
			return nil
		}
		for _, g := range groupBySize(l.WheelsFor(platform), func(w lockfile.Wheel) int64 { return w.Size }) {
			if err := addWheelLayer(g); err != nil {
				return nil, err
			}
		}
	}
	// Application files last: they change most often. Small sets share
	// one layer; a large one is split into its lock's chunks.
	var whole []lockfile.FileSet
	for _, f := range l.Files {
		if len(f.Chunks) <= 1 {
			whole = append(whole, f)
			continue
		}
		for j, c := range f.Chunks {
			key, err := keyOf("files-chunk", map[string]any{"dst": f.Dst, "chunk": j, "of": len(f.Chunks), "sha256": c.SHA256})
			if err != nil {
				return nil, err
			}
			plans = append(plans, layerPlan{key: key, createdBy: fmt.Sprintf("mlenv: files %s (part %d of %d)", f.Dst, j+1, len(f.Chunks)),
				fill: func(t *tree) (func() error, func(), error) {
					fin, err := addFiles(t, o.localPolicy(), o.ReverseListing, f, j)
					return fin, nil, err
				}})
		}
	}
	if len(whole) > 0 {
		key, err := keyOf("files", whole)
		if err != nil {
			return nil, err
		}
		var dsts []string
		for _, f := range whole {
			dsts = append(dsts, f.Dst)
		}
		plans = append(plans, layerPlan{key: key, createdBy: "mlenv: files " + strings.Join(dsts, " "),
			fill: func(t *tree) (func() error, func(), error) {
				var checks []func() error
				for _, f := range whole {
					fin, err := addFiles(t, o.localPolicy(), o.ReverseListing, f, -1)
					if err != nil {
						return nil, nil, err
					}
					checks = append(checks, fin)
				}
				return func() error {
					for _, c := range checks {
						if err := c(); err != nil {
							return err
						}
					}
					return nil
				}, nil, nil
			}})
	}
	return plans, nil
}

// layerRecord is the layer cache's entry: the layer's digests.
type layerRecord struct {
	layerInfo
	// Index is what the cross-layer check needs (see crosslayer.go);
	// a record without it is rebuilt.
	Index *linkIndex `json:"index,omitempty"`
}

// produce returns the layer for a plan: from the layer cache when its key
// is known and its blob present and intact, else built now. Either way the
// blob was hashed in this run, and vs records it. A layer built now writes
// its entries through the base image's symlinks (redirect).
func produce(o Options, p layerPlan, redirect *redirector, vs *verifiedSet) (*cachedLayer, error) {
	c := o.LayerCache
	meta := filepath.Join(c.Dir, "layers", strings.TrimPrefix(p.key, "sha256:")+".json")
	if b, err := os.ReadFile(meta); err == nil {
		var rec layerRecord
		if json.Unmarshal(b, &rec) == nil {
			if hex, err := cas.ParseSHA256(rec.Digest); err == nil {
				// A cached layer is reused only after re-hashing it now:
				// an mtime says nothing about bit rot. A corrupt one is
				// removed (by Verify) and rebuilt, never shipped.
				if fi, err := os.Stat(c.Path(hex)); err == nil && fi.Size() == rec.Size && rec.Index != nil && c.Verify(hex) == nil {
					path := c.Path(hex)
					vs.add(rec.Digest, path)
					o.Events.reused()
					return &cachedLayer{info: rec.layerInfo, path: path, index: rec.Index}, nil
				}
			}
		}
	}
	t := newTree()
	t.redirect = redirect
	// Spool files sit beside the blobs (same file system, same cleanup
	// rules) and are unlinked as soon as they are created.
	t.tmpDir = filepath.Join(c.Dir, "blobs", "sha256")
	if err := os.MkdirAll(t.tmpDir, 0o755); err != nil {
		return nil, err
	}
	defer t.close()
	finish, cleanup, err := p.fill(t)
	if cleanup != nil {
		defer cleanup()
	}
	if err != nil {
		return nil, err
	}
	info, err := writeLayer(c, t, Epoch(o.Lock).Unix(), o.Lock.Compression)
	if err != nil {
		return nil, err
	}
	path := c.Path(strings.TrimPrefix(info.Digest, "sha256:"))
	if finish != nil {
		if err := finish(); err != nil {
			// The blob holds inputs that do not match the lock: it must
			// not stay in the cache.
			os.Remove(path)
			return nil, err
		}
	}
	rec := layerRecord{layerInfo: info, Index: indexOf(t)}
	b, _ := json.Marshal(rec)
	if err := atomicfile.Write(meta, b, 0o644); err != nil {
		return nil, err
	}
	vs.add(info.Digest, path)
	o.Events.built()
	return &cachedLayer{info: info, path: path, index: rec.Index}, nil
}
