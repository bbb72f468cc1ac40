package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mlenv/mlenv/attest"
	"github.com/mlenv/mlenv/fingerprint"
	"github.com/mlenv/mlenv/modelpack"
	"github.com/mlenv/mlenv/verify"
)

func newPushModelCmd() *cobra.Command {
	var o modelpack.Options
	var output string
	cmd := &cobra.Command{
		Use:   "push-model DIR REF",
		Short: "Push a model folder to a registry as a CNCF ModelPack artifact",
		Long: `push-model writes DIR to REF as a CNCF ModelPack OCI artifact (artifactType
` + modelpack.ArtifactTypeModelManifest + `): each file at the top of DIR is one raw
weight layer, each sub-folder one uncompressed tar layer, with the path in the
layer annotation ` + modelpack.AnnotationFilepath + `. The same files give the same
manifest digest, wherever they are and whatever their times and owners.

Files are hashed once, in parallel; blobs go up in parallel, and a blob the
registry already has is not sent again (an interrupted push resumes; an unchanged
model sends no blob). stdout's last line is the manifest digest.`,
		Example: `  mlenv push-model ./model registry.example.com/team/llm:v1`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			start := time.Now()
			res, err := modelpack.Push(cmd.Context(), args[0], args[1], o)
			if err != nil {
				return err
			}
			if output == "json" {
				if err := printJSON(cmd.OutOrStdout(), res); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "pushed %s: %d layers, %d uploaded (%d bytes), %d bytes hashed in %s\n",
				res.Ref, res.Layers, res.Uploaded, res.UploadedBytes, res.HashedBytes, time.Since(start).Round(time.Millisecond))
			fmt.Fprintln(cmd.OutOrStdout(), res.Digest)
			return nil
		},
	}
	cmd.Flags().IntVar(&o.Jobs, "jobs", 4, "blobs moved at once")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json (the digest is still the last line)")
	return cmd
}

func newPullModelCmd() *cobra.Command {
	var o modelpack.Options
	cmd := &cobra.Command{
		Use:   "pull-model REF DIR",
		Short: "Pull a CNCF ModelPack artifact into a new folder",
		Long: `pull-model writes the model REF names into DIR, which must not exist or be empty.
Every blob is checked against its digest and every path before it is created (no
absolute paths, no "..", no links); the files land in a temporary folder that is
renamed to DIR only when all of them are in: a failed pull leaves nothing.
stdout's last line is the manifest digest.`,
		Example: `  mlenv pull-model registry.example.com/team/llm:v1 ./model`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := modelpack.Pull(cmd.Context(), args[0], args[1], o)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "pulled %s into %s: %d layers, %d bytes\n", args[0], res.Dir, res.Layers, res.Bytes)
			fmt.Fprintln(cmd.OutOrStdout(), res.Digest)
			return nil
		},
	}
	cmd.Flags().IntVar(&o.Jobs, "jobs", 4, "blobs moved at once")
	return cmd
}

// trainingFlags are `mlenv attest --model ...`: record a training run.
type trainingFlags struct {
	o                 attest.TrainingOptions
	started, finished string
}

func addTrainingFlags(cmd *cobra.Command, t *trainingFlags) {
	f := cmd.Flags()
	f.StringVar(&t.o.Model, "model", "", "record a training run: the trained model (file, folder, or ModelPack REF); IMAGE is then not given")
	f.StringVar(&t.o.TrainingImage, "training-image", "", "with --model: the image the run used (REF, oci:DIR, tar:FILE)")
	f.StringArrayVar(&t.o.Datasets, "dataset", nil, "with --model: [URI=]PATH of a dataset (repeatable)")
	f.StringVar(&t.o.Code, "code", "", "with --model: the training code's folder (git commit and dirty flag read from .git)")
	f.StringArrayVar(&t.o.Configs, "config", nil, "with --model: a configuration file (repeatable; JSON/YAML up to 64 KiB inlined)")
	f.StringArrayVar(&t.o.Seeds, "seed", nil, "with --model: NAME=VALUE of a random seed (repeatable)")
	f.StringVar(&t.o.Metrics, "metrics", "", "with --model: a metrics JSON object file")
	f.StringVar(&t.started, "started", "", "with --model: when the run started (RFC 3339)")
	f.StringVar(&t.finished, "finished", "", "with --model: when the run ended (RFC 3339)")
}

