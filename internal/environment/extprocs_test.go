package environment

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lambdabox/lambdabox/internal/sandbox"
	"github.com/lambdabox/lambdabox/internal/sandbox/sandboxtest"
	"github.com/lambdabox/lambdabox/internal/syncbuf"
)

// extensionsDir returns a directory holding an executable per name, for the
// goroutine driver to run as extensions.
func extensionsDir(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// The driver finds and starts the extensions; the environment sends them
// INVOKE, attributes their output, and reports one that exits as
// Extension.Crash, then starts them all again.
func TestExtensionsFromTheDriver(t *testing.T) {
	crash := make(chan struct{}, 1)
	d := &sandboxtest.Driver{Handler: behaviours, Extension: func(ctx context.Context, api, name string, out io.Writer) int {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			select {
			case <-crash:
				cancel()
			case <-ctx.Done():
			}
		}()
		if code := sandboxtest.RunExtension(ctx, api, name, out); ctx.Err() == nil {
			return code
		}
		return 7 // "crashed" while waiting for an event
	}}
	e, out := newTestEnvConfig(t, d, func(c *Config) { c.ExtensionsDir = extensionsDir(t, "b-ext", "a-ext") })
	if res := invokeEnv(e, "id-1", `"x"`); res.Error {
		t.Fatalf("invoke: %s %s", res.ErrorType, res.Payload)
	}
	for _, line := range []string{"extension a-ext started", "extension b-ext started", "runtime started"} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("output lacks %q:\n%s", line, out)
		}
	}
	crash <- struct{}{}
	// The environment notices the exit while idle.
	for deadline := time.Now().Add(5 * time.Second); len(e.extDied) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the extension's exit was never noticed")
		}
		time.Sleep(time.Millisecond)
	}
	res := invokeEnv(e, "id-2", `"x"`)
	if !res.Error || res.ErrorType != "Extension.Crash" || !strings.Contains(string(res.Payload), "exited: exit status 7") {
		t.Fatalf("got %s %s, want Extension.Crash with exit status 7", res.ErrorType, res.Payload)
	}
	if res := invokeEnv(e, "id-3", `"y"`); res.Error || string(res.Payload) != `"y"` {
		t.Fatalf("invoke after the crash: %s %s", res.ErrorType, res.Payload)
	}
	if got := strings.Count(out.String(), "extension a-ext started"); got != 2 {
		t.Errorf("a-ext started %d times, want 2 (again after the reset)", got)
	}
}

// An extension that exits before it registers fails Init with
// Extension.Crash, and the runtime never starts.
func TestExtensionExitsBeforeRegistering(t *testing.T) {
	d := &sandboxtest.Driver{Handler: behaviours, Extension: func(context.Context, string, string, io.Writer) int { return 4 }}
	e, _ := newTestEnvConfig(t, d, func(c *Config) { c.ExtensionsDir = extensionsDir(t, "early") })
	res := invokeEnv(e, "id-1", `"x"`)
	if !res.Error || res.ErrorType != "Extension.Crash" || !strings.Contains(string(res.Payload), "extension early exited: exit status 4") {
		t.Fatalf("got %s %s, want Extension.Crash", res.ErrorType, res.Payload)
	}
	if d.Started() != 0 {
		t.Errorf("%d runtimes started, want 0", d.Started())
	}
}

// reachDriver is a driver whose runtimes reach the Runtime API by another
// name than the address lambdabox listens on, as a container's do.
type reachDriver struct {
	*sandboxtest.Driver
	listened string
}

func (d *reachDriver) ListenAddr(configured string) (string, error) {
	d.listened = configured
	return "127.0.0.1:0", nil
}

func (d *reachDriver) RuntimeAPI(listening string) string {
	return strings.Replace(listening, "127.0.0.1", "localhost", 1)
}

var _ sandbox.Network = (*reachDriver)(nil)

// A driver that implements sandbox.Network chooses where the environment
// listens, and what AWS_LAMBDA_RUNTIME_API its runtime gets.
func TestNetworkDriver(t *testing.T) {
	d := &reachDriver{Driver: &sandboxtest.Driver{Handler: behaviours}}
	out := &syncbuf.Buffer{}
	e, err := New(Config{
		Function:       testFunction(t),
		Driver:         d,
		RuntimeAPIAddr: "192.0.2.1:9001", // not an address of this machine
		ExtensionsDir:  t.TempDir(),
		Output:         out,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	if d.listened != "192.0.2.1:9001" {
		t.Errorf("ListenAddr got %q", d.listened)
	}
	want := "AWS_LAMBDA_RUNTIME_API=" + d.RuntimeAPI(e.RuntimeAPI())
	found := false
	for _, kv := range e.environ {
		found = found || kv == want
	}
	if !found || !strings.Contains(want, "localhost:") {
		t.Errorf("environment lacks %s", want)
	}
	if res := invokeEnv(e, "id-1", `"x"`); res.Error || string(res.Payload) != `"x"` {
		t.Fatalf("invoke: %s %s", res.ErrorType, res.Payload)
	}
}
