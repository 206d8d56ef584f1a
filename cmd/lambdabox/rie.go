package main

import (
	"github.com/spf13/cobra"

	// rie: the tests of this package name their running emulator "emulator".
	rie "github.com/lambdabox/lambdabox/internal/emulator"
)

func newRIECmd() *cobra.Command {
	return &cobra.Command{
		Use:                "rie [flags] [<bootstrap> [args...]]",
		Short:              "Run a function under the drop-in replacement for aws-lambda-rie",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return rie.Main(cmd.Context(), args, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
}