// runTraining is `mlenv attest --model M --training-image I ... [-- COMMAND...]`.
func runTraining(cmd *cobra.Command, args []string, t *trainingFlags, key, fp, bundle, output string) error {
	if dash := cmd.ArgsLenAtDash(); dash > 0 || (dash < 0 && len(args) > 0) {
		return fmt.Errorf("with --model, IMAGE is not given: the training image is --training-image; put the run's command after --")
	}
	t.o.Command = args
	t.o.KeyRef, t.o.Fingerprint, t.o.BundlePath = key, fp, bundle
	t.o.MlenvVersion = currentVersion().Version
	for _, x := range []struct {
		flag, v string
		dst     *time.Time
	}{{"--started", t.started, &t.o.Started}, {"--finished", t.finished, &t.o.Finished}} {
		if x.v == "" {
			continue
		}
		tm, err := time.Parse(time.RFC3339, x.v)
		if err != nil {
			return fmt.Errorf("%s %q: want RFC 3339, like 2026-01-02T15:04:05Z", x.flag, x.v)
		}
		*x.dst = tm
	}
	res, err := attest.RecordRun(cmd.Context(), t.o)
	if err != nil {
		return err
	}
	if output == "json" {
		return printJSON(cmd.OutOrStdout(), res)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\t%s\n", attest.TrainingPredicateType, res.EnvelopeDigest, res.Where)
	fmt.Fprintf(cmd.ErrOrStderr(), "recorded the training run of %s (%d subjects)\n", res.Model, res.Subjects)
	return nil
}

// modelVerifyFlags are `mlenv verify --model ...`.
type modelVerifyFlags struct {
	model                                 bool
	serving, servingBundle, trainBun, oms string
}

func addModelVerifyFlags(cmd *cobra.Command, m *modelVerifyFlags) {
	f := cmd.Flags()
	f.BoolVar(&m.model, "model", false, "the argument is a model (ModelPack REF, or a local file or folder: then its lineage bundle is --bundle, default beside it)")
	f.StringVar(&m.serving, "serving", "", "with a model: the serving image, compared with the training side (with --runtime: also this host)")
	f.StringVar(&m.servingBundle, "serving-bundle", "", "with --serving: read the serving image's statements from this bundle")
	f.StringVar(&m.trainBun, "training-bundle", "", "with a model: read the training image's statements from this bundle")
	f.StringVar(&m.oms, "oms", "", "verify a model folder signed by sigstore's model-signing tool with a key: its signature file (\"default\": DIR/model.sig); keyless signatures need Fulcio and Rekor and are refused")
}

// isModelArg: --model, or a local path that is not an image layout.
func (m *modelVerifyFlags) isModel(arg string) bool {
	if m.model || m.oms != "" {
		return true
	}
	if strings.HasPrefix(arg, "oci:") || strings.HasPrefix(arg, "tar:") {
		return false
	}
	if _, err := os.Stat(attest.BesideBundle(arg)); err == nil {
		return true
	}
	// A local folder that is not an OCI layout can only be a model (its
	// missing bundle is then reported as such).
	if fi, err := os.Stat(arg); err == nil && fi.IsDir() {
		_, err := os.Stat(filepath.Join(arg, "oci-layout"))
		return err != nil
	}
	return false
}

// verify checks a model: its mlenv lineage, or with --oms a
// model-signing (OMS) signature.
func (m *modelVerifyFlags) verify(ctx context.Context, v *verify.Verifier, arg, bundle string, host *fingerprint.Fingerprint) (*verify.Result, error) {
	if m.oms != "" {
		sig := m.oms
		if sig == "default" {
			sig = ""
		}
		return v.VerifyOMS(ctx, arg, sig)
	}
	return v.VerifyModel(ctx, verify.ModelRequest{Model: arg, BundlePath: bundle, TrainingImageBundle: m.trainBun,
		Serving: m.serving, ServingBundle: m.servingBundle, Host: host})
}
