package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPackageBoundaries keeps the layering: the Runtime API and the sandbox
// contract know nothing of the layers above them; the fronts (invoke,
// httpfront) and the async queue see only the invocation types of the leaf
// package function, never an environment or a pool; and no package but the
// command imports a sandbox driver directly; the control plane and its
// store know nothing of the service that runs the functions.
func TestPackageBoundaries(t *testing.T) {
	const mod = "github.com/lambdabox/lambdabox/internal/"
	forbidden := map[string][]string{
		"runtimeapi":  {"environment", "pool", "invoke", "sandbox"},
		"sandbox":     {"sandbox/process", "environment", "runtimeapi", "pool", "invoke"},
		"environment": {"sandbox/process", "pool", "invoke"},
		"pool":        {"sandbox/process", "invoke"},
		"invoke":      {"sandbox/process", "environment", "pool", "runtimeapi", "sandbox"},
		"async":       {"environment", "pool", "runtimeapi", "sandbox", "invoke"},
		"httpfront":   {"environment", "pool", "runtimeapi", "sandbox", "invoke"},
		"function":    {"environment", "runtimeapi", "sandbox", "pool", "invoke", "async", "httpfront", "telemetry", "extensions"},
		"service":     {"sandbox/process", "controlplane", "store"},
		// The control plane runs functions through its own Runner only.
		"controlplane": {"service", "sandbox", "sandbox/process", "environment", "pool", "invoke"},
		"store":        {"service", "sandbox", "controlplane", "invoke"},
	}
	for pkg, bad := range forbidden {
		out, err := exec.Command("go", "list", "-deps", "./../../internal/"+pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		deps := strings.Fields(string(out))
		for _, d := range deps {
			for _, b := range bad {
				if d == mod+b {
					t.Errorf("internal/%s imports internal/%s", pkg, b)
				}
			}
		}
	}
}
