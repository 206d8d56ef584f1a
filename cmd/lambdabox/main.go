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
	"github.com/lambdabox/lambdabox/internal/sandbox/container"
)

func main() {
	container.RunHelper() // as a container's first process (sandbox/container)
	ctx, stop := shutdownSignals(context.Background())
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

// secondSignalKey carries, in the context shutdownSignals returns, the
// context that a second signal cancels.
type secondSignalKey struct{}

// shutdownSignals returns a context that the first SIGTERM or SIGINT
// cancels, which starts a graceful shutdown. A second signal cancels the
// context whose Done channel endGrace returns, ending the shutdown's grace
// at once.
func shutdownSignals(parent context.Context) (context.Context, context.CancelFunc) {
	second, cancelSecond := context.WithCancel(context.Background())
	ctx, cancel := context.WithCancel(context.WithValue(parent, secondSignalKey{}, second))
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		for _, cancel := range []context.CancelFunc{cancel, cancelSecond} {
			select {
			case <-sigs:
				cancel()
			case <-second.Done():
				return
			}
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		cancel()
		cancelSecond()
	}
}

// endGrace is closed by a second signal (see shutdownSignals), which ends
// a shutdown's grace at once; nil outside shutdownSignals' context.
func endGrace(ctx context.Context) <-chan struct{} {
	second, ok := ctx.Value(secondSignalKey{}).(context.Context)
	if !ok {
		return nil
	}
	return second.Done()
}
