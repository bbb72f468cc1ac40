package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/mlenv/mlenv/internal/atomicfile"
	"github.com/mlenv/mlenv/internal/cas"
	"github.com/mlenv/mlenv/lockfile"
)

func newLockCmd() *cobra.Command {
	var intentFile, lockFile string
	var check, explain bool
	var allowOutside []string
	cmd := &cobra.Command{
		Use:   "lock",
		Short: "Pin every input of mlenv.yaml into mlenv.lock",
		Long: `lock reads the intent (mlenv.yaml) and writes mlenv.lock, where the base image is
a digest and every wheel, deb and file set has a URI, a sha256 and a size. It pins;
it does not resolve Python dependencies: give it pylock.toml, uv.lock or a
requirements file with --hash.

SOURCE_DATE_EPOCH, when set and not empty, becomes the lock's epoch and
overrides the intent's; a value that is not a whole number of seconds is an
error. mlenv build ignores the variable: the epoch comes from the lock.`,
		Example: `  mlenv lock                      # mlenv.yaml -> mlenv.lock
  mlenv lock -f env/mlenv.yaml -o env/mlenv.lock
  mlenv lock --check              # exit 1 if mlenv.lock no longer matches mlenv.yaml
  mlenv lock --explain            # also say why each Python package is in or out, per platform
  mlenv lock --allow-outside ../shared-wheels   # let local inputs come from one more folder`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, err := lockfile.LoadIntent(intentFile)
			if err != nil {
				return err
			}
			if lockFile == "" {
				lockFile = filepath.Join(in.Dir, "mlenv.lock")
			}
			if filepath.Clean(filepath.Dir(lockFile)) != filepath.Clean(in.Dir) {
				return fmt.Errorf("the lock must sit in the same folder as %s (its relative paths start there)", intentFile)
			}
			cacheDir, err := cas.DefaultDir()
			if err != nil {
				return err
			}
			r := &lockfile.Resolver{
				Fetcher: &cas.Fetcher{Cache: &cas.Cache{Dir: cacheDir}, BaseDir: in.Dir},
				Warn:    func(s string) { fmt.Fprintln(cmd.ErrOrStderr(), "warning:", s) },
				// Local inputs stay inside the intent's folder unless
				// the user opts another folder in.
				AllowOutside: allowOutside,
			}
			var decisions []lockfile.PyDecision
			if explain {
				r.Explain = func(d lockfile.PyDecision) { decisions = append(decisions, d) }
			}
			// SOURCE_DATE_EPOCH overrides the intent's epoch here, and
			// only here: the build takes the epoch from the lock.
			if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
				e, err := lockfile.ParseSourceDateEpoch(v)
				if err != nil {
					return err
				}
				r.Epoch = &e
			}
			l, err := r.Resolve(cmd.Context(), in)
			if err != nil {
				return err
			}
			if explain {
				lockfile.WriteExplanation(cmd.ErrOrStderr(), decisions)
			}
			if prev, err := lockfile.LoadLock(lockFile); err == nil {
				l.KeepLayout(prev) // an existing lock keeps its layer layout
			}
			b, err := l.Encode()
			if err != nil {
				return err
			}
			if check {
				old, err := os.ReadFile(lockFile)
				if err != nil {
					return exitCode(1, fmt.Errorf("%s: %w", lockFile, err))
				}
				if !bytes.Equal(old, b) {
					return exitCode(1, fmt.Errorf("%s is stale: it no longer matches %s; run `mlenv lock`", lockFile, intentFile))
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "%s is up to date\n", lockFile)
				return nil
			}
			if err := atomicfile.Write(lockFile, b, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s (%d wheels, %d debs, %d file sets)\n", lockFile, len(l.Wheels), len(l.Debs), len(l.Files))
			return nil
		},
	}
	cmd.Flags().StringVarP(&intentFile, "file", "f", "mlenv.yaml", "the intent to lock")
	cmd.Flags().StringVarP(&lockFile, "output", "o", "", "where to write the lock (default: mlenv.lock next to the intent)")
	cmd.Flags().BoolVar(&check, "check", false, "write nothing; exit 1 when the lock is stale")
	cmd.Flags().StringArrayVar(&allowOutside, "allow-outside", nil, "a folder outside the intent's folder that local inputs (files src, wheel and deb paths, Python lock files, find-links) may come from (repeatable); mlenv build needs the same flag")
	cmd.Flags().BoolVar(&explain, "explain", false, "print, for each package of pylock.toml or uv.lock and each platform, why it is installed or not (marker, fork, group, extra, wheel)")
	return cmd
}
