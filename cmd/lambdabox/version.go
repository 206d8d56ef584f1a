package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print lambdabox's version, VCS revision and Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			printVersion(cmd.OutOrStdout())
			return nil
		},
	}
}

// printVersion prints the module version (as go install records it), the
// VCS revision and time the binary was built from (as go build records
// them in a checkout), and the Go version.
func printVersion(w io.Writer) {
	version, revision, when, modified := "(devel)", "unknown", "", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" {
			version = v
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if modified {
		revision += " (modified)"
	}
	fmt.Fprintf(w, "lambdabox %s\nrevision %s", version, revision)
	if when != "" {
		fmt.Fprintf(w, " %s", when)
	}
	fmt.Fprintf(w, "\n%s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
