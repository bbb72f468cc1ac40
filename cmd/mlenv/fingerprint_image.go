package main

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/mlenv/mlenv/cuda"
	"github.com/mlenv/mlenv/image"
)

// fingerprintImage prints the GPU side of an image: fat binary targets per
// library, their union, the CUDA runtime and Python it ships.
func fingerprintImage(cmd *cobra.Command, arg, platform, output string) error {
	img, err := image.ReadImage(cmd.Context(), arg, platform, image.Options{})
	if err != nil {
		return err
	}
	rep, err := cuda.ScanImage(img)
	if err != nil {
		return fmt.Errorf("scanning %s: %w", arg, err)
	}
	if output == "json" {
		return printJSON(cmd.OutOrStdout(), rep)
	}
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintf(w, "sass\t%s\n", orNone(rep.Summary.SASS))
	fmt.Fprintf(w, "ptx\t%s\n", orNone(rep.Summary.PTX))
	var rts []string
	for _, r := range rep.CUDARuntime {
		rts = append(rts, r.Version+" ("+r.Source+")")
	}
	fmt.Fprintf(w, "cuda runtime\t%s\n", orNone(rts))
	fmt.Fprintf(w, "cuda-compat\t%v\n", rep.CUDACompat)
	fmt.Fprintf(w, "python\t%s\n", orNone(rep.Python))
	paths := make([]string, 0, len(rep.Files))
	for p := range rep.Files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		sass, ptx := map[string]bool{}, map[string]bool{}
		for _, e := range rep.Files[p] {
			if e.Relocatable {
				continue
			}
			if e.Kind == "sass" {
				sass[e.Arch] = true
			} else {
				ptx[e.Arch] = true
			}
		}
		fmt.Fprintf(w, "%s\t%d entries; sass %s; ptx %s\n", p, len(rep.Files[p]), orNone(cuda.SortedTargets(sass)), orNone(cuda.SortedTargets(ptx)))
		if m := rep.Summary.Missing[p]; len(m) > 0 {
			fmt.Fprintf(w, "\tlacks %s (other libraries have it)\n", strings.Join(m, " "))
		}
	}
	return nil
}

func orNone(list []string) string {
	if len(list) == 0 {
		return "(none)"
	}
	return strings.Join(list, ", ")
}
