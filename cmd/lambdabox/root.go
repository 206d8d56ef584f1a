package main

import (
	"github.com/spf13/cobra"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "lambdabox",
		Short: "Build, run and ship AWS Lambda container images",
		Long: `lambdabox builds, runs and ships AWS Lambda functions packaged as container
images, with a faithful local emulator of the Lambda Runtime and Invoke APIs.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newRIECmd())
	root.AddCommand(newEventCmd())
	root.AddCommand(newBaseCmd())
	root.AddCommand(newBuildCmd())
	root.AddCommand(newServeCmd())
	root.AddCommand(newVersionCmd())
	return root
}
