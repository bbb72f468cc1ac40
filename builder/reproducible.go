package builder

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/mlenv/mlenv/internal/cas"
)

// ReproReport compares two independent builds of the same lock.
type ReproReport struct {
	Digests     [2]string `json:"digests"`
	Same        bool      `json:"same"`
	Differences []string  `json:"differences,omitempty"`
}

// CheckReproducible builds the lock twice, each time with a fresh layer
// cache in its own temporary folder (artifacts still come from o.Cache),
// and, if the digests differ, says which layers and files differ.
func CheckReproducible(ctx context.Context, o Options) (*ReproReport, error) {
	var results [2]*Result
	for i := range results {
		dir, err := os.MkdirTemp("", "mlenv-repro-*")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		oi := o
		oi.LayerCache = &cas.Cache{Dir: dir}
		if results[i], err = Build(ctx, oi); err != nil {
			return nil, fmt.Errorf("build %d: %w", i+1, err)
		}
	}
	rep := &ReproReport{Digests: [2]string{results[0].Digest.String(), results[1].Digest.String()}}
	rep.Same = results[0].Digest == results[1].Digest
	if rep.Same {
		return rep, nil
	}
	for _, p := range o.Lock.Platforms {
		diffs, err := compareImages(results[0].Images[p], results[1].Images[p])
		if err != nil {
			return nil, err
		}
		for _, d := range diffs {
			rep.Differences = append(rep.Differences, p+": "+d)
		}
	}
	return rep, nil
}

func compareImages(a, b v1.Image) ([]string, error) {
	var out []string
	ca, err := a.RawConfigFile()
	if err != nil {
		return nil, err
	}
	cb, err := b.RawConfigFile()
	if err != nil {
		return nil, err
	}
	if string(ca) != string(cb) {
		out = append(out, "image config differs")
	}
	la, err := a.Layers()
	if err != nil {
		return nil, err
	}
	lb, err := b.Layers()
	if err != nil {
		return nil, err
	}
	if len(la) != len(lb) {
		return append(out, fmt.Sprintf("layer count differs: %d vs %d", len(la), len(lb))), nil
	}
	for i := range la {
		da, _ := la[i].Digest()
		db, _ := lb[i].Digest()
		if da == db {
			continue
		}
		out = append(out, fmt.Sprintf("layer %d: %s vs %s", i, da, db))
		fa, err := layerIndex(la[i])
		if err != nil {
			return nil, err
		}
		fb, err := layerIndex(lb[i])
		if err != nil {
			return nil, err
		}
		var names []string
		for n := range fa {
			names = append(names, n)
		}
		for n := range fb {
			if _, ok := fa[n]; !ok {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		changed := 0
		for _, n := range names {
			if fa[n] != fb[n] {
				changed++
				out = append(out, fmt.Sprintf("  %s: %q vs %q", n, fa[n], fb[n]))
			}
		}
		if changed == 0 {
			out = append(out, "  same files and metadata: the compressed bytes differ (compressor)")
		}
	}
	return out, nil
}

// layerIndex describes each tar entry by its metadata and content hash.
func layerIndex(l v1.Layer) (map[string]string, error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	out := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		sum := sha256.New()
		if _, err := io.Copy(sum, tr); err != nil {
			return nil, err
		}
		out[h.Name] = fmt.Sprintf("type=%c mode=%o uid=%d gid=%d mtime=%d link=%s pax=%v sha256=%s",
			h.Typeflag, h.Mode, h.Uid, h.Gid, h.ModTime.Unix(), h.Linkname, h.PAXRecords, hex.EncodeToString(sum.Sum(nil))[:16])
	}
}
