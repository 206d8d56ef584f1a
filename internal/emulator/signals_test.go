package emulator

import (
	"context"
	"syscall"
	"testing"
	"time"
)

// TestShutdownSignals: the first SIGTERM cancels the context and leaves
// the grace running; the second ends the grace.
func TestShutdownSignals(t *testing.T) {
	if EndGrace(context.Background()) != nil {
		t.Error("EndGrace outside ShutdownSignals' context is not nil")
	}
	ctx, stop := ShutdownSignals(context.Background())
	defer stop()
	wait := func(what string, done <-chan struct{}) {
		t.Helper()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: not done 5 s after the signal", what)
		}
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wait("first signal", ctx.Done())
	select {
	case <-EndGrace(ctx):
		t.Fatal("the first signal ended the grace")
	case <-time.After(50 * time.Millisecond):
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	wait("second signal", EndGrace(ctx))
}
