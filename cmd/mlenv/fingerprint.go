package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/mlenv/mlenv/fingerprint"
)

func newFingerprintCmd() *cobra.Command {
	var output, image, platform string
	cmd := &cobra.Command{
		Use:   "fingerprint",
		Short: "Describe this host (GPU, driver, CPU ISA, OS, numerics env) or an image's GPU code",
		Long: `fingerprint captures what decides whether an ML workload runs and reproduces on
this host: NVIDIA driver and CUDA version, each GPU's architecture and compute
capability, MIG and ECC modes (through NVML), the CPU's instruction set (CPUID),
the OS and C library, and the environment variables that change numerics.

The JSON form carries an "id": the sha256 of the fields that matter for matching
(no serial numbers, no free memory, no timestamps). A host without a GPU gives a
valid fingerprint that says why no GPU could be read, and exits 0.

With --image, it describes an image instead: the CUDA code its libraries carry.`,
		Example: `  mlenv fingerprint
  mlenv fingerprint --output json > host.json
  mlenv fingerprint --image oci:./out --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if image != "" {
				return fingerprintImage(cmd, image, platform, output)
			}
			fp := fingerprint.Capture(fingerprint.Options{})
			switch output {
			case "json":
				b, err := fp.JSON()
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(b)
				return err
			case "text", "":
				printFingerprint(cmd.OutOrStdout(), fp)
				return nil
			}
			return fmt.Errorf("--output %q: use text or json", output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	cmd.Flags().StringVar(&image, "image", "", "describe an image (REF, oci:DIR or tar:FILE) instead of this host")
	cmd.Flags().StringVar(&platform, "platform", "", "with --image: the platform to read from a multi-platform index (e.g. linux/arm64)")
	return cmd
}

func printFingerprint(w io.Writer, fp *fingerprint.Fingerprint) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	defer tw.Flush()
	fmt.Fprintf(tw, "id\t%s\n", fp.ID)
	if fp.GPU.Available {
		fmt.Fprintf(tw, "driver\t%s (CUDA %s, NVML %s)\n", fp.GPU.DriverVersion, fp.GPU.CUDADriverVersion, fp.GPU.NVMLVersion)
		for _, d := range fp.GPU.Devices {
			mig, ecc := "off", "off"
			if d.MIG != nil && d.MIG.Current {
				mig = fmt.Sprintf("on (%d instances)", len(d.MIGDevices))
			}
			if d.ECC != nil && d.ECC.Current {
				ecc = "on"
			}
			fmt.Fprintf(tw, "gpu %d\t%s, %s, compute %s, %.0f GiB, MIG %s, ECC %s\n", d.Index, d.Name, d.Architecture,
				d.ComputeCapability, float64(d.MemoryTotalBytes)/(1<<30), mig, ecc)
			if len(d.Unavailable) > 0 {
				var parts []string
				for k, v := range d.Unavailable {
					parts = append(parts, k+": "+v)
				}
				fmt.Fprintf(tw, "\tunreadable: %s\n", strings.Join(parts, ", "))
			}
		}
	} else {
		fmt.Fprintf(tw, "gpu\tnone readable: %s\n", fp.GPU.Reason)
	}
	level := ""
	if fp.CPU.X86Level > 0 {
		level = fmt.Sprintf(", x86-64-v%d", fp.CPU.X86Level)
	}
	fmt.Fprintf(tw, "cpu\t%s (%s family %d model %d%s), %d cores / %d threads\n", fp.CPU.Brand, fp.CPU.Vendor,
		fp.CPU.Family, fp.CPU.Model, level, fp.CPU.PhysicalCores, fp.CPU.LogicalCores)
	fmt.Fprintf(tw, "math isa\t%s\n", strings.Join(fp.CPU.NumericsFeatures, " "))
	glibc := fp.OS.Glibc
	if glibc == "" {
		glibc = "unknown"
	}
	fmt.Fprintf(tw, "os\t%s, kernel %s, glibc %s\n", fp.OS.Distribution.PrettyName, fp.OS.Kernel, glibc)
	if fp.OS.Container.InContainer {
		fmt.Fprintf(tw, "container\t%s (kubernetes: %v)\n", fp.OS.Container.Runtime, fp.OS.Container.Kubernetes)
	}
	if len(fp.Env) == 0 {
		fmt.Fprintf(tw, "numerics env\t(none set)\n")
	}
	for _, k := range fingerprint.NumericsEnv {
		if v, ok := fp.Env[k]; ok {
			fmt.Fprintf(tw, "env\t%s=%s\n", k, v)
		}
	}
}
