package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// notImplemented is an honest command: it exists in the CLI contract, says
// plainly that this version cannot do it yet, and exits 2 ("could not check").
func notImplemented(use, short, issue string) *cobra.Command {
	return &cobra.Command{
		Use:                use,
		Short:              short + " (not implemented yet)",
		DisableFlagParsing: true,
		RunE: func(*cobra.Command, []string) error {
			return exitCode(2, fmt.Errorf("`mlenv %s` is not implemented in this version: %s", use, issue))
		},
	}
}

func newVerifyCmd() *cobra.Command {
	return notImplemented("verify", "Check signatures and runtime compatibility", "planned after attest; nothing was checked")
}
