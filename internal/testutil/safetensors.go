package testutil

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// WriteSafetensors writes a real safetensors file: an 8-byte little-endian
// header length, the JSON header (dtype F32, shape, data offsets per
// tensor) and the tensors' bytes. values fills tensor i with value
// seed+i*0.5 so two calls with other seeds give other weights.
func WriteSafetensors(t testing.TB, path string, tensors map[string][]int, seed float32) {
	t.Helper()
	names := make([]string, 0, len(tensors))
	for n := range tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	header := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	var data []byte
	for i, n := range names {
		count := 1
		for _, d := range tensors[n] {
			count *= d
		}
		start := len(data)
		for k := 0; k < count; k++ {
			data = binary.LittleEndian.AppendUint32(data, math.Float32bits(seed+float32(i)*0.5+float32(k)*0.001))
		}
		header[n] = map[string]any{"dtype": "F32", "shape": tensors[n], "data_offsets": []int{start, len(data)}}
	}
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	for len(h)%8 != 0 { // the format pads the header with spaces
		h = append(h, ' ')
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	out = append(append(out, h...), data...)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}
