package lockfile

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"strings"
)

// PyDecision says why one package of a Python lock file is or is not
// installed on one target: what `mlenv lock --explain` prints.
type PyDecision struct {
	Source    string // the lock file
	Package   string
	Version   string
	Platform  string // linux/amd64
	Python    string // 3.11
	Installed bool
	// Reason: the edge that brought it in (and its marker), or the
	// marker, fork, group, extra or wheel tags that kept it out.
	Reason string
	Wheel  string // the wheel chosen, when installed
	// Skipped marks the project's own code (roots, directories): not
	// installed from the lock, and noted rather than explained per target.
	Skipped bool
}

// lineIndex finds lines in a TOML file by table headers, since go-toml's
// decoder keeps no positions for array elements.
type lineIndex struct {
	data   []byte
	starts []int // byte offset of each line
	tables []int // 1-based line of each [[header]] occurrence, in order
}

func newLineIndex(data []byte, header string) *lineIndex {
	ix := &lineIndex{data: data, starts: []int{0}}
	for i, c := range data {
		if c == '\n' {
			ix.starts = append(ix.starts, i+1)
		}
	}
	for n, s := range ix.starts {
		end := len(data)
		if n+1 < len(ix.starts) {
			end = ix.starts[n+1]
		}
		if string(bytes.TrimSpace(data[s:end])) == header {
			ix.tables = append(ix.tables, n+1)
		}
	}
	return ix
}

// table is the line of the i-th [[header]], or 0.
func (ix *lineIndex) table(i int) int {
	if i < len(ix.tables) {
		return ix.tables[i]
	}
	return 0
}

// find is the first line at or after table i (and before table i+1)
// that contains needle; the table's own line when none does.
func (ix *lineIndex) find(i int, needle string) int {
	start := ix.table(i)
	if start == 0 {
		return 0
	}
	stop := len(ix.starts)
	if i+1 < len(ix.tables) {
		stop = ix.tables[i+1] - 1
	}
	for n := start - 1; n < stop; n++ {
		end := len(ix.data)
		if n+1 < len(ix.starts) {
			end = ix.starts[n+1]
		}
		if bytes.Contains(ix.data[ix.starts[n]:end], []byte(needle)) {
			return n + 1
		}
	}
	return start
}

// WriteExplanation prints decisions grouped by package, one line per
// target: the human form of `mlenv lock --explain`.
func WriteExplanation(w io.Writer, ds []PyDecision) {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		if a.Source != b.Source {
			return a.Source < b.Source
		}
		if NormalizeName(a.Package) != NormalizeName(b.Package) {
			return NormalizeName(a.Package) < NormalizeName(b.Package)
		}
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		return a.Platform < b.Platform
	})
	last := ""
	for _, d := range ds {
		head := d.Source + ": " + d.Package + " " + d.Version
		if head != last {
			fmt.Fprintln(w, head)
			last = head
		}
		state := "out"
		if d.Installed {
			state = "in "
		}
		line := fmt.Sprintf("  %s python %s: %s  %s", d.Platform, d.Python, state, d.Reason)
		if d.Wheel != "" {
			line += " -> " + d.Wheel
		}
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
}
