package layerwalk

import (
	"path"
	"strings"
)

// A whiteout hides a path and everything below it. Checking each whiteout
// against every path seen (or each path against every whiteout) is
// quadratic: an image of many files and many whiteouts took minutes. These
// two indexes make each question cost the depth of one path, or the size
// of what a whiteout really removes.

// Whiteouts is a set of whiteouts: Removes(p) says whether any of them
// hides p, as Removes(removed, opaque, p) would for one of them.
type Whiteouts struct {
	exact map[string]bool // a removed path itself
	under map[string]bool // a folder whose content is removed
}

// Add records one whiteout, as layerwalk.Whiteout returned it (an opaque
// one's path ends in "/").
func (w *Whiteouts) Add(removed string, opaque bool) {
	if w.exact == nil {
		w.exact, w.under = map[string]bool{}, map[string]bool{}
	}
	if opaque {
		w.under[whiteoutDir(removed)] = true
		return
	}
	w.exact[removed] = true
	w.under[removed] = true
}

// Len is the number of distinct whiteouts recorded.
func (w *Whiteouts) Len() int { return len(w.under) }

// Removes says whether one of the whiteouts hides p.
func (w *Whiteouts) Removes(p string) bool {
	if len(w.under) == 0 {
		return false
	}
	if w.exact[p] {
		return true
	}
	for d := path.Dir(p); ; d = path.Dir(d) {
		if d == "." || d == "/" {
			return w.under[""] // an opaque whiteout of the root
		}
		if w.under[d] {
			return true
		}
	}
}

// Paths indexes paths by folder, so that what a whiteout removes is found
// by walking the removed subtree, not every path.
type Paths struct {
	children map[string]map[string]struct{} // folder ("" is the root) -> direct children
}

// Add records p and its parent folders.
func (x *Paths) Add(p string) {
	if x.children == nil {
		x.children = map[string]map[string]struct{}{}
	}
	for {
		d := parentDir(p)
		s := x.children[d]
		if s == nil {
			s = map[string]struct{}{}
			x.children[d] = s
		}
		if _, ok := s[p]; ok {
			return // its parents are recorded already
		}
		s[p] = struct{}{}
		if d == "" {
			return
		}
		p = d
	}
}

// Below calls f for every recorded path under folder dir ("" is the root),
// dir itself excluded.
func (x *Paths) Below(dir string, f func(p string)) {
	stack := []string{dir}
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for c := range x.children[d] {
			f(c)
			stack = append(stack, c)
		}
	}
}

// Remove forgets p (its folders stay recorded: Below may still name
// them, and callers look each path up in what they hold anyway).
func (x *Paths) Remove(p string) {
	delete(x.children[parentDir(p)], p)
}

// Hidden calls f with the paths one whiteout (as Whiteout returned it)
// hides: the removed path itself, whether recorded or not, unless the
// whiteout is opaque, then every recorded path below it. A root-level
// opaque marker hides everything.
func (x *Paths) Hidden(removed string, opaque bool, f func(p string)) {
	if !opaque {
		f(removed)
	}
	x.Below(whiteoutDir(removed), f)
}

// parentDir is p's folder as Paths keys it: "" for the root.
func parentDir(p string) string {
	d := path.Dir(p)
	if d == "." || d == "/" {
		return ""
	}
	return d
}

// whiteoutDir is the folder a whiteout's removed path names, as both
// indexes key it: an opaque one's trailing "/" dropped, and the root's
// opaque marker ("./") as "", where Removes and Below look the root up.
func whiteoutDir(removed string) string {
	d := strings.TrimSuffix(removed, "/")
	if d == "." {
		return ""
	}
	return d
}
