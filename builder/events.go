package builder

import "sync/atomic"

// Events counts the work a build did, so that a caller (a test, a
// progress line) can tell a layer built now from one reused from the
// layer cache; a rebuild that rewrites the same cache entry is otherwise
// invisible. Safe for the build's parallel layer jobs.
type Events struct {
	LayersBuilt, LayersReused atomic.Int64
}

func (e *Events) built() {
	if e != nil {
		e.LayersBuilt.Add(1)
	}
}

func (e *Events) reused() {
	if e != nil {
		e.LayersReused.Add(1)
	}
}
