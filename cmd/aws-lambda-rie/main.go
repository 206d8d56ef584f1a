// Command aws-lambda-rie is the emulator of every lambdabox base image
// (/usr/local/bin/aws-lambda-rie): the drop-in replacement for AWS's
// aws-lambda-rie, as `lambdabox rie` runs it. Under the name
// lambda-entrypoint.sh (the images' /lambda-entrypoint.sh links here) it
// is the images' entrypoint. It carries no control plane, database or
// container client; TestEmulatorDependencies in cmd/lambdabox holds that.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/lambdabox/lambdabox/internal/emulator"
	"github.com/lambdabox/lambdabox/internal/entrypoint"
	"github.com/lambdabox/lambdabox/internal/version"
)

func main() {
	if filepath.Base(os.Args[0]) == "lambda-entrypoint.sh" {
		os.Exit(entrypoint.Main(os.Args[1:], os.Stderr))
	}
	if len(os.Args) == 2 && os.Args[1] == "--version" {
		fmt.Print(version.Read().Text("aws-lambda-rie"))
		return
	}
	ctx, stop := emulator.ShutdownSignals(context.Background())
	err := emulator.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "aws-lambda-rie:", err)
		os.Exit(1)
	}
}
