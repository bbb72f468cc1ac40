package cuda

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"path"
	"regexp"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
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
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	files := map[string][]Entry{}
	runtimes := map[string]Runtime{}
	pythons := map[string]bool{}
	compat := false
	for i, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		err = scanLayer(rc, files, runtimes, pythons, &compat)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
	}
	rep := &ImageReport{Files: files, Summary: Summarize(files), CUDACompat: compat, Python: []string{}, CUDARuntime: []Runtime{}}
	for _, r := range runtimes {
		rep.CUDARuntime = append(rep.CUDARuntime, r)
	}
	sort.Slice(rep.CUDARuntime, func(i, j int) bool {
		return rep.CUDARuntime[i].Version+rep.CUDARuntime[i].Source < rep.CUDARuntime[j].Version+rep.CUDARuntime[j].Source
	})
	for p := range pythons {
		rep.Python = append(rep.Python, p)
	}
	sort.Strings(rep.Python)
	return rep, nil
}

func scanLayer(r io.Reader, files map[string][]Entry, runtimes map[string]Runtime, pythons map[string]bool, compat *bool) error {
	tr := tar.NewReader(r)
	head := make([]byte, 4)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		base := path.Base(name)
		// Whiteouts (OCI image spec): a later layer deletes a path, or
		// hides a whole folder.
		if base == ".wh..wh..opq" {
			dir := path.Dir(name) + "/"
			for p := range files {
				if strings.HasPrefix(p, dir) {
					delete(files, p)
				}
			}
			continue
		}
		if strings.HasPrefix(base, ".wh.") {
			gone := path.Join(path.Dir(name), strings.TrimPrefix(base, ".wh."))
			delete(files, gone)
			for p := range files {
				if strings.HasPrefix(p, gone+"/") {
					delete(files, p)
				}
			}
			continue
		}
		if m := pythonRe.FindStringSubmatch(name); m != nil {
			v := m[3]
			if v == "" {
				v = m[4]
			}
			pythons[v] = true
		}
		if m := cudartRe.FindStringSubmatch(name); m != nil {
			runtimes[m[2]+name] = Runtime{Version: m[2], Source: name}
		}
		if m := cudaWheelRe.FindStringSubmatch(name); m != nil {
			runtimes[m[3]+name] = Runtime{Version: m[3], Source: path.Dir(name)}
		}
		if compatRe.MatchString(name) {
			*compat = true
		}
		if h.Typeflag != tar.TypeReg || h.Size < 64 {
			continue
		}
		delete(files, name)
		if _, err := io.ReadFull(tr, head); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if !isELF(head) {
			continue
		}
		entries, err := ScanStream(io.MultiReader(bytes.NewReader(head), tr))
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if len(entries) > 0 {
			files[name] = entries
		}
	}
}
