package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"github.com/mlenv/mlenv/attest"
	"github.com/mlenv/mlenv/builder"
	"github.com/mlenv/mlenv/image"
)

func newGenerateKeyPairCmd() *cobra.Command {
	var dir string
	var force bool
	cmd := &cobra.Command{
		Use:   "generate-key-pair",
		Short: "Write cosign.key (encrypted with COSIGN_PASSWORD) and cosign.pub",
		Long: `generate-key-pair writes an ECDSA P-256 key pair in cosign's formats: cosign.key,
encrypted with the password in COSIGN_PASSWORD (which may be empty), and cosign.pub.
cosign reads both, and mlenv reads keys cosign made.`,
		Example: `  COSIGN_PASSWORD=... mlenv generate-key-pair
  COSIGN_PASSWORD=... mlenv generate-key-pair --dir keys/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			priv, pub, err := attest.GenerateKeyPair(dir, force)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s and %s\n", priv, pub)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", ".", "folder for cosign.key and cosign.pub")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite existing key files")
	return cmd
}

// resolveDigest pins a registry reference to the digest it names now.
func resolveDigest(ctx context.Context, arg string) (name.Digest, error) {
	ref, err := image.Parse(arg)
	if err != nil {
		return name.Digest{}, err
	}
	if ref.Kind != image.Registry {
		return name.Digest{}, fmt.Errorf("%s is not in a registry: signatures are stored beside the image in its registry", arg)
	}
	r, err := image.Resolve(ctx, ref, image.Options{})
	if err != nil {
		return name.Digest{}, err
	}
	d, _ := r.DigestRef()
	return d, nil
}

func newSignCmd() *cobra.Command {
	var key string
	cmd := &cobra.Command{
		Use:   "sign IMAGE",
		Short: "Attach a cosign-style signature to an image in a registry",
		Long: `sign resolves IMAGE to its digest and attaches a signature of the digest in the
form cosign uses (tag sha256-<hex>.sig), so that ` + "`cosign verify --key cosign.pub`" + ` accepts it.
No transparency log entry is made.`,
		Example: `  COSIGN_PASSWORD=... mlenv sign registry.example.com/team/train:v1 --key cosign.key`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if key == "" {
				return fmt.Errorf("--key is required: a cosign.key file")
			}
			sv, err := attest.LoadSigner(cmd.Context(), key)
			if err != nil {
				return err
			}
			d, err := resolveDigest(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if err := attest.SignImage(cmd.Context(), d, sv, image.Options{}.RemoteOptions(cmd.Context())...); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "signed %s\n", d)
			fmt.Fprintln(cmd.OutOrStdout(), d.DigestStr())
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "cosign.key (password from COSIGN_PASSWORD)")
	return cmd
}

func newAttestCmd() *cobra.Command {
	o := attest.Options{}
	var output string
	var training trainingFlags
	cmd := &cobra.Command{
		Use:   "attest IMAGE",
		Short: "Sign SLSA provenance, an SPDX SBOM and a host fingerprint about an image",
		Long: `attest makes in-toto Statement v1 documents about IMAGE's digest, each in a DSSE
envelope signed with --key, and attaches them to the image the way cosign does
(tag sha256-<hex>.att), so that ` + "`cosign verify-attestation`" + ` accepts them:

  - SLSA Provenance v1 (with --lock): the lock, every locked input, mlenv's
    version and compressor settings;
  - an SPDX 2.3 SBOM: the locked packages and those the image's layers declare
    (dpkg, Python dist-info and egg-info, conda), plus the GPU code summary;
  - the host fingerprint (with --fingerprint host|FILE) and the host's --role.

A tag is resolved to a digest once; every statement names that digest. With
--bundle, the signed envelopes go to a file (air-gapped flows); add --upload to
write the registry too. IMAGE may be oci:DIR or tar:FILE with --bundle.`,
		Example: `  COSIGN_PASSWORD=... mlenv attest registry.example.com/team/train:v1 --key cosign.key --lock mlenv.lock
  mlenv attest REF --key cosign.key --lock mlenv.lock --fingerprint host --role train
  mlenv attest oci:./out --key cosign.key --lock mlenv.lock --bundle attestations.json --output json`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.KeyRef == "" {
				return fmt.Errorf("--key is required: a cosign.key file")
			}
			if training.o.Model != "" {
				return runTraining(cmd, args, &training, o.KeyRef, o.Fingerprint, o.BundlePath, output)
			}
			if len(args) != 1 {
				return fmt.Errorf("attest takes one IMAGE (or --model to record a training run)")
			}
			o.Image = args[0]
			o.MlenvVersion = currentVersion().Version
			o.CompressorID = builder.CompressorID
			res, err := attest.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), res)
			}
			for _, w := range res.Written {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\t%s\n", w.PredicateType, w.EnvelopeDigest, w.Where)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "attested %s@%s (%d statements)\n", res.Image, res.Digest, len(res.Written))
			return nil
		},
	}
	cmd.Flags().StringVar(&o.KeyRef, "key", "", "cosign.key (password from COSIGN_PASSWORD)")
	cmd.Flags().StringVar(&o.LockPath, "lock", "", "the lock the image was built from (adds provenance)")
	cmd.Flags().StringVar(&o.Fingerprint, "fingerprint", "", "host (capture now) or a fingerprint JSON file")
	cmd.Flags().StringVar(&o.Role, "role", "train", "what the fingerprinted host did: "+strings.Join(attest.Roles, ", "))
	cmd.Flags().StringVar(&o.BundlePath, "bundle", "", "write the signed envelopes to this file instead of the registry")
	cmd.Flags().BoolVar(&o.Upload, "upload", false, "with --bundle: write to the registry as well")
	cmd.Flags().BoolVar(&o.Force, "force", false, "attest even if the image does not record this lock's digest")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	addTrainingFlags(cmd, &training)
	return cmd
}
