package lockfile

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// withCompression writes examples/minimal's lock with another
// compression object and loads it.
func withCompression(t *testing.T, comp map[string]any) (*Lock, error) {
	t.Helper()
	b, err := os.ReadFile("../examples/minimal/mlenv.lock")
	if err != nil {
		t.Fatal(err)
	}
	var l map[string]any
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatal(err)
	}
	l["compression"] = comp
	b, _ = json.Marshal(l)
	p := filepath.Join(t.TempDir(), "mlenv.lock")
	os.WriteFile(p, b, 0o644)
	return LoadLock(p)
}

func TestCompressionLayout(t *testing.T) {
	// A lock written before layouts existed keeps its bytes (and digest).
	raw, err := os.ReadFile("../examples/minimal/mlenv.lock")
	if err != nil {
		t.Fatal(err)
	}
	old, err := LoadLock("../examples/minimal/mlenv.lock")
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := old.Encode()
	if !bytes.Equal(bytes.TrimSpace(enc), bytes.TrimSpace(raw)) || bytes.Contains(enc, []byte("layout")) {
		t.Errorf("an old lock does not encode to its own bytes:\n%s", enc)
	}
	if old.Compression.Layout != "" {
		t.Errorf("old lock layout %q", old.Compression.Layout)
	}

	l, err := withCompression(t, map[string]any{"algorithm": "gzip", "level": 1, "layout": LayoutSplice})
	if err != nil || l.Compression.Layout != LayoutSplice {
		t.Fatalf("splice layout: %v, %+v", err, l)
	}
	for _, c := range []struct {
		comp map[string]any
		want string
	}{
		{map[string]any{"algorithm": "gzip", "level": 1, "layout": "splice-v9"}, `compression.layout: "splice-v9" is not a known layout`},
		{map[string]any{"algorithm": "zstd", "level": 3, "layout": LayoutSplice}, "needs gzip"},
	} {
		if _, err := withCompression(t, c.comp); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want it to say %q", c.comp, err, c.want)
		}
	}

	if d := DefaultCompression("gzip"); d.Layout != LayoutSplice || d.Level != 1 {
		t.Errorf("new gzip locks get %+v", d)
	}
	if d := DefaultCompression("zstd"); d.Layout != "" {
		t.Errorf("new zstd locks get %+v", d)
	}

	// Relocking keeps the layout the existing lock pins, unless the
	// compressor itself changes.
	fresh := func() *Lock { return &Lock{Compression: DefaultCompression("gzip")} }
	n := fresh()
	n.KeepLayout(old)
	if n.Compression.Layout != "" {
		t.Errorf("relocking an old lock changed its layout to %q", n.Compression.Layout)
	}
	n = fresh()
	n.KeepLayout(nil)
	if n.Compression.Layout != LayoutSplice {
		t.Errorf("a new lock got layout %q", n.Compression.Layout)
	}
	n = fresh()
	n.KeepLayout(&Lock{Compression: Compression{Algorithm: "zstd", Level: 3}})
	if n.Compression.Layout != LayoutSplice {
		t.Errorf("switching from zstd kept layout %q", n.Compression.Layout)
	}
}
