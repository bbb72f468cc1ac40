// Package progress draws progress of long work on one status line. Libraries
// never decide where it goes: they take a Sink from the command, which draws
// on stderr when, and only when, stderr is a terminal (CI logs stay plain).
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// Reporter counts units of work (bytes, files) under a label and redraws one
// status line at most every 200ms. The zero value and nil are silent.
type Reporter struct {
	mu      sync.Mutex
	w       io.Writer
	label   string
	total   int64
	done    int64
	bytes   bool
	last    time.Time
	enabled bool
}

// Sink starts a Reporter for a piece of work; a nil Sink gives silent ones.
type Sink func(label string, total int64, bytes bool) *Reporter

// Start returns a Reporter for label; nil (silent) when s is nil.
func (s Sink) Start(label string, total int64, bytes bool) *Reporter {
	if s == nil {
		return nil
	}
	return s(label, total, bytes)
}

// To draws on w.
func To(w io.Writer) Sink {
	return func(label string, total int64, bytes bool) *Reporter {
		return &Reporter{w: w, label: label, total: total, bytes: bytes, enabled: true}
	}
}

// ForTerminal draws on f if it is a terminal, and is nil (silent) otherwise.
func ForTerminal(f *os.File) Sink {
	if !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return To(f)
}

// Add records n more units done.
func (r *Reporter) Add(n int64) {
	if r == nil || !r.enabled {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done += n
	if time.Since(r.last) < 200*time.Millisecond && r.done < r.total {
		return
	}
	r.last = time.Now()
	fmt.Fprintf(r.w, "\r\033[K%s %s", r.label, r.render())
}

// Done ends the status line.
func (r *Reporter) Done() {
	if r == nil || !r.enabled {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.w, "\r\033[K%s %s\n", r.label, r.render())
}

func (r *Reporter) render() string {
	if r.bytes {
		return fmt.Sprintf("%s / %s", human(r.done), human(r.total))
	}
	return fmt.Sprintf("%d / %d", r.done, r.total)
}

func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
