package progress

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestSinkDrawsOnlyWhereTold(t *testing.T) {
	var nilSink Sink
	r := nilSink.Start("x", 10, false)
	r.Add(5) // a nil Reporter is silent and safe
	r.Done()

	var buf bytes.Buffer
	r = To(&buf).Start("fetching", 2048, true)
	r.Add(2048)
	r.Done()
	if !strings.Contains(buf.String(), "fetching 2.0 KiB / 2.0 KiB") {
		t.Errorf("drew %q", buf.String())
	}

	// A file that is not a terminal (CI's redirected stderr) gets nothing.
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if ForTerminal(f) != nil {
		t.Error("progress enabled on a plain file")
	}
}
