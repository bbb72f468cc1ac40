package builder

import (
	"fmt"
	"sync/atomic"
)

// Limits bound what the archives of one build may unpack to, so that a
// small hostile package (a compression bomb, a zip whose entries share one
// stream) ends in an error instead of filling memory or disk. Zero fields
// take the defaults below.
type Limits struct {
	// ArchiveBytes and ArchiveEntries bound one deb or wheel.
	ArchiveBytes, ArchiveEntries int64
	// ImageBytes and ImageEntries bound all archives of one image
	// (one platform), layer cache hits excluded.
	ImageBytes, ImageEntries int64
}

// Default limits: far above any real package (the largest CUDA wheels
// unpack to a few GiB and some ten thousand files).
const (
	DefaultArchiveBytes   = 64 << 30
	DefaultArchiveEntries = 1_000_000
	DefaultImageBytes     = 256 << 30
	DefaultImageEntries   = 4_000_000
)

func (l Limits) withDefaults() Limits {
	def := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.ArchiveBytes, DefaultArchiveBytes)
	def(&l.ArchiveEntries, DefaultArchiveEntries)
	def(&l.ImageBytes, DefaultImageBytes)
	def(&l.ImageEntries, DefaultImageEntries)
	return l
}

// LimitError is an archive that unpacks to more than a limit allows.
type LimitError struct {
	Owner, What string
	Limit       int64
	Flag        string
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("%s: unpacks to more than %d %s (%s): refused; raise the limit with %s if the package is genuine", e.Owner, e.Limit, e.What, e.scope(), e.Flag)
}

func (e *LimitError) scope() string {
	if e.Flag == "--max-image-bytes" || e.Flag == "--max-image-entries" {
		return "limit for all packages of one image"
	}
	return "limit per package"
}

// budget counts what one image's archives unpacked so far; layers are
// built in parallel, so the counters are atomic.
type budget struct {
	lim            Limits
	bytes, entries atomic.Int64
}

func newBudget(l Limits) *budget { return &budget{lim: l.withDefaults()} }

// archive starts counting one archive against the image's budget.
func (b *budget) archive(owner string) *archiveBudget {
	return &archiveBudget{b: b, owner: owner}
}

type archiveBudget struct {
	b              *budget
	owner          string
	bytes, entries int64
}

// add charges entries and bytes, failing once a limit is passed.
func (a *archiveBudget) add(entries, bytes int64) error {
	a.entries += entries
	a.bytes += bytes
	l := a.b.lim
	switch {
	case a.entries > l.ArchiveEntries:
		return &LimitError{a.owner, "entries", l.ArchiveEntries, "--max-archive-entries"}
	case a.bytes > l.ArchiveBytes:
		return &LimitError{a.owner, "bytes", l.ArchiveBytes, "--max-archive-bytes"}
	case a.b.entries.Add(entries) > l.ImageEntries:
		return &LimitError{a.owner, "entries", l.ImageEntries, "--max-image-entries"}
	case a.b.bytes.Add(bytes) > l.ImageBytes:
		return &LimitError{a.owner, "bytes", l.ImageBytes, "--max-image-bytes"}
	}
	return nil
}
