package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mlenv/mlenv/builder"
	"github.com/mlenv/mlenv/image"
	"github.com/mlenv/mlenv/internal/cas"
	"github.com/mlenv/mlenv/lockfile"
)

func newBuildCmd() *cobra.Command {
	var lockFile, output, cacheDir, format string
	var offline, checkRepro bool
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Build a reproducible OCI image from mlenv.lock",
		Long: `build assembles the image from the lock's content-addressed inputs alone: the
same lock gives the same digest on any machine. Artifacts are cached in
$XDG_CACHE_HOME/mlenv and verified against their sha256 before use.

The last line on stdout is the image (or index) digest; everything else goes to
stderr. With --output tar:- the tarball itself is stdout, so the digest is the
last line on stderr instead.

--output takes oci:DIR (an OCI image layout holding this image alone),
oci:DIR:TAG (the entry tagged TAG is replaced, others kept: what
skopeo copy oci:DIR:TAG and umoci unpack --image DIR:TAG read), tar:FILE
(docker load format; a FIFO or device is written in place, a symbolic link's
target is replaced), tar:- (stdout) or a registry reference.`,
		Example: `  mlenv build --output oci:./out                 # OCI image layout
  mlenv build --output oci:./out:v1              # tagged entry, for skopeo/umoci
  mlenv build --output tar:image.tar             # for docker load
  mlenv build --output tar:- | docker load       # digest on stderr
  mlenv build --output registry.example.com/team/train:v1
  mlenv build --offline --output oci:./out       # cache only, no network
  mlenv build --check-reproducible               # build twice, compare`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output == "" && !checkRepro {
				return fmt.Errorf("--output is required: oci:DIR[:TAG], tar:FILE, tar:- or a registry reference")
			}
			// Parsed before the build: a mistyped output must not cost one.
			var out image.Ref
			if output != "" {
				var err error
				if out, err = image.Parse(output); err != nil {
					return fmt.Errorf("--output: %w", err)
				}
			}
			toStdout := out.Kind == image.Tarball && out.Path == image.Stdio
			if toStdout && checkRepro && format == "json" {
				return fmt.Errorf("--output tar:- and --check-reproducible --format json both want stdout: write the tarball to a file")
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
				fmt.Fprintf(os.Stderr, "note: %s is not in canonical form; its digest is taken from the canonical form\n", lockFile)
			}
			if cacheDir == "" {
				if cacheDir, err = cas.DefaultDir(); err != nil {
					return err
				}
			}
			o := builder.Options{
				Lock: l, LockDigest: digest, BaseDir: filepath.Dir(lockFile),
				Cache: &cas.Cache{Dir: cacheDir}, Offline: offline,
			}
			if checkRepro {
				rep, err := builder.CheckReproducible(cmd.Context(), o)
				if err != nil {
					return err
				}
				if format == "json" {
					json.NewEncoder(cmd.OutOrStdout()).Encode(rep)
				} else if rep.Same {
					fmt.Fprintf(os.Stderr, "reproducible: both builds gave %s\n", rep.Digests[0])
				} else {
					fmt.Fprintf(os.Stderr, "NOT reproducible: %s vs %s\n%s\n", rep.Digests[0], rep.Digests[1], strings.Join(rep.Differences, "\n"))
				}
				if !rep.Same {
					return exitCode(1, fmt.Errorf("the two builds differ"))
				}
				if format != "json" && !toStdout {
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
			if err := builder.WriteTo(cmd.Context(), res, out, image.WriteOptions{Stdout: cmd.OutOrStdout()}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s\n", output)
			if toStdout {
				fmt.Fprintln(cmd.ErrOrStderr(), res.Digest.String())
				return nil
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.Digest.String())
			return nil
		},
	}
	cmd.Flags().StringVar(&lockFile, "lock", "mlenv.lock", "the lock to build")
	cmd.Flags().StringVar(&output, "output", "", "oci:DIR[:TAG], tar:FILE, tar:- (stdout) or a registry reference")
	cmd.Flags().StringVar(&cacheDir, "cache-dir", "", "artifact and layer cache (default $XDG_CACHE_HOME/mlenv)")
	cmd.Flags().BoolVar(&offline, "offline", false, "use only the cache; fail naming what is missing")
	cmd.Flags().BoolVar(&checkRepro, "check-reproducible", false, "build twice in separate temporary folders and compare")
	cmd.Flags().StringVar(&format, "format", "text", "with --check-reproducible: text or json report")
	return cmd
}
