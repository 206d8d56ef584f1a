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
		"launch":      {"sandbox/process", "sandbox/container"}, // the container driver is a func field
		"template":    {"sandbox", "service", "environment"},
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

// TestEmulatorDependencies keeps the emulator of every base image
// (cmd/aws-lambda-rie) small: no image builder, control plane, database,
// container client, AWS SDK or cobra, and none of lambdabox's packages
// that bring them.
func TestEmulatorDependencies(t *testing.T) {
	const mod = "github.com/lambdabox/lambdabox/"
	forbidden := []string{
		"github.com/google/go-containerregistry",
		"github.com/docker/",
		"github.com/moby/",
		"github.com/containerd/",
		"go.opentelemetry.io/",
		"go.etcd.io/bbolt",
		"modernc.org/sqlite",
		"github.com/mattn/go-sqlite3",
		"github.com/aws/aws-sdk-go-v2",
		"github.com/spf13/cobra",
		mod + "cmd/lambdabox",
		mod + "internal/base",
		mod + "internal/build",
		mod + "internal/debian",
		mod + "internal/recipe",
		mod + "internal/image",
		mod + "internal/controlplane",
		mod + "internal/store",
		mod + "internal/sandbox/container",
	}
	out, err := exec.Command("go", "list", "-deps", "../aws-lambda-rie").Output()
	if err != nil {
		t.Fatalf("go list -deps ../aws-lambda-rie: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 || deps[len(deps)-1] != mod+"cmd/aws-lambda-rie" {
		t.Fatalf("go list -deps ../aws-lambda-rie listed %d packages, ending in %q", len(deps), deps[len(deps)-1:])
	}
	for _, d := range deps {
		for _, b := range forbidden {
			if d == b || strings.HasPrefix(d, strings.TrimSuffix(b, "/")+"/") {
				t.Errorf("cmd/aws-lambda-rie depends on %s", d)
			}
		}
	}
}
