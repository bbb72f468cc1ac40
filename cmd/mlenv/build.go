package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mlenv/mlenv/builder"
	"github.com/mlenv/mlenv/internal/cas"
	"github.com/mlenv/mlenv/internal/progress"
	"github.com/mlenv/mlenv/lockfile"
)

func newBuildCmd() *cobra.Command {
	var lockFile, output, cacheDir, format string
	var offline, checkRepro bool
	var allowOutside []string
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Build a reproducible OCI image from mlenv.lock",
		Long: `build assembles the image from the lock's content-addressed inputs alone: the
same lock gives the same digest on any machine. Artifacts are cached in
$XDG_CACHE_HOME/mlenv and verified against their sha256 before use.

The last line on stdout is the image (or index) digest; everything else goes to
stderr.`,
		Example: `  mlenv build --output oci:./out                 # OCI image layout
  mlenv build --output tar:image.tar             # for docker load
  mlenv build --output registry.example.com/team/train:v1
  mlenv build --offline --output oci:./out       # cache only, no network
  mlenv build --check-reproducible               # build twice, compare`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output == "" && !checkRepro {
				return fmt.Errorf("--output is required: oci:DIR, tar:FILE or a registry reference")
			}
			l, err := lockfile.LoadLock(lockFile)
			if err != nil {
				return err
			}
			digest, err := l.Digest()
			if err != nil {
				return err
			}
			raw, err := os.ReadFile(lockFile)
			if err != nil {
				return err
			}
			if enc, _ := l.Encode(); string(enc) != string(raw) {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: %s is not in canonical form; its digest is taken from the canonical form\n", lockFile)
			}
			if cacheDir == "" {
				if cacheDir, err = cas.DefaultDir(); err != nil {
					return err
				}
			}
			o := builder.Options{
				Lock: l, LockDigest: digest, BaseDir: filepath.Dir(lockFile),
				Cache: &cas.Cache{Dir: cacheDir}, Offline: offline,
				AllowOutside: allowOutside,
				// Progress only on a terminal: CI logs stay plain.
				Progress: progress.ForTerminal(os.Stderr),
			}
			if checkRepro {
				rep, err := builder.CheckReproducible(cmd.Context(), o)
				if err != nil {
					return err
				}
				if format == "json" {
					json.NewEncoder(cmd.OutOrStdout()).Encode(rep)
				} else if rep.Same {
					fmt.Fprintf(cmd.ErrOrStderr(), "reproducible: both builds gave %s\n", rep.Digests[0])
				} else {
					fmt.Fprintf(cmd.ErrOrStderr(), "NOT reproducible: %s vs %s\n%s\n", rep.Digests[0], rep.Digests[1], strings.Join(rep.Differences, "\n"))
				}
				if !rep.Same {
					return exitCode(1, fmt.Errorf("the two builds differ"))
				}
				if format != "json" {
					fmt.Fprintln(cmd.OutOrStdout(), rep.Digests[0])
				}
				if output == "" {
					return nil
				}
			}
			res, err := builder.Build(cmd.Context(), o)
			if err != nil {
				return err
			}
			if err := builder.Write(cmd.Context(), res, output); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s\n", output)
			fmt.Fprintln(cmd.OutOrStdout(), res.Digest.String())
			return nil
		},
	}
	cmd.Flags().StringVar(&lockFile, "lock", "mlenv.lock", "the lock to build")
	cmd.Flags().StringVar(&output, "output", "", "oci:DIR, tar:FILE or a registry reference")
	cmd.Flags().StringVar(&cacheDir, "cache-dir", "", "artifact and layer cache (default $XDG_CACHE_HOME/mlenv)")
	cmd.Flags().BoolVar(&offline, "offline", false, "use only the cache; fail naming what is missing")
	cmd.Flags().BoolVar(&checkRepro, "check-reproducible", false, "build twice in separate temporary folders and compare")
	cmd.Flags().StringArrayVar(&allowOutside, "allow-outside", nil, "a folder outside the lock's folder that local inputs (files src, artifact paths) may come from (repeatable); by default they must lie inside it")
	cmd.Flags().StringVar(&format, "format", "text", "with --check-reproducible: text or json report")
	return cmd
}
