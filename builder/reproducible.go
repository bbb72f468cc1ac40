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

// SecondBuild makes the second build of a reproducibility check, ideally
// in a child process whose time zone, umask, locale, working folder,
// GOMAXPROCS and layer cache differ (the CLI re-executes itself), and
// returns its images per platform and its digest.
type SecondBuild func(ctx context.Context) (images map[string]v1.Image, digest v1.Hash, err error)

// CheckReproducible builds the lock as o says (this result is returned, for
// the caller to write) and compares it with a second, independent build. A
// nil second builds again in-process, varying what can be varied without
// touching process-wide state: a fresh layer cache in a temporary folder,
// one layer at a time, and the files walker's listing order reversed. If
// the digests differ, the report names the layers and files that differ.
func CheckReproducible(ctx context.Context, o Options, second SecondBuild) (*ReproReport, *Result, error) {
	first, err := Build(ctx, o)
	if err != nil {
		return nil, nil, fmt.Errorf("build 1: %w", err)
	}
	var images map[string]v1.Image
	var digest v1.Hash
	if second != nil {
		images, digest, err = second(ctx)
	} else {
		var dir string
		if dir, err = os.MkdirTemp("", "mlenv-repro-*"); err != nil {
			return nil, nil, err
		}
		defer os.RemoveAll(dir)
		o2 := o
		o2.LayerCache = &cas.Cache{Dir: dir}
		o2.Jobs = 1
		o2.ReverseListing = !o.ReverseListing
		o2.Progress = nil
		var r *Result
		if r, err = Build(ctx, o2); err == nil {
			images, digest = r.Images, r.Digest
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("build 2: %w", err)
	}
	rep := &ReproReport{Digests: [2]string{first.Digest.String(), digest.String()}}
	rep.Same = first.Digest == digest
	if rep.Same {
		return rep, first, nil
	}
	for _, p := range o.Lock.Platforms {
		if images[p] == nil {
			rep.Differences = append(rep.Differences, p+": missing from build 2")
			continue
		}
		diffs, err := compareImages(first.Images[p], images[p])
		if err != nil {
			return nil, nil, err
		}
		for _, d := range diffs {
			rep.Differences = append(rep.Differences, p+": "+d)
		}
	}
	return rep, first, nil
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
