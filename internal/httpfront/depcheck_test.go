package httpfront

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps httpfront a library over the Function contract:
// it reaches no environment, pool, Runtime API, Invoke API or sandbox;
// whatever runs the function is passed in, and the invocation types come
// from the leaf package function.
func TestDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, d := range strings.Fields(string(out)) {
		for _, bad := range []string{"/internal/pool", "/internal/invoke", "/internal/sandbox", "/internal/environment", "/internal/runtimeapi"} {
			if strings.HasPrefix(d, "github.com/lambdabox/lambdabox"+bad) {
				t.Errorf("httpfront imports %s", d)
			}
		}
	}
}
