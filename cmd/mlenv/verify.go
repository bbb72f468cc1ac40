package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/mlenv/mlenv/fingerprint"
	"github.com/mlenv/mlenv/internal/boundedfile"
	"github.com/mlenv/mlenv/verify"
	"github.com/mlenv/mlenv/verify/admission"
)

func newVerifyCmd() *cobra.Command {
	var keys []string
	var policyPath, bundle, output, hostFile string
	var runtime bool
	var model modelVerifyFlags
	cmd := &cobra.Command{
		Use:   "verify IMAGE --key cosign.pub",
		Short: "Check an image's signed statements, a policy and (--runtime) this host",
		Long: `verify resolves IMAGE once to a digest and checks, about that digest only:
the signed statements (provenance, SBOM, training fingerprint) verified with cosign's
functions against --key (any one of several keys suffices); the policy (built-in
"default" or "exact", or a YAML file with CEL rules); and with --runtime this host's
fingerprint against the image ("will it run": driver vs the image's CUDA, GPU code vs
compute capability, CPU) and against the training host ("will it reproduce").

One line per check: PASS, WARN or FAIL with expected and actual values.
Exit 0 allowed, 1 denied, 2 could not check (fail closed).`,
		Example: `  mlenv verify registry.example.com/team/train@sha256:... --key cosign.pub
  mlenv verify registry.example.com/team/train:v1 --key old.pub --key new.pub --policy policy.yaml --runtime
  mlenv verify oci:./out --key cosign.pub --bundle attestations.json --output json
  mlenv verify serve --tls-cert tls.crt --tls-key tls.key --key cosign.pub`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return exitCode(2, fmt.Errorf("--output %q: use text or json", output))
			}
			// Every could-not-check (bad key file, malformed policy,
			// unreadable host fingerprint, registry down) is a verdict of
			// its own: exit 2, and under --output json an "error" result,
			// so that a script reading JSON never sees an empty answer.
			res, err := verifyImage(cmd, args[0], keys, policyPath, bundle, hostFile, runtime, &model)
			if err != nil {
				res = &verify.Result{SchemaVersion: verify.ResultSchemaVersion, Image: args[0], Policy: policyPath,
					Decision: verify.Error, Checks: []verify.Check{}, Error: err.Error()}
			}
			if output == "json" {
				if err := printJSON(cmd.OutOrStdout(), res); err != nil {
					return exitCode(2, err)
				}
			} else {
				printResult(cmd.OutOrStdout(), res)
			}
			switch res.Decision {
			case verify.Allow:
				return nil
			case verify.Deny:
				return exitCode(1, fmt.Errorf("%s denied: %d check(s) failed", args[0], len(res.Failures())))
			default:
				return exitCode(2, fmt.Errorf("could not check %s (denied): %s", args[0], res.Error))
			}
		},
	}
	cmd.Flags().StringArrayVar(&keys, "key", nil, "cosign public key file, or a PEM bundle of keys (repeat for several; any one suffices)")
	cmd.Flags().StringVar(&policyPath, "policy", "default", `policy: "default", "exact" or a YAML file`)
	cmd.Flags().BoolVar(&runtime, "runtime", false, "also check this host: will it run, will it reproduce")
	cmd.Flags().StringVar(&hostFile, "host-fingerprint", "", "with --runtime: a fingerprint JSON file (`mlenv fingerprint --output json`) instead of capturing this host")
	cmd.Flags().StringVar(&bundle, "bundle", "", "read the statements from this mlenv bundle file instead of the registry")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	addModelVerifyFlags(cmd, &model)
	cmd.AddCommand(newVerifyServeCmd())
	return cmd
}

// verifyImage loads keys and policy, reads the host fingerprint when
// asked, and verifies; any error means the image could not be checked.
func verifyImage(cmd *cobra.Command, image string, keys []string, policyPath, bundle, hostFile string, runtime bool, model *modelVerifyFlags) (*verify.Result, error) {
	v, err := newVerifier(keys, policyPath)
	if err != nil {
		return nil, err
	}
	req := verify.Request{Image: image, BundlePath: bundle}
	if runtime || hostFile != "" {
		if req.Host, err = hostFingerprint(hostFile); err != nil {
			return nil, err
		}
	}
	if model.isModel(image) {
		return model.verify(cmd.Context(), v, image, bundle, req.Host)
	}
	return v.Verify(cmd.Context(), req)
}

