package layerwalk

import (
	"math/rand"
	"sort"
	"strings"
	"testing"
)

// The indexes answer exactly what Removes answers, one whiteout at a time,
// the root's opaque marker (Whiteout(".wh..wh..opq") is "./") included;
// a removed path is no longer found.
func TestIndexesAgreeWithRemoves(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	names := []string{"a", "b", "ab", "c"}
	randPath := func() string {
		n := 1 + rng.Intn(4)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = names[rng.Intn(len(names))]
		}
		return strings.Join(parts, "/")
	}
	for round := 0; round < 200; round++ {
		type wo struct {
			removed string
			opaque  bool
		}
		var wos []wo
		var set Whiteouts
		for i := rng.Intn(4); i > 0; i-- {
			w := wo{randPath(), rng.Intn(3) == 0}
			if w.opaque {
				w.removed += "/"
			}
			if rng.Intn(40) == 0 {
				w = wo{"./", true}
			}
			wos = append(wos, w)
			set.Add(w.removed, w.opaque)
		}
		var idx Paths
		var paths []string
		for i := 0; i < 20; i++ {
			p := randPath()
			paths = append(paths, p)
			idx.Add(p)
		}
		for _, p := range paths {
			want := false
			for _, w := range wos {
				want = want || Removes(w.removed, w.opaque, p)
			}
			if got := set.Removes(p); got != want {
				t.Fatalf("Whiteouts%v.Removes(%q) = %v, want %v", wos, p, got, want)
			}
		}
		for _, w := range wos {
			var want, got []string
			seen := map[string]bool{}
			for _, p := range paths {
				if !seen[p] && Removes(w.removed, w.opaque, p) && p != w.removed {
					want = append(want, p)
				}
				seen[p] = true
			}
			idx.Hidden(w.removed, w.opaque, func(p string) {
				if seen[p] && p != w.removed { // recorded paths only, not implied folders
					got = append(got, p)
				}
			})
			sort.Strings(want)
			sort.Strings(got)
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("Below(%q) = %v, want %v", w.removed, got, want)
			}
		}
	}
}

func TestPathsRemove(t *testing.T) {
	var idx Paths
	for _, p := range []string{"a/b/c", "a/b/d", "top"} {
		idx.Add(p)
	}
	idx.Remove("a/b/c")
	idx.Remove("top")
	var got []string
	idx.Hidden("./", true, func(p string) { got = append(got, p) })
	sort.Strings(got)
	if strings.Join(got, ",") != "a,a/b,a/b/d" {
		t.Fatalf("after removing a/b/c and top, the root holds %v", got)
	}
}
