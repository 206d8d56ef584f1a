package emulator

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// secondSignalKey carries, in the context ShutdownSignals returns, the
// context that a second signal cancels.
type secondSignalKey struct{}

// ShutdownSignals returns a context that the first SIGTERM or SIGINT
// cancels, which starts a graceful shutdown. A second signal cancels the
// context whose Done channel EndGrace returns, ending the shutdown's grace
// at once. The returned function stops listening for signals.
func ShutdownSignals(parent context.Context) (context.Context, context.CancelFunc) {
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

// EndGrace is closed by a second signal (see ShutdownSignals), which ends
// a shutdown's grace at once; nil outside ShutdownSignals' context.
func EndGrace(ctx context.Context) <-chan struct{} {
	second, ok := ctx.Value(secondSignalKey{}).(context.Context)
	if !ok {
		return nil
	}
	return second.Done()
}