func newVerifier(keys []string, policyPath string) (*verify.Verifier, error) {
	ks, err := verify.LoadKeys(keys)
	if err != nil {
		return nil, err
	}
	p, err := verify.LoadPolicy(policyPath)
	if err != nil {
		return nil, err
	}
	return verify.NewVerifier(ks, p)
}

// hostFingerprint captures this host, or reads a saved capture.
func hostFingerprint(file string) (*fingerprint.Fingerprint, error) {
	if file == "" {
		return fingerprint.Capture(fingerprint.Options{}), nil
	}
	b, err := boundedfile.Read(file, 16<<20)
	if err != nil {
		return nil, fmt.Errorf("--host-fingerprint: %w", err)
	}
	var fp fingerprint.Fingerprint
	if err := json.Unmarshal(b, &fp); err != nil {
		return nil, fmt.Errorf("--host-fingerprint %s: not a fingerprint JSON: %w", file, err)
	}
	if fp.Version != fingerprint.SchemaVersion {
		return nil, fmt.Errorf("--host-fingerprint %s: version %d, want %d", file, fp.Version, fingerprint.SchemaVersion)
	}
	return &fp, nil
}

func printResult(w io.Writer, res *verify.Result) {
	if res.Digest != "" {
		fmt.Fprintf(w, "image   %s\ndigest  %s\npolicy  %s\n", res.Image, res.Digest, res.Policy)
	}
	for _, c := range res.Checks {
		line := fmt.Sprintf("%-4s  %s", c.Status, c.Name)
		if c.Expected != "" || c.Actual != "" {
			line += fmt.Sprintf("  expected: %s  actual: %s", c.Expected, c.Actual)
		}
		if c.Message != "" {
			line += "  (" + c.Message + ")"
		}
		fmt.Fprintln(w, line)
	}
	switch res.Decision {
	case verify.Allow:
		fmt.Fprintln(w, "ALLOWED")
	case verify.Deny:
		fmt.Fprintln(w, "DENIED")
	default:
		fmt.Fprintf(w, "COULD NOT CHECK (denied): %s\n", res.Error)
	}
}

func newVerifyServeCmd() *cobra.Command {
	var keys []string
	var policyPath, cert, key, addr string
	cmd := &cobra.Command{
		Use:   "serve --tls-cert F --tls-key F --key cosign.pub",
		Short: "Run the Kubernetes validating admission webhook",
		Long: `serve answers admission.k8s.io/v1 AdmissionReviews at POST /validate over HTTPS, for Pods
and the pod templates of Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs and
CronJobs: every container and init container image must be by digest (or resolvable, if
the policy's admission.allowTags is set), signed and attested. Also /healthz, /readyz and
/metrics (Prometheus). SIGTERM drains requests in flight. See examples/kubernetes/.`,
		Example: `  mlenv verify serve --tls-cert /tls/tls.crt --tls-key /tls/tls.key --key /keys/cosign.pub --policy /policy/policy.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cert == "" || key == "" {
				return exitCode(2, fmt.Errorf("--tls-cert and --tls-key are required: the API server calls webhooks over HTTPS only"))
			}
			v, err := newVerifier(keys, policyPath)
			if err != nil {
				return exitCode(2, err)
			}
			l, err := net.Listen("tcp", addr)
			if err != nil {
				return exitCode(2, err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			errw := cmd.ErrOrStderr()
			srv := admission.New(admission.Options{Verifier: v, Log: func(f string, a ...any) { fmt.Fprintf(errw, f+"\n", a...) }})
			fmt.Fprintf(errw, "mlenv verify serve: listening on %s (policy %s)\n", l.Addr(), v.Policy().Name)
			if err := srv.Serve(ctx, l, cert, key); err != nil {
				return exitCode(2, err)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&keys, "key", nil, "cosign public key file or PEM bundle (repeatable)")
	cmd.Flags().StringVar(&policyPath, "policy", "default", `policy: "default", "exact" or a YAML file`)
	cmd.Flags().StringVar(&cert, "tls-cert", "", "TLS certificate (PEM)")
	cmd.Flags().StringVar(&key, "tls-key", "", "TLS private key (PEM)")
	cmd.Flags().StringVar(&addr, "addr", ":8443", "listen address")
	return cmd
}
