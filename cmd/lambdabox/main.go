// Command lambdabox builds, runs and ships AWS Lambda functions. Under the
// name aws-lambda-rie it behaves as the drop-in emulator (lambdabox rie).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/lambdabox/lambdabox/internal/entrypoint"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var err error
	if filepath.Base(os.Args[0]) == "lambda-entrypoint.sh" { // base images: /lambda-entrypoint.sh links here
		os.Exit(entrypoint.Main(os.Args[1:], os.Stderr))
	}
	if filepath.Base(os.Args[0]) == "aws-lambda-rie" {
		err = runRIE(ctx, os.Args[1:], os.Stdout, os.Stderr)
	} else {
		err = newRootCmd().ExecuteContext(ctx)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lambdabox:", err)
		os.Exit(1)
	}
}
