package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/mlenv/mlenv/diff"
)

func newDiffCmd() *cobra.Command {
	var output, platform string
	var files, attached bool
	var only, ignore []string
	cmd := &cobra.Command{
		Use:   "diff A B",
		Short: "Compare two environments: lockfiles, images, host fingerprints, attestation bundles",
		Long: `diff says what differs between two environment descriptions and why it matters.
A and B can each be an mlenv.lock, an image (REF, oci:DIR, tar:FILE, an OCI
layout folder or a docker-save tar), a fingerprint JSON (mlenv fingerprint
--output json) or an attestation bundle. Mixed kinds compare what they share.

Sections (each shown only when it differs): base, packages, config, layers,
files (with --files: path by path, streamed from the layers), host.
Layers two images share (equal digests) are not read.

With --attestations, a registry image stands for the statements attached to
it (mlenv attest or cosign attest): their lock digest, SBOM packages and host
fingerprint are compared, e.g. two releases, or a release against a host.

Exit status: 0 same, 1 different, 2 error.`,
		Example: `  mlenv diff mlenv.lock oci:./out
  mlenv diff oci:./old oci:./new --files
  mlenv diff train-host.json serve-host.json --output json
  mlenv diff --attestations registry.example.com/team/train@sha256:... serve-host.json`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return exitCode(2, fmt.Errorf("--output %q: use text or json", output))
			}
			opts := diff.Options{Files: files, Sections: only, Ignore: ignore}
			if err := diff.CheckSections(append(append([]string(nil), only...), ignore...)); err != nil {
				return exitCode(2, err)
			}
			ctx := cmd.Context()
			load := diff.Load
			if attached {
				load = diff.LoadStatements
			}
			a, err := load(ctx, args[0], platform)
			if err != nil {
				return exitCode(2, fmt.Errorf("A: %w", err))
			}
			b, err := load(ctx, args[1], platform)
			if err != nil {
				return exitCode(2, fmt.Errorf("B: %w", err))
			}
			res, err := diff.Compare(a, b, opts)
			if err != nil {
				return exitCode(2, err)
			}
			w := cmd.OutOrStdout()
			if output == "json" {
				if err := printJSON(w, res); err != nil {
					return exitCode(2, err)
				}
			} else {
				printDiff(w, res, useColor(w))
			}
			if !res.Same {
				return exitCode(1, silent{})
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	cmd.Flags().BoolVar(&files, "files", false, "compare images path by path (added, removed, changed size, mode, owner, link target, content)")
	cmd.Flags().StringSliceVar(&only, "only", nil, "compare only these sections (base, packages, config, layers, files, host)")
	cmd.Flags().StringSliceVar(&ignore, "ignore", nil, "leave these sections out")
	cmd.Flags().BoolVar(&attached, "attestations", false, "for registry images, compare the statements attached to them (lock digest, SBOM packages, fingerprint) instead of their contents")
	cmd.Flags().StringVar(&platform, "platform", "linux/amd64", "the platform to read from a multi-platform image index")
	return cmd
}

// silent is the error behind exit status 1: the findings were the message.
type silent struct{}

func (silent) Error() string { return "" }

// useColor: only on a terminal, and never when NO_COLOR is set
// (https://no-color.org).
func useColor(w io.Writer) bool {
	if _, set := os.LookupEnv("NO_COLOR"); set {
		return false
	}
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

const (
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiBold   = "\x1b[1m"
	ansiDim    = "\x1b[2m"
	ansiReset  = "\x1b[0m"
)

// printDiff writes the summary line, then each section's findings as
// aligned columns: mark, key, A, B; a consequence goes on its own line.
func printDiff(w io.Writer, r *diff.Result, color bool) {
	paint := func(code, s string) string {
		if !color || s == "" {
			return s
		}
		return code + s + ansiReset
	}
	fmt.Fprintln(w, paint(ansiBold, r.Summary))
	if r.Same {
		return
	}
	fmt.Fprintf(w, "A: %s (%s)\nB: %s (%s)\n", r.A.Source, r.A.Kind, r.B.Source, r.B.Kind)
	for _, s := range diff.Sections {
		if r.Counts[s] == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s\n", paint(ansiBold, s))
		var rows []diff.Finding
		keyW, aW := 0, 0
		for _, f := range r.Findings {
			if f.Section == s {
				rows = append(rows, f)
				keyW, aW = max(keyW, utf8.RuneCountInString(f.Key)), max(aW, utf8.RuneCountInString(orDash(f.A)))
			}
		}
		for _, f := range rows {
			mark, code := "~", ansiYellow
			switch f.Kind {
			case diff.Added:
				mark, code = "+", ansiGreen
			case diff.Removed:
				mark, code = "-", ansiRed
			}
			// Padded before painting: escape codes take no columns.
			line := fmt.Sprintf("  %s %s  %s  %s", mark, pad(f.Key, keyW), pad(orDash(f.A), aW), orDash(f.B))
			if f.Detail != "" {
				line += "  (" + f.Detail + ")"
			}
			fmt.Fprintln(w, paint(code, strings.TrimRight(line, " ")))
			if f.Consequence != "" {
				fmt.Fprintln(w, paint(ansiDim, "      "+f.Consequence))
			}
		}
	}
}

func pad(s string, n int) string {
	return s + strings.Repeat(" ", max(0, n-utf8.RuneCountInString(s)))
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}
