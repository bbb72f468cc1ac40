package cuda

import (
	"archive/tar"
	"bytes"
	"io"
	"path"
	"regexp"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/mlenv/mlenv/internal/layerwalk"
)

// ImageReport is the GPU side of an image: the CUDA code its files carry,
// the CUDA runtime it ships, and its Python.
type ImageReport struct {
	// Files maps each ELF file with GPU code to its entries.
	Files   map[string][]Entry `json:"files"`
	Summary Summary            `json:"summary"`
	// CUDARuntime lists the CUDA runtime versions found, with where.
	CUDARuntime []Runtime `json:"cudaRuntime"`
	// CUDACompat is true when the forward-compatibility package
	// (libcuda from cuda-compat) is present.
	CUDACompat bool     `json:"cudaCompat"`
	Python     []string `json:"python"`
}

// Runtime is a CUDA runtime version and its evidence.
type Runtime struct {
	Version string `json:"version"`
	Source  string `json:"source"`
}

var (
	cudartRe    = regexp.MustCompile(`(^|/)libcudart\.so\.(\d+\.\d+)(\.\d+)?$`)
	cudaWheelRe = regexp.MustCompile(`(^|/)nvidia_cuda_runtime(_cu\d+)?-(\d+\.\d+)[^/]*\.dist-info/METADATA$`)
	pythonRe    = regexp.MustCompile(`^(usr/|usr/local/|opt/conda/)?(bin/python(3\.\d+)|lib/python(3\.\d+)/)`)
	compatRe    = regexp.MustCompile(`(^|/)cuda(-[\d.]+)?/compat/libcuda\.so`)
)

// ScanImage streams every layer of img once, applying whiteouts, and
// reports the GPU code of the files that remain.
func ScanImage(img v1.Image) (*ImageReport, error) {
	s := NewImageScanner()
	if err := layerwalk.Walk(img, s); err != nil {
		return nil, err
	}
	return s.Report(), nil
}

// ImageScanner is the layer visitor behind ScanImage, for callers that
// walk an image once for several purposes.
type ImageScanner struct {
	files    map[string][]Entry
	runtimes map[string]Runtime
	pythons  map[string]bool
	compat   bool
	head     []byte
}

// NewImageScanner starts an empty scan.
func NewImageScanner() *ImageScanner {
	return &ImageScanner{files: map[string][]Entry{}, runtimes: map[string]Runtime{}, pythons: map[string]bool{}, head: make([]byte, 4)}
}

// Report is what the scan found.
func (s *ImageScanner) Report() *ImageReport {
	rep := &ImageReport{Files: s.files, Summary: Summarize(s.files), CUDACompat: s.compat, Python: []string{}, CUDARuntime: []Runtime{}}
	for _, r := range s.runtimes {
		rep.CUDARuntime = append(rep.CUDARuntime, r)
	}
	sort.Slice(rep.CUDARuntime, func(i, j int) bool {
		return rep.CUDARuntime[i].Version+rep.CUDARuntime[i].Source < rep.CUDARuntime[j].Version+rep.CUDARuntime[j].Source
	})
	for p := range s.pythons {
		rep.Python = append(rep.Python, p)
	}
	sort.Strings(rep.Python)
	return rep
}

// Visit implements layerwalk.Visitor: ELF files are scanned as they
// stream by; everything else is judged by its name.
func (s *ImageScanner) Visit(_ int, name string, h *tar.Header, body io.Reader) (bool, error) {
	if removed, opaque, ok := layerwalk.Whiteout(name); ok {
		for p := range s.files {
			if layerwalk.Removes(removed, opaque, p) {
				delete(s.files, p)
			}
		}
		return false, nil
	}
	if m := pythonRe.FindStringSubmatch(name); m != nil {
		v := m[3]
		if v == "" {
			v = m[4]
		}
		s.pythons[v] = true
	}
	if m := cudartRe.FindStringSubmatch(name); m != nil {
		s.runtimes[m[2]+name] = Runtime{Version: m[2], Source: name}
	}
	if m := cudaWheelRe.FindStringSubmatch(name); m != nil {
		s.runtimes[m[3]+name] = Runtime{Version: m[3], Source: path.Dir(name)}
	}
	if compatRe.MatchString(name) {
		s.compat = true
	}
	if h.Typeflag != tar.TypeReg || h.Size < 64 || body == nil {
		return false, nil
	}
	delete(s.files, name)
	if _, err := io.ReadFull(body, s.head); err != nil {
		return true, err
	}
	if !isELF(s.head) {
		return true, nil
	}
	entries, err := ScanStream(io.MultiReader(bytes.NewReader(s.head), body))
	if err != nil {
		return true, err
	}
	if len(entries) > 0 {
		s.files[name] = entries
	}
	return true, nil
}
