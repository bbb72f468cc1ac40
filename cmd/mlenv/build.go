package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/mlenv/mlenv/builder"
	"github.com/mlenv/mlenv/image"
	"github.com/mlenv/mlenv/internal/cas"
	"github.com/mlenv/mlenv/internal/progress"
	"github.com/mlenv/mlenv/lockfile"
)

func newBuildCmd() *cobra.Command {
	var lockFile, output, cacheDir, format string
	var offline, checkRepro bool
	var limits builder.Limits
	var allowOutside []string
	var verifyCache string
	var layerCacheDir string
	var reproSecond bool
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
			if verifyCache != "seal" && verifyCache != "full" {
				return exitCode(2, fmt.Errorf("--verify-cache %q: use seal or full", verifyCache))
			}
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
				if err := image.CheckOutput(out); err != nil {
					return err
				}
			}
			l, raw, err := lockfile.ReadLock(lockFile)
			if err != nil {
				return err
			}
			digest, err := l.Digest()
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
				Cache: &cas.Cache{Dir: cacheDir, FullVerify: verifyCache == "full"}, Offline: offline, Limits: limits,
				AllowOutside: allowOutside,
				// Progress only on a terminal: CI logs stay plain.
				Progress: progress.ForTerminal(os.Stderr),
			}
			if layerCacheDir != "" {
				o.LayerCache = &cas.Cache{Dir: layerCacheDir, FullVerify: verifyCache == "full"}
			}
			if reproSecond {
				applyReproUmask()
				// The second build of --check-reproducible (see
				// secondBuild): list source folders in reverse too.
				o.ReverseListing = true
				o.Progress = nil
			}
			if checkRepro {
				return checkReproducible(cmd, o, lockFile, cacheDir, output, out, format)
			}
			res, err := builder.Build(cmd.Context(), o)
			if err != nil {
				return err
			}
			if err := builder.WriteTo(cmd.Context(), res, out, image.WriteOptions{Stdout: cmd.OutOrStdout()}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s\n", output)
			printDigest(cmd, out, res.Digest.String())
			return nil
		},
	}
	cmd.Flags().StringVar(&lockFile, "lock", "mlenv.lock", "the lock to build")
	cmd.Flags().StringVar(&output, "output", "", "oci:DIR[:TAG], tar:FILE, tar:- (stdout) or a registry reference")
	cmd.Flags().StringVar(&cacheDir, "cache-dir", "", "artifact and layer cache (default $XDG_CACHE_HOME/mlenv)")
	cmd.Flags().BoolVar(&offline, "offline", false, "use only the cache; fail naming what is missing")
	cmd.Flags().BoolVar(&checkRepro, "check-reproducible", false, "build twice, the second time in a child process with another TZ, umask, locale, working folder, GOMAXPROCS, layer cache and listing order, and compare; --output gets the first build")
	cmd.Flags().StringVar(&layerCacheDir, "layer-cache-dir", "", "built layers (default: the cache folder)")
	cmd.Flags().BoolVar(&reproSecond, "repro-second", false, "internal: this is the second build of --check-reproducible")
	cmd.Flags().MarkHidden("layer-cache-dir")
	cmd.Flags().MarkHidden("repro-second")
	cmd.Flags().StringArrayVar(&allowOutside, "allow-outside", nil, "a folder outside the lock's folder that local inputs (files src, artifact paths) may come from (repeatable); by default they must lie inside it")
	cmd.Flags().Int64Var(&limits.ArchiveBytes, "max-archive-bytes", builder.DefaultArchiveBytes, "refuse a deb or wheel that unpacks to more bytes")
	cmd.Flags().Int64Var(&limits.ArchiveEntries, "max-archive-entries", builder.DefaultArchiveEntries, "refuse a deb or wheel with more entries")
	cmd.Flags().Int64Var(&limits.ImageBytes, "max-image-bytes", builder.DefaultImageBytes, "refuse when all packages of one image unpack to more bytes")
	cmd.Flags().Int64Var(&limits.ImageEntries, "max-image-entries", builder.DefaultImageEntries, "refuse when all packages of one image hold more entries")
	cmd.Flags().StringVar(&verifyCache, "verify-cache", "seal", "how cache hits are checked: seal (re-hash a blob whose inode changed since it was last hashed) or full (re-hash every hit)")
	cmd.Flags().StringVar(&format, "format", "text", "with --check-reproducible: text or json report")
	return cmd
}

