// Command lambdabox builds, runs and ships AWS Lambda functions. Under the
// name aws-lambda-rie it behaves as the drop-in emulator (lambdabox rie),
// and under the name lambda-entrypoint.sh as a base image's entrypoint;
// base images carry cmd/aws-lambda-rie for both.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	// rie: the tests of this package name their running emulator "emulator".
	rie "github.com/lambdabox/lambdabox/internal/emulator"
	"github.com/lambdabox/lambdabox/internal/entrypoint"
	"github.com/lambdabox/lambdabox/internal/sandbox/container"
)

func main() {
	container.RunHelper()                                    // as a container's first process (sandbox/container)
	if filepath.Base(os.Args[0]) == "lambda-entrypoint.sh" { // base images: /lambda-entrypoint.sh links here
		os.Exit(entrypoint.Main(os.Args[1:], os.Stderr))
	}
	ctx, stop := rie.ShutdownSignals(context.Background())
	var err error
	if filepath.Base(os.Args[0]) == "aws-lambda-rie" {
		err = rie.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	} else {
		err = newRootCmd().ExecuteContext(ctx)
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "lambdabox:", err)
		os.Exit(1)
	}
}
