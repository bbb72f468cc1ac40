package cuda

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/mlenv/mlenv/internal/testutil"
)

func TestScanImageStreamsLayers(t *testing.T) {
	tiny, err := os.ReadFile("../testdata/reference/fatbin/libtiny.so")
	if err != nil {
		t.Fatal(err)
	}
	only80 := string(testutil.MakeELF(map[string][]byte{".nv_fatbin": fixtureContainer(fixtureEntry(kindELF, 80, []byte("x"), false, 0))}))
	img, err := mutate.AppendLayers(empty.Image,
		testutil.TarLayer(t, []testutil.TarEntry{
			{Name: "usr/local/cuda/lib64/libcudart.so.12.4.127", Body: strings.Repeat("\x00", 100)},
			{Name: "usr/lib/libtiny.so", Body: string(tiny)},
			{Name: "usr/lib/libold.so", Body: only80},
			{Name: "usr/lib/libgone.so", Body: only80},
			{Name: "usr/lib/python3.11/os.py", Body: "# os"},
			{Name: "usr/local/lib/python3.11/site-packages/nvidia_cuda_runtime_cu12-12.4.127.dist-info/METADATA", Body: "Name: nvidia-cuda-runtime-cu12\n"},
			{Name: "usr/bin/not-elf", Body: strings.Repeat("#!/bin/sh\n", 10)},
		}),
		testutil.TarLayer(t, []testutil.TarEntry{{Name: "usr/lib/.wh.libgone.so", Body: ""}}),
	)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := ScanImage(img)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Files) != 2 || rep.Files["usr/lib/libtiny.so"] == nil || rep.Files["usr/lib/libgone.so"] != nil {
		t.Fatalf("files %v", rep.Files)
	}
	if strings.Join(rep.Summary.SASS, ",") != "sm_80,sm_90" || strings.Join(rep.Summary.PTX, ",") != "compute_90" {
		t.Errorf("summary %+v", rep.Summary)
	}
	if m := rep.Summary.Missing["usr/lib/libold.so"]; strings.Join(m, ",") != "sm_90" {
		t.Errorf("libold.so should lack sm_90: %v", rep.Summary.Missing)
	}
	if len(rep.CUDARuntime) != 2 || rep.CUDARuntime[0].Version != "12.4" || rep.CUDARuntime[1].Version != "12.4" {
		t.Errorf("cuda runtime %+v", rep.CUDARuntime)
	}
	if strings.Join(rep.Python, ",") != "3.11" {
		t.Errorf("python %v", rep.Python)
	}
}
