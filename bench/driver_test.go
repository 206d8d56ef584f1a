package bench

import (
	"context"
	"testing"

	"github.com/lambdabox/lambdabox/internal/sandbox/process"
)

// processDriver returns the host-process driver serve uses, closed when tb
// ends.
func processDriver(tb testing.TB) *process.Driver {
	tb.Helper()
	d, err := process.New(process.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = d.Close(context.Background()) })
	return d
}
