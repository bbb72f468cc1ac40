package main

import "github.com/spf13/cobra"

func newGenerateKeyPairCmd() *cobra.Command {
	return notImplemented("generate-key-pair", "Write cosign.key and cosign.pub", "in progress")
}
func newSignCmd() *cobra.Command   { return notImplemented("sign", "Sign an image", "in progress") }
func newAttestCmd() *cobra.Command { return notImplemented("attest", "Attest an image", "in progress") }