// printDigest writes the built digest as stdout's last line, or as
// stderr's when the tarball itself is stdout (tar:-).
func printDigest(cmd *cobra.Command, out image.Ref, digest string) {
	if out.Kind == image.Tarball && out.Path == image.Stdio {
		fmt.Fprintln(cmd.ErrOrStderr(), digest)
		return
	}
	fmt.Fprintln(cmd.OutOrStdout(), digest)
}

// checkReproducible builds once in this process and once in a child (this
// same executable) whose environment differs in everything reprotest varies
// that can reach a build: time zone, umask, locale, working folder,
// GOMAXPROCS, layer cache path and the order folders are listed in. The
// first build is written to --output; stdout's last line is its digest.
func checkReproducible(cmd *cobra.Command, o builder.Options, lockFile, cacheDir, output string, out image.Ref, format string) error {
	work, err := os.MkdirTemp("", "mlenv-repro-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	rep, res, err := builder.CheckReproducible(cmd.Context(), o, secondBuild(cmd, o, lockFile, cacheDir, work))
	if err != nil {
		return err
	}
	if format == "json" {
		json.NewEncoder(cmd.ErrOrStderr()).Encode(rep)
	}
	if rep.Same {
		fmt.Fprintf(cmd.ErrOrStderr(), "reproducible: both builds gave %s\n", rep.Digests[0])
	} else {
		fmt.Fprintf(cmd.ErrOrStderr(), "NOT reproducible: %s vs %s\n%s\n", rep.Digests[0], rep.Digests[1], strings.Join(rep.Differences, "\n"))
	}
	if output != "" {
		if err := builder.WriteTo(cmd.Context(), res, out, image.WriteOptions{Stdout: cmd.OutOrStdout()}); err != nil {
			return err
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s (build 1)\n", output)
	}
	printDigest(cmd, out, rep.Digests[0])
	if !rep.Same {
		return exitCode(1, fmt.Errorf("the two builds differ"))
	}
	return nil
}

// secondBuild runs `mlenv build --repro-second` as a child process in work.
func secondBuild(cmd *cobra.Command, o builder.Options, lockFile, cacheDir, work string) builder.SecondBuild {
	return func(ctx context.Context) (map[string]v1.Image, v1.Hash, error) {
		exe, err := os.Executable()
		if err != nil {
			return nil, v1.Hash{}, fmt.Errorf("finding mlenv's own executable for the second build: %w", err)
		}
		lockAbs, err := filepath.Abs(lockFile)
		if err != nil {
			return nil, v1.Hash{}, err
		}
		cacheAbs, err := filepath.Abs(cacheDir)
		if err != nil {
			return nil, v1.Hash{}, err
		}
		out := filepath.Join(work, "out")
		args := []string{"build", "--repro-second", "--lock", lockAbs, "--cache-dir", cacheAbs,
			"--layer-cache-dir", filepath.Join(work, "layers"), "--output", "oci:" + out}
		if o.Offline {
			args = append(args, "--offline")
		}
		for _, a := range o.AllowOutside {
			if abs, err := filepath.Abs(a); err == nil {
				args = append(args, "--allow-outside", abs)
			}
		}
		child := exec.CommandContext(ctx, exe, args...)
		child.Dir = work
		procs := "1"
		if runtime.GOMAXPROCS(0) == 1 {
			procs = "4"
		}
		tz := "Pacific/Kiritimati" // UTC+14
		if os.Getenv("TZ") == tz {
			tz = "America/Adak"
		}
		child.Env = append(os.Environ(), "TZ="+tz, "LC_ALL=tr_TR.UTF-8", "LANG=tr_TR.UTF-8",
			"GOMAXPROCS="+procs, "MLENV_REPRO_UMASK=0077", "SOURCE_DATE_EPOCH="+os.Getenv("SOURCE_DATE_EPOCH"))
		var stderr strings.Builder
		child.Stderr = &stderr
		stdout, err := child.Output()
		if err != nil {
			return nil, v1.Hash{}, fmt.Errorf("second build (child process): %w\n%s", err, stderr.String())
		}
		lines := strings.Split(strings.TrimSpace(string(stdout)), "\n")
		digest, err := v1.NewHash(lines[len(lines)-1])
		if err != nil {
			return nil, v1.Hash{}, fmt.Errorf("second build printed no digest: %q", stdout)
		}
		images := map[string]v1.Image{}
		for _, p := range o.Lock.Platforms {
			want := p
			if len(o.Lock.Platforms) == 1 {
				want = ""
			}
			if images[p], err = image.ReadImage(ctx, "oci:"+out, want, image.Options{}); err != nil {
				return nil, v1.Hash{}, fmt.Errorf("reading the second build: %w", err)
			}
		}
		return images, digest, nil
	}
}
