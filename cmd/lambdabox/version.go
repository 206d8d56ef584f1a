package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/lambdabox/lambdabox/internal/version"
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print lambdabox's version, VCS revision, Go version and platform",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprint(cmd.OutOrStdout(), version.Read().Text("lambdabox"))
			return err
		},
	}
}
