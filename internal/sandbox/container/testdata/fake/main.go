// Command fake is the container helper and sandboxtest's fake runtime and
// extension, built static to run in the test image, which has no
// libraries but the shell's.
package main

import (
	"fmt"
	"os"

	"github.com/lambdabox/lambdabox/internal/sandbox/container"
	"github.com/lambdabox/lambdabox/internal/sandbox/sandboxtest"
)

func main() {
	container.RunHelper()
	sandboxtest.RunFake()
	fmt.Fprintln(os.Stderr, "fake: set", sandboxtest.FakeKey)
	os.Exit(1)
}
