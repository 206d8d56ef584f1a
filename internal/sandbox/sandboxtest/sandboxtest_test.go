package sandboxtest

import (
	"testing"

	"github.com/lambdabox/lambdabox/internal/sandbox"
)

// TestConformance runs the goroutine driver through the suite every
// driver passes.
func TestConformance(t *testing.T) {
	Conformance(t, Harness{
		Driver: func(*testing.T) sandbox.Driver { return &Driver{Handler: FakeHandler} },
	})
}
